"""The trainer's default config: every key ``jaxlab.train.train`` reads, each documented.

Experiment configs build on it (``c = jaxlab.train.default_config()`` then add ``data`` / ``model`` blocks
and override what differs), so a pip-installed jaxlab documents its own trainer keys:

  from jaxlab.train import default_config
  config = default_config()
  config.total_steps, config.batch_size = 100, 16
  print(config)                         # every key with its default
"""

from __future__ import annotations

import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """A fresh (unlocked) ConfigDict with the trainer's keys and their defaults."""
  c = ml_collections.ConfigDict()
  c.seed = 0                      # RNG seed: init, dropout and data order
  c.total_steps = 1000            # optimiser updates (a rerun with more steps resumes and continues)
  c.batch_size = 32               # global batch (examples), split over the data×fsdp mesh axes
  c.num_microbatches = 1          # gradient accumulation: micro-batches per update
  c.log_every = 50                # steps between progress lines / metric rows (metrics.jsonl, TensorBoard)
  c.eval_every = 0                # steps between eval passes (0: only at the end)
  c.checkpoint_every = 0          # steps between checkpoints (0: never; the end of the run still is not saved)
  c.keep_checkpoints = 3          # checkpoints kept on disk
  c.ema_decay = 0.0               # EMA of params used for eval (0 disables)
  c.measure_peak = False          # time a matmul at start-up as the MFU denominator
  c.peak_flops_per_device = 0.0   # known peak FLOP/s per device (0: measure if measure_peak, else no MFU)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)  # mesh axis sizes; -1 takes the remaining devices
  c.sharding_rules = None         # logical→mesh rules; None uses jaxlab.train.mesh.DEFAULT_RULES

  c.optimizer = ml_collections.ConfigDict()  # see jaxlab.train.optim for every field
  c.optimizer.name = "adamw"              # adamw | muon | sgd
  c.optimizer.learning_rate = 1e-3        # peak learning rate
  c.optimizer.schedule = "warmup_cosine"  # warmup_cosine | constant | linear
  c.optimizer.warmup_steps = 0            # linear warmup steps (< total_steps unless constant)
  c.optimizer.end_lr_fraction = 0.1       # final lr as a fraction of the peak (cosine)
  c.optimizer.weight_decay = 0.0          # decoupled weight decay on matrices
  c.optimizer.b1 = 0.9                    # Adam β1
  c.optimizer.b2 = 0.95                   # Adam β2
  c.optimizer.eps = 1e-8                  # Adam ε
  c.optimizer.momentum = 0.9              # SGD momentum / Muon β
  c.optimizer.grad_clip_norm = 1.0        # global-norm clipping (0 disables)
  return c
