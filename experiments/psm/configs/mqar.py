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

from experiments.psm.configs import base


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
  c.train = base.trainer_config(2000, log_every=100, eval_every=500, checkpoint_every=500, learning_rate=1e-3,
                                warmup_steps=100)  # Paper: lr 1e-4, wd 0.01, batch 32.
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
