r"""Group word problems (S5 and the cheaper S3, A4, A5, parity): train on lengths <= 18, evaluate accuracy at
every length up to 128.

  python -m experiments.psm.main --config=experiments/psm/configs/s5.py --workdir=workdirs/psm_s5
  python -m experiments.psm.main --config=experiments/psm/configs/s5.py:s3 --workdir=workdirs/psm_s3
  python -m experiments.psm.main --config=experiments/psm/configs/s5.py:parity --workdir=workdirs/psm_parity
  python -m experiments.psm.main --config=experiments/psm/configs/s5.py:tiny --workdir=workdirs/psm_tiny

Variants: '' (S5) and 'parity' train 500 steps on a fixed set of 20,000 problems; 's3', 'a4', 'a5' train
1,500 steps on fresh problems every step with a length curriculum (the longest training length grows from
min_len to 18 over the first 500 steps); 'tiny' is the smoke test.
"""

import ml_collections

from experiments.psm.configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                                  # Data, init and shuffling seed.
  c.models = ('transformer', 'gla', 'psm')    # Causal Transformer (RoPE), GLA LM, Transformer-PSM.
  c.batch_size = 64                           # Sequences per step.
  c.eval_batch_size = 128                     # Sequences per eval forward pass.
  c.data = ml_collections.ConfigDict()
  c.data.task = 's5'                          # A group of psm_tasks.GROUPS: 's5', 'a5', 'a4', 's3', 'parity'.
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
  c.train = base.trainer_config(500, log_every=100, eval_every=0, checkpoint_every=500, learning_rate=1e-3,
                                warmup_steps=100)  # Paper: lr 1e-4, wd 0.01.
  if arg == 'parity':
    c.data.task = 'parity'
    c.train.total_steps = 500
  elif arg in ('s3', 'a4', 'a5'):
    c.data.task, c.data.num_train, c.data.curriculum_steps = arg, 0, 500
    c.train.total_steps, c.train.eval_every = 1500, 250
  elif arg == 'tiny':
    c.data.task = 'parity'
    c.data.num_train, c.data.num_eval, c.data.eval_len = 256, 16, 32
    c.model.embed_dim = 32
    c.train.total_steps, c.train.log_every, c.train.checkpoint_every = 5, 1, 0
    c.train.optimizer.warmup_steps = 1
  elif arg is not None:
    raise ValueError(f'Unknown config argument {arg!r}; expected None, "parity", "s3", "a4", "a5" or "tiny".')
  return c
