r"""Gradient descent simulating prompting on synthetic characters (experiments/gd_prompting).

  python -m experiments.gd_prompting.main --config=experiments/gd_prompting/configs/default.py --workdir=workdirs/gd_prompting
  python -m experiments.gd_prompting.main --config=experiments/gd_prompting/configs/default.py:tiny --workdir=workdirs/gd_tiny

Pretraining and meta-training each run through the one trainer (`pretrain` and `meta` hold its keys); both
checkpoint, so rerunning a command in its workdir resumes (a finished stage is restored, not retrained).
"""

import ml_collections

from jaxlab.train import default_config


def _trainer(steps: int, batch: int, lr: float, checkpoint_every: int) -> ml_collections.ConfigDict:
  """The trainer's keys, set to plain Adam at a constant rate (no clipping, no decay, no warmup)."""
  t = default_config()
  t.total_steps, t.batch_size, t.log_every, t.checkpoint_every = steps, batch, 10, checkpoint_every
  t.mesh = dict(data=1, fsdp=1, tensor=1)
  t.optimizer.learning_rate, t.optimizer.schedule = lr, 'constant'
  t.optimizer.b2, t.optimizer.grad_clip_norm = 0.999, 0.0
  return t


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                              # Init and training-data seed (dev and test items are the same for every seed).
  c.num_names = 32                        # Names in the vocabulary (chance on 'describe' = 1 / num_names).
  c.num_words = 32                        # Description words (chance on 'recall' ~ 1 / num_words).
  c.model = ml_collections.ConfigDict(dict(num_layers=2, embed_dim=64, num_heads=4, mlp_dim=128))  # DecoderLM.
  c.pretrain = _trainer(3000, 64, 3e-3, 1000)  # LM training on prompted sequences c ⊕ q ⊕ a (makes prompting work).
  c.etas = (0.03, 0.1, 0.3, 1.0)          # Inner learning rates tried for the one-step rows (best on dev).
  c.meta = _trainer(1000, 8, 1e-3, 500)   # Meta-training of each arm (tasks of a batch scanned sequentially).
  c.arms = ('lc/second_order', 'lc/first_order')  # Meta-trained models: objective/mode[/subset[/steps]].
  c.interference = 3                      # Rows "then k other contexts": one step on c, then one on each of k others.
  c.num_dev = 256                         # Dev items (eta choice).
  c.num_test = 512                        # Test items per query kind (every row uses the same ones).
  if arg == 'tiny':
    c.model = ml_collections.ConfigDict(dict(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32))
    c.pretrain = _trainer(3, 8, 3e-3, 3)
    c.meta = _trainer(2, 2, 1e-3, 2)
    c.pretrain.log_every = c.meta.log_every = 1
    c.etas, c.arms, c.num_dev, c.num_test = (0.1,), ('lc/second_order',), 8, 8
  elif arg:
    raise ValueError(f'Unknown config variant {arg!r}; expected "" or "tiny".')
  return c
