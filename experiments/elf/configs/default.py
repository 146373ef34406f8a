r"""ELF (embedded language flows) and the MDLM baseline on Shakespeare, MiniLM WordPiece windows of 64.

Runs (each ≲ 30 min on the shared 2-core CPU; measured times in experiments/elf/README.md):
  python -m experiments.elf.main --config=experiments/elf/configs/default.py --workdir=workdirs/elf_x
  python -m experiments.elf.main --config=experiments/elf/configs/default.py:vpred --workdir=workdirs/elf_v
  python -m experiments.elf.main --config=experiments/elf/configs/default.py:learned --workdir=workdirs/elf_learned
  python -m experiments.elf.main --config=experiments/elf/configs/default.py:mdlm --workdir=workdirs/mdlm
Tiny variant (seconds; the entry test): `default.py:tiny` (combine: `default.py:tiny,mdlm`).
Variants (comma-separated): vpred, eps (prediction target), learned (learnable embedding table instead of
the frozen MiniLM encoder), noguide (no training-time guidance), mdlm (the masked-diffusion baseline), tiny.
Every run shares `config.data.data_dir` (windows, vocabulary, the cached MiniLM latents, the evaluator-LM
text), so the encoder runs once for all of them.
"""

import ml_collections

VARIANTS = ('vpred', 'eps', 'learned', 'noguide', 'mdlm', 'tiny')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variants = [v for v in (arg or '').split(',') if v]
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    raise ValueError(f'unknown config variant(s) {unknown}; expected a comma-separated subset of {VARIANTS}')
  c = ml_collections.ConfigDict()
  c.seed = 0                      # RNG seed: init, noise draws and data order
  c.total_steps = 800             # optimiser updates
  c.batch_size = 16               # global batch (windows; paper 512)
  c.num_microbatches = 1          # gradient accumulation
  c.log_every = 50                # steps between metric lines
  c.eval_every = 400              # steps between validation passes (0: only at the end)
  c.checkpoint_every = 200        # steps between checkpoints
  c.keep_checkpoints = 2          # checkpoints kept
  c.ema_decay = 0.99              # EMA of params for sampling (paper 0.9999 over ~100k+ steps; 0.99 at 800)
  c.measure_peak = False          # skip the matmul-peak timing at start-up
  c.peak_flops_per_device = 190e9  # measured fp32 matmul peak of this 2-core CPU (MFU denominator)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)  # mesh axis sizes; -1 takes the remaining devices
  c.sharding_rules = None         # logical→mesh rules; None = jaxlab.train.mesh.DEFAULT_RULES

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'muon'               # muon (paper) | adamw (the paper's alternative: lr 1e-4)
  c.optimizer.learning_rate = 2e-3        # paper: Muon 2e-3 constant
  c.optimizer.schedule = 'constant'       # constant after warmup (paper)
  c.optimizer.warmup_steps = 50           # linear warmup
  c.optimizer.end_lr_fraction = 0.0       # unused by 'constant'
  c.optimizer.weight_decay = 0.0          # paper: 0
  c.optimizer.b1 = 0.9                    # Adam β1 (Muon's Adam fallback for vectors)
  c.optimizer.b2 = 0.95                   # Adam β2 (paper 0.95)
  c.optimizer.eps = 1e-8                  # Adam ε
  c.optimizer.momentum = 0.95             # Muon β
  c.optimizer.grad_clip_norm = 1.0        # global-norm clipping (paper 1.0)
  c.optimizer.muon_all_matrices = True    # Muon also on rank-3 attention kernels (official: every ≥2-D weight)

  c.data = ml_collections.ConfigDict()
  c.data.corpus = 'shakespeare'   # 'shakespeare' (packaged asset) | 'files'
  c.data.text_files = ()          # text files when corpus == 'files'
  c.data.cache_dir = ''           # asset cache ('' = $JAXLAB_CACHE or ~/.cache/jaxlab)
  c.data.data_dir = 'workdirs/elf_data'  # shared windows / vocab / latent cache / evaluator text ('' = workdir/data)
  c.data.seq_len = 64             # WordPiece tokens per window incl. [CLS] and [SEP] (≤ MiniLM's 512)
  c.data.val_fraction = 0.05      # contiguous tail of windows held out
  c.data.max_train_windows = 0    # cap on training windows (0 = all)
  c.data.max_val_windows = 0      # cap on held-out windows (0 = all)
  c.data.encode_batch_size = 64   # windows per MiniLM forward when building the latent cache
  c.data.eval_batch_size = 64     # validation batch
  c.data.max_eval_batches = 4     # validation batches per eval (0 = all)

  c.model = ml_collections.ConfigDict()
  c.model.kind = 'elf'            # 'elf' | 'mdlm'
  c.model.num_layers = 4          # transformer blocks
  c.model.embed_dim = 256         # residual width d
  c.model.num_heads = 4           # attention heads (head_dim 64)
  c.model.mlp_dim = 0             # SwiGLU hidden (0 = int(4d·2/3) = 682)
  c.model.bottleneck_dim = 128    # ELF input bottleneck (paper 128)
  c.model.num_time_tokens = 4     # ELF in-context time tokens
  c.model.num_guidance_tokens = 4  # ELF guidance-scale tokens
  c.model.num_mode_tokens = 4     # ELF mode tokens
  c.model.decoder_dim = 384       # decode head d -> decoder_dim -> vocab (official: the encoder width)
  c.model.embedding = 'frozen'    # ELF latents: 'frozen' MiniLM | 'learned' table

  c.objective = ml_collections.ConfigDict()
  c.objective.latent_std = 0.2    # latents / 0.2 (paper)
  c.objective.noise_scale = 2.0   # z_t = t·x + (1 - t)·2ε
  c.objective.t_mean = -1.5       # t = sigmoid(N(-1.5, 0.8²))
  c.objective.t_std = 0.8
  c.objective.t_eps = 0.05        # v = (x̂ - z)/max(1 - t, 0.05)
  c.objective.prediction = 'x'    # 'x' (ELF) | 'v' | 'eps'
  c.objective.decoder_prob = 0.2  # share of decode-mode (cross-entropy) steps
  c.objective.decoder_p_mean = 0.8  # decode input p·x + (1 - p)·5ε, p = sigmoid(N(0.8, 0.8²))
  c.objective.decoder_p_std = 0.8
  c.objective.decoder_noise_scale = 5.0
  c.objective.self_cond_prob = 0.5  # self-conditioning probability
  c.objective.guidance_training = True  # training-time CFG with w as an input
  c.objective.guidance_min = 0.5  # log(1 + w) uniform on [log 1.5, log 6]
  c.objective.guidance_max = 5.0

  c.sample = ml_collections.ConfigDict()
  c.sample.num_samples = 64       # samples scored after training
  c.sample.batch = 32             # samples per jitted sampling call
  c.sample.num_steps = 32         # network evaluations (ELF: + 1 decode pass)
  c.sample.method = 'sde'         # ELF: 'sde' | 'ode'
  c.sample.schedule = 'logit_normal'  # ELF time grid: 'logit_normal' | 'uniform'
  c.sample.guidance = 3.0         # ELF guidance scale w (> 0)
  c.sample.gamma = 1.5            # ELF SDE churn (official OWT setting)
  c.sample.seed = 1234            # sampling RNG seed

  c.eval = ml_collections.ConfigDict()
  c.eval.ar_lm_workdir = 'workdirs/elf_evallm'  # experiments/lm run on data_dir/train_text.txt ('' = skip)
  c.eval.smollm2 = True           # also score with SmolLM2-135M (its GGUF asset)
  c.eval.smollm2_samples = 64     # samples scored by SmolLM2 (it is 135M params on CPU)

  if 'vpred' in variants:
    c.objective.prediction = 'v'
  if 'eps' in variants:
    c.objective.prediction = 'eps'
  if 'learned' in variants:
    c.model.embedding = 'learned'
  if 'noguide' in variants:
    c.objective.guidance_training = False
    c.sample.guidance = 1.0
  if 'mdlm' in variants:
    c.model.kind = 'mdlm'
    # Equal training FLOPs with the ELF default: ELF costs 2.519 GFLOP per window and step (0.8 denoise steps
    # of one no-grad + one fwd/bwd pass, 0.2 decode steps with the vocabulary head), MDLM 3.208 (its
    # vocabulary head runs every step): 800 × 2.519 / 3.208 = 628 steps (experiments/elf/main.py).
    c.total_steps = 628
    c.eval_every = 314
    c.checkpoint_every = 157
    c.sample.method = 'ancestral'
  if 'tiny' in variants:
    c.total_steps = 4
    c.batch_size = 8
    c.log_every = 2
    c.eval_every = 4
    c.checkpoint_every = 2
    c.optimizer.warmup_steps = 1
    c.data.data_dir = ''
    c.data.max_train_windows = 64
    c.data.max_val_windows = 16
    c.data.seq_len = 16
    c.data.eval_batch_size = 8
    c.data.max_eval_batches = 1
    c.model.num_layers = 2
    c.model.embed_dim = 32
    c.model.num_heads = 2
    c.model.bottleneck_dim = 16
    c.model.decoder_dim = 32
    c.sample.num_samples = 4
    c.sample.batch = 4
    c.sample.num_steps = 2
    c.eval.ar_lm_workdir = ''
    c.eval.smollm2 = False
  return c
