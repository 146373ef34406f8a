r"""MQAR (Zoology multi-query associative recall), small CPU version: query accuracy vs PSM chunk size c and
vs the number of key-value pairs, for a causal Transformer, GLA and the Transformer-PSM (c = 16, 32, 64).

  python -m experiments.psm.main --config=experiments/psm/configs/mqar.py --workdir=workdirs/psm_mqar
  python -m experiments.psm.main --config=experiments/psm/configs/mqar.py:tiny --workdir=workdirs/psm_mqar_tiny

Data (jaxlab.data.psm_tasks.mqar): vocabulary 32, keys from the lower half and values from the upper half,
the P key-value pairs first, then each key queried once at a uniformly random later position; only query
positions are labelled. Every model trains on sequences with P in `data.num_pairs` (here only P = 2) and is
evaluated on fresh sequences for each P in `data.eval_num_pairs` (2, 4, 8: recall of more pairs than trained on).

Why so small (pilots, experiments/psm/README.md "MQAR"): recall needs an induction-style circuit, and a
2-layer Transformer sits on the 1/P "some value from the context" plateau until it forms. In the pilots
(vocab 512 at length 128 / 256 with P in (4, 8, 16), and vocab 128 at length 64 with P in (2, 4, 8)) no
Transformer left the plateau in 1,000-3,000 steps (lr 1e-3 to 1e-2, d 64 or 128); with vocab 32, P = 2
and lr 1e-3 it left it after ~900 steps at length 16 and ~2,100 steps at length 64. Length 64 is the
longest that fits the CPU budget, so c = 64 is a single chunk (no state passing) and c = 16 / 32 pass the
pairs to later chunks through the scanned state.
"""

import ml_collections

from experiments.psm.configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                                  # Data, init and shuffling seed.
  c.models = ('transformer', 'gla', 'psm')    # Causal Transformer (RoPE), GLA LM, Transformer-PSM per c.
  c.batch_size = 32                           # Sequences per step (paper: 32).
  c.eval_batch_size = 128                     # Sequences per eval forward pass.
  c.data = ml_collections.ConfigDict()
  c.data.task = 'mqar'                        # Multi-query associative recall.
  c.data.vocab_size = 32                      # Keys from [1, 16), values from [16, 32); 0 is filler.
  c.data.seq_len = 64                         # Tokens per sequence (4 chunks at c = 16, 1 at c = 64).
  c.data.num_pairs = (2,)                     # Key-value pairs per training sequence (equal mixture).
  c.data.eval_num_pairs = (2, 4, 8)           # One evaluation set per number of pairs.
  c.data.num_train = 96000                    # Training sequences (split equally over num_pairs; 1 epoch).
  c.data.num_eval = 256                       # Evaluation sequences per number of pairs.
  c.model = ml_collections.ConfigDict()
  c.model.embed_dim = 64                      # Width of every model.
  c.model.num_heads = 4                       # Heads of the Transformer and GLA.
  c.model.num_layers = 2                      # Layers of the Transformer / GLA LMs.
  c.model.scan_chunk_size = 16                # Chunk length of GLA's chunkwise scan (not the PSM's c).
  c.model.chunk_sizes = (16, 32, 64)          # Transformer-PSM chunk sizes c: one run each.
  c.model.psm_heads = 1                       # Heads of the PSM's Agg / Inf blocks (paper: 1; 0 = num_heads).
  c.model.agg_layers = 2                      # Transformer-PSM: bidirectional Agg layers (paper: 2).
  c.model.inf_layers = 2                      # Transformer-PSM: causal Inf layers (paper: 2).
  c.train = base.trainer_config(3000, log_every=100, eval_every=500, checkpoint_every=500, learning_rate=1e-3,
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
