"""The jaxlab-trainer part (`config.train`) shared by the psm configs: one device, no EMA, AdamW with warmup
and cosine decay to 10 %, global-norm clipping 1.0."""

import ml_collections


def trainer_config(total_steps: int, *, log_every: int, eval_every: int, checkpoint_every: int,
                   learning_rate: float, warmup_steps: int, weight_decay: float = 0.01,
                   b2: float = 0.98) -> ml_collections.ConfigDict:
  t = ml_collections.ConfigDict()
  t.total_steps = total_steps                 # Optimiser steps per model (CPU budget).
  t.num_microbatches = 1                      # Gradient accumulation.
  t.log_every = log_every                     # Metrics cadence.
  t.eval_every = eval_every                   # In-training held-out eval cadence (0: only at the end).
  t.checkpoint_every = checkpoint_every       # Checkpoint cadence (resume; 0: never).
  t.keep_checkpoints = 1                      # Checkpoints kept.
  t.ema_decay = 0.0                           # No EMA.
  t.measure_peak = False                      # No matmul-peak probe.
  t.peak_flops_per_device = 0.0               # MFU denominator (unused).
  t.mesh = dict(data=1, fsdp=1, tensor=1)     # Single device.
  t.sharding_rules = None                     # Default rules.
  t.optimizer = dict(name='adamw', learning_rate=learning_rate, schedule='warmup_cosine',
                     warmup_steps=warmup_steps, weight_decay=weight_decay, b1=0.9, b2=b2, eps=1e-8,
                     grad_clip_norm=1.0, momentum=0.9, end_lr_fraction=0.1)  # AdamW.
  return t
