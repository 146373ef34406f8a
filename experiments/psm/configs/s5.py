r"""S5 (or parity) word problems: train on lengths <= 18, evaluate accuracy at every length up to 128.

  python -m experiments.psm.main --config=experiments/psm/configs/s5.py --workdir=workdirs/psm_s5
  python -m experiments.psm.main --config=experiments/psm/configs/s5.py:parity --workdir=workdirs/psm_parity
  python -m experiments.psm.main --config=experiments/psm/configs/s5.py:tiny --workdir=workdirs/psm_tiny
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                                  # Data, init and shuffling seed.
  c.models = ('transformer', 'gla', 'psm')    # Causal Transformer (RoPE), GLA LM, Transformer-PSM.
  c.batch_size = 64                           # Sequences per step.
  c.eval_batch_size = 128                     # Sequences per eval forward pass.
  c.data = ml_collections.ConfigDict()
  c.data.task = 's5'                          # 's5' (120 permutations) or 'parity'.
  c.data.num_train = 20000                    # Training sequences (0: fresh sequences every step).
  c.data.curriculum_steps = 0                 # With num_train = 0: steps over which the longest training
                                              # length grows from min_len to train_max_len (0: none).
  c.data.min_len = 4                          # Shortest training length.
  c.data.train_max_len = 18                   # Longest training length (padded to this).
  c.data.num_eval = 256                       # Evaluation sequences.
  c.data.eval_len = 128                       # Evaluation length: accuracy at every length up to this.
  c.model = ml_collections.ConfigDict()
  c.model.embed_dim = 64                      # Width of every model.
  c.model.num_heads = 4                       # Heads (attention, GLA, Agg/Inf).
  c.model.num_layers = 2                      # Layers of the Transformer / GLA LMs.
  c.model.scan_chunk_size = 16                # Chunk length of the chunkwise affine scans.
  c.model.chunk_sizes = (1,)                  # Transformer-PSM chunk size c (one run per entry).
  c.model.psm_heads = 0                       # Heads of the PSM's Agg / Inf blocks (0 = num_heads).
  c.model.agg_layers = 1                      # Transformer-PSM: bidirectional Agg layers.
  c.model.inf_layers = 1                      # Transformer-PSM: causal Inf layers.
  c.train = ml_collections.ConfigDict()       # jaxlab trainer settings.
  c.train.total_steps = 500                   # Optimiser steps per model (CPU budget).
  c.train.num_microbatches = 1                # Gradient accumulation.
  c.train.log_every = 100                     # Metrics cadence.
  c.train.eval_every = 0                      # No in-training eval (accuracy is measured afterwards).
  c.train.checkpoint_every = 500              # Checkpoint cadence (resume).
  c.train.keep_checkpoints = 1                # Checkpoints kept.
  c.train.ema_decay = 0.0                     # No EMA.
  c.train.measure_peak = False                # No peak-memory probe.
  c.train.peak_flops_per_device = 0.0         # MFU denominator (unused).
  c.train.mesh = dict(data=1, fsdp=1, tensor=1)  # Single device.
  c.train.sharding_rules = None               # Default rules.
  c.train.optimizer = dict(name='adamw', learning_rate=1e-3, schedule='warmup_cosine', warmup_steps=100,
                           weight_decay=0.01, b1=0.9, b2=0.98, eps=1e-8, grad_clip_norm=1.0,
                           momentum=0.9, end_lr_fraction=0.1)  # AdamW (paper: lr 1e-4, wd 0.01).
  if arg == 'parity':
    c.data.task = 'parity'
    c.train.total_steps = 500
  elif arg == 'tiny':
    c.data.task = 'parity'
    c.data.num_train, c.data.num_eval, c.data.eval_len = 256, 16, 32
    c.model.embed_dim = 32
    c.train.total_steps, c.train.log_every, c.train.checkpoint_every = 5, 1, 0
    c.train.optimizer.warmup_steps = 1
  elif arg is not None:
    raise ValueError(f'Unknown config argument {arg!r}; expected None, "parity" or "tiny".')
  return c
