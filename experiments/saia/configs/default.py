r"""SAIA on rendered scenes (experiments/saia/main.py).

The CPU run of the README table:
  python -m experiments.saia.main --config=experiments/saia/configs/default.py --workdir=workdirs/saia
Tiny variant (the entry test: a few steps, 2 + 2 models, 2 rounds):
  python -m experiments.saia.main --config=experiments/saia/configs/default.py:tiny --workdir=workdirs/saia_tiny
"""

import ml_collections

from jaxlab.train import default_config


def _train(batch, steps, lr, schedule="constant", log_every=50, **opt):
  c = default_config()
  c.batch_size, c.total_steps, c.log_every = batch, steps, log_every
  c.checkpoint_every = steps            # one checkpoint at the end: a rerun reuses the trained stage
  c.mesh = dict(data=1, fsdp=1, tensor=1)
  c.optimizer.learning_rate, c.optimizer.schedule = lr, schedule
  c.optimizer.update(opt)
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # scenes, model specs, inits, data order, agent tools
  c.image_size = 48                   # rendered scene side (pixels; at 32 px the 8 shapes were 31 % separable)

  c.vit = ml_collections.ConfigDict()  # the detector / frozen backbone (a head per extended factor)
  c.vit.arch = "cnn"                  # 'cnn' (jaxlab.nn.vision.small_cnn) or 'vit' (RgbViTClassifier)
  c.vit.cnn_widths = (32, 64, 128)    # cnn: channels of the stride-2 convolutions
  c.vit.patch = 8                     # vit: 48 / 8 = 6 × 6 = 36 patch tokens
  c.vit.embed_dim = 128               # ViT token width / CNN pooled-feature width (the trained heads' input)
  c.vit.num_layers = 2
  c.vit.num_heads = 4
  c.vit.mlp_dim = 128
  c.vit.num_train = 6000              # uniformly sampled extended scenes
  c.vit.num_test = 500                # held-out scenes for the per-factor accuracy
  c.vit.train = _train(64, 1500, 2e-3, "warmup_cosine", warmup_steps=50, weight_decay=0.05)

  c.wired = ml_collections.ConfigDict()
  c.wired.num_models = 60             # (object, category, value) models, categories round-robin

  c.trained = ml_collections.ConfigDict()
  c.trained.num_candidates = 96       # trained candidates; those passing the reliance check enter
  c.trained.pool = 6000               # scenes whose frozen features the biased datasets draw from
  c.trained.examples = 2000           # biased examples per model (half positive)
  c.trained.neg_attr_rate = 0.25      # P(attribute) among negatives (positives always have it)
  c.trained.min_reliance = 0.5        # admitted if the flip drops the score by at least this fraction ...
  c.trained.min_score = 0.5           # ... and object-with-attribute scenes score at least this ...
  c.trained.min_object_reliance = 0.15  # ... and removing the object (attribute kept) drops it by this fraction
  c.trained.reliance_images = 24      # paired renders per reliance measurement
  c.trained.train = _train(64, 600, 1e-2, "warmup_cosine", warmup_steps=20)

  c.agent = ml_collections.ConfigDict()
  c.agent.rounds = 5                  # the paper: up to 10
  c.agent.num_exemplars = 15          # the paper's top-15 dataset exemplars
  c.agent.exemplar_pool = 1000        # random scenes the exemplars are the top of
  c.agent.num_edit_images = 4         # exemplars edited per experiment
  c.agent.num_self_eval = 10          # the paper's 10 HIGH + 10 LOW prompts
  c.agent.num_evaluator = 12          # the evaluator's HIGH / LOW images per label (predictiveness)
  c.agent.grid_model = 0              # index into the benchmark of the model in the PNG grid

  if arg == "tiny":
    c.vit.num_train, c.vit.num_test = 64, 16
    c.vit.embed_dim, c.vit.num_layers, c.vit.mlp_dim, c.vit.num_heads, c.vit.patch = 16, 1, 32, 2, 8
    c.vit.cnn_widths = (8, 16)
    c.vit.train = _train(16, 3, 1e-3, log_every=1)
    c.wired.num_models = 2
    c.trained.num_candidates, c.trained.pool, c.trained.examples = 2, 800, 64
    c.image_size = 32
    c.trained.min_reliance, c.trained.min_score, c.trained.reliance_images = -1.0, 0.0, 4
    c.trained.min_object_reliance = -1.0
    c.trained.train = _train(16, 3, 1e-2, log_every=1)
    c.agent.rounds, c.agent.exemplar_pool, c.agent.num_self_eval, c.agent.num_evaluator = 2, 60, 3, 3
    c.agent.num_edit_images = 2
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
  return c
