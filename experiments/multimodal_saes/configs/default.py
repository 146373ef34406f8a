r"""Multimodal SAEs on a LLaVA-style miniature (experiments/multimodal_saes/main.py).

The default (the README's results; sized for the shared 2-core CPU, about an hour there under load):
  python -m experiments.multimodal_saes.main --config=experiments/multimodal_saes/configs/default.py \
      --workdir=workdirs/multimodal_saes
The first CPU pilot (README, an earlier commit's code; its ViT excluded the held-out combinations):
  python -m experiments.multimodal_saes.main --config=experiments/multimodal_saes/configs/default.py:pilot \
      --workdir=workdirs/multimodal_saes_pilot
`full`: a larger budget (2,000 scenes, 400 projector steps, 1,500 SAE steps at the reference's LR; not run here).
Tiny variant (the entry test: 2 of SmolLM2's 30 layers, a handful of scenes and steps):
  python -m experiments.multimodal_saes.main --config=experiments/multimodal_saes/configs/default.py:tiny \
      --workdir=workdirs/multimodal_saes_tiny
"""

import ml_collections

from jaxlab.train import default_config


def _train(batch, steps, lr, schedule="constant", log_every=25, **opt):
  c = default_config()
  c.batch_size, c.total_steps, c.log_every = batch, steps, log_every
  c.checkpoint_every = steps            # one checkpoint at the end: a rerun reuses the trained stage
  c.mesh = dict(data=1, fsdp=1, tensor=1)
  c.optimizer.learning_rate, c.optimizer.schedule = lr, schedule
  c.optimizer.update(opt)
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # scenes, held-out combinations, inits and data order
  c.num_layers = 0                    # 0: all 30 SmolLM2 layers; n > 0 keeps the first n (tiny runs)
  c.image_size = 32                   # rendered scene side (pixels)
  c.textures = ("solid",)             # scene textures sampled ('solid', 'striped'); stripes are unreadable at 32 px
  c.max_count = 2                     # objects per scene: 1..max_count
  c.num_held_out = 4                  # held-out shape × colour combinations (test split)
  c.num_train = 2000                  # training scenes (ViT, projector, activations, probes)
  c.num_test = 48                     # held-out-combination scenes
  c.caption_len = 18                  # caption tokens incl. eos (the longest caption is 16)
  c.eval_batch = 16                   # LM forward batch of the evaluations
  c.num_generate = 16                 # greedy captions for the attribute accuracy
  c.num_activation_scenes = 96        # training scenes whose activations fill the SAE stores and probes
  c.num_loss_recovered = 16           # held-out scenes of the loss-recovered CEs

  c.vit = ml_collections.ConfigDict()
  c.vit.patch = 8                     # 32 / 8 = 4 × 4 = 16 image tokens
  c.vit.embed_dim = 128
  c.vit.num_layers = 4
  c.vit.num_heads = 4
  c.vit.mlp_dim = 256
  c.vit.train = _train(64, 800, 1e-3, "warmup_cosine", warmup_steps=30, weight_decay=0.05)
  # ViT pretraining scenes: True = every shape × colour combination (the ViT stands in for CLIP, which has
  # seen them all; the projector, SAEs, probes and steering directions still see training combinations only);
  # False = the training scenes (held-out combinations excluded: the pilot, whose ViT then read held-out
  # shapes at 0.05, below chance, while reading training-combination shapes ever better: a colour → shape
  # shortcut, not a bug; README)
  c.vit.all_combinations = True
  c.vit.num_scenes = 4000             # ViT pretraining scenes when all_combinations (fresh draws, seed + 4)

  c.projector = ml_collections.ConfigDict()
  c.projector.train = _train(8, 64, 2e-3, "warmup_cosine", warmup_steps=6, log_every=8)  # LLaVA stage 1: 1e-3

  c.corpus = ml_collections.ConfigDict()  # the text corpus side (Debian fortunes, jaxlab.data.corpora.load_fortunes)
  c.corpus.num_sequences = 96         # corpus entries whose activations join the SAE stores
  c.corpus.num_test_sequences = 32    # further entries for the SAE metrics and the image-vs-corpus sharing
  c.corpus.seq_len = 18               # tokens per entry (truncated; the first position is dropped as for captions;
                                      # = caption_len, so caption-only and corpus passes share one compilation)

  c.sae_layers = (2, 8, 14, 20, 26)   # resid_pre of these SmolLM2 layers
  c.steer_layer = 14                  # steering site (must be one of sae_layers)
  c.sae = ml_collections.ConfigDict()
  c.sae.expansion = 8                 # the issue's ×8 (4608 features on d = 576)
  c.sae.l1_coeff = 5.0                # the reference's final λ
  c.sae.l1_warmup_fraction = 0.05     # λ 0 → 5 over the first 5% of steps
  c.sae.store_shards = 8              # shards per activation store
  # Adam (0.9, 0.999), clip 1.0, last 20% linear to 0; LR 5e-4 = 10× the reference's 5e-5 for 300 steps
  c.sae.train = _train(128, 300, 5e-4, "constant_linear_tail", b2=0.999, grad_clip_norm=1.0, decay_fraction=0.2,
                       log_every=50)

  c.probe = ml_collections.ConfigDict()
  c.probe.factor = "shape"            # scene factor the probes decode (held-out combinations at test)
  c.probe.steps = 300                 # full-batch Adam steps
  c.probe.learning_rate = 1e-2
  c.probe.l0 = 5e-3                   # sparse probes: the reference's largest λ
  # sparse probes: full-batch Adam steps; with Adam at 1e-2 a gate's log-odds move ≤ ~0.01 a step, and a
  # gate (init m = 2) closes only below m ≈ −2.4, so 300 steps can close none (the tiny run: all open)
  c.probe.sparse_steps = 1500

  c.steer = ml_collections.ConfigDict()
  c.steer.source = "circle"
  c.steer.target = "square"
  c.steer.num_images = 16             # single-object source-shape images steered (held-out combinations first)
  c.steer.k_multiples = (0.0, 1.0, 2.0, 4.0, 8.0)  # k in units of ‖μ_target − μ_source‖ at the layer

  if arg == "tiny":
    c.num_layers = 4
    c.num_train, c.num_test, c.num_generate, c.num_activation_scenes, c.num_loss_recovered = 48, 16, 4, 32, 8
    c.eval_batch = 8
    c.vit.embed_dim, c.vit.num_layers, c.vit.mlp_dim, c.vit.num_heads = 32, 1, 64, 2
    c.vit.train = _train(16, 4, 1e-3, log_every=2)
    c.vit.num_scenes = 48
    c.projector.train = _train(4, 2, 1e-3, log_every=1)
    c.corpus.num_sequences, c.corpus.num_test_sequences, c.corpus.seq_len = 16, 8, 12
    c.sae_layers, c.steer_layer = (1, 3), 3
    c.sae.expansion, c.sae.store_shards = 2, 2
    c.sae.train = _train(32, 4, 5e-5, "constant_linear_tail", log_every=2, b2=0.999)
    c.probe.steps, c.probe.sparse_steps = 20, 20
    c.steer.num_images, c.steer.k_multiples = 4, (0.0, 4.0)
  elif arg == "full":  # a larger budget (not run here)
    c.num_test, c.num_generate, c.num_activation_scenes, c.num_loss_recovered = 256, 64, 1000, 64
    c.projector.train = _train(8, 400, 1e-3, "warmup_cosine", warmup_steps=20, log_every=10)
    c.corpus.num_sequences, c.corpus.num_test_sequences = 1000, 256
    c.sae.train = _train(256, 1500, 5e-5, "constant_linear_tail", b2=0.999, grad_clip_norm=1.0, decay_fraction=0.2,
                         log_every=100)
    c.steer.num_images = 32
    c.sae_layers, c.steer_layer = (2, 7, 12, 17, 22, 27), 12
  elif arg == "pilot":  # the first CPU pilot of the README (its ViT saw training combinations only)
    c.num_train, c.vit.all_combinations = 1200, False
    c.num_test, c.num_generate, c.num_activation_scenes, c.num_loss_recovered = 64, 16, 192, 16
    c.vit.train = _train(64, 300, 1e-3, "warmup_cosine", warmup_steps=20, weight_decay=0.05)
    c.projector.train = _train(8, 60, 2e-3, "warmup_cosine", warmup_steps=6, log_every=10)
    c.corpus.num_sequences, c.corpus.num_test_sequences = 192, 64
    c.sae_layers, c.steer_layer = (2, 8, 14, 20, 26), 14
    c.sae.train = _train(128, 200, 5e-4, "constant_linear_tail", b2=0.999, grad_clip_norm=1.0, decay_fraction=0.2,
                         log_every=50)
    c.steer.num_images, c.steer.k_multiples = 16, (0.0, 1.0, 2.0, 4.0, 8.0)
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '', 'tiny', 'pilot' or 'full'")
  return c
