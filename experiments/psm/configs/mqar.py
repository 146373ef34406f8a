r"""MQAR (Zoology multi-query associative recall), small CPU version: query accuracy vs PSM chunk size c and
vs the number of key-value pairs, for a causal Transformer, GLA and the Transformer-PSM (c = 16, 32, 64).

  python -m experiments.psm.main --config=experiments/psm/configs/mqar.py --workdir=workdirs/psm_mqar
  python -m experiments.psm.main --config=experiments/psm/configs/mqar.py:tiny --workdir=workdirs/psm_mqar_tiny

Data (jaxlab.data.psm_tasks.mqar): vocabulary 512, keys from the lower half and values from the upper half,
the P key-value pairs first, then each key queried once at a uniformly random later position; only query
positions are labelled. Every model trains on an equal mixture of P in `data.num_pairs` and is evaluated
on fresh sequences for each P in `data.eval_num_pairs`.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                                  # Data, init and shuffling seed.
  c.models = ('transformer', 'gla', 'psm')    # Causal Transformer (RoPE), GLA LM, Transformer-PSM per c.
  c.batch_size = 64                           # Sequences per step.
  c.eval_batch_size = 128                     # Sequences per eval forward pass.
  c.data = ml_collections.ConfigDict()
  c.data.task = 'mqar'                        # Multi-query associative recall.
  c.data.vocab_size = 512                     # Keys from [1, 256), values from [256, 512); 0 is filler.
  c.data.seq_len = 256                        # Tokens per sequence.
  c.data.num_pairs = (4, 8, 16)               # Key-value pairs per training sequence (equal mixture).
  c.data.eval_num_pairs = (4, 8, 16)          # One evaluation set per number of pairs.
  c.data.num_train = 60000                    # Training sequences (split equally over num_pairs).
  c.data.num_eval = 512                       # Evaluation sequences per number of pairs.
  c.model = ml_collections.ConfigDict()
  c.model.embed_dim = 64                      # Width of every model.
  c.model.num_heads = 4                       # Heads of the Transformer and GLA.
  c.model.num_layers = 2                      # Layers of the Transformer / GLA LMs.
  c.model.scan_chunk_size = 64                # Chunk length of GLA's chunkwise scan (not the PSM's c).
  c.model.chunk_sizes = (16, 32, 64)          # Transformer-PSM chunk sizes c: one run each.
  c.model.psm_heads = 1                       # Heads of the PSM's Agg / Inf blocks (paper: 1; 0 = num_heads).
  c.model.agg_layers = 2                      # Transformer-PSM: bidirectional Agg layers (paper: 2).
  c.model.inf_layers = 2                      # Transformer-PSM: causal Inf layers (paper: 2).
  c.train = ml_collections.ConfigDict()       # jaxlab trainer settings.
  c.train.total_steps = 2000                  # Optimiser steps per model (CPU budget).
  c.train.num_microbatches = 1                # Gradient accumulation.
  c.train.log_every = 100                     # Metrics cadence.
  c.train.eval_every = 500                    # Held-out query accuracy during training.
  c.train.checkpoint_every = 500              # Checkpoint cadence (resume).
  c.train.keep_checkpoints = 1                # Checkpoints kept.
  c.train.ema_decay = 0.0                     # No EMA.
  c.train.measure_peak = False                # No peak-memory probe.
  c.train.peak_flops_per_device = 0.0         # MFU denominator (unused).
  c.train.mesh = dict(data=1, fsdp=1, tensor=1)  # Single device.
  c.train.sharding_rules = None               # Default rules.
  c.train.optimizer = dict(name='adamw', learning_rate=1e-3, schedule='warmup_cosine', warmup_steps=100,
                           weight_decay=0.01, b1=0.9, b2=0.98, eps=1e-8, grad_clip_norm=1.0,
                           momentum=0.9, end_lr_fraction=0.1)  # AdamW (paper: lr 1e-4, wd 0.01, batch 32).
  if arg == 'tiny':
    c.data.seq_len, c.data.num_pairs, c.data.eval_num_pairs = 32, (2, 4), (2, 4)
    c.data.num_train, c.data.num_eval, c.data.vocab_size = 256, 16, 64
    c.model.embed_dim, c.model.chunk_sizes, c.model.scan_chunk_size = 32, (8, 16), 8
    c.batch_size, c.eval_batch_size = 16, 16
    c.train.total_steps, c.train.log_every, c.train.eval_every, c.train.checkpoint_every = 4, 2, 0, 0
    c.train.optimizer.warmup_steps = 1
  elif arg is not None:
    raise ValueError(f'Unknown config argument {arg!r}; expected None or "tiny".')
  return c
