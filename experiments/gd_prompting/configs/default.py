r"""Gradient descent simulating prompting on synthetic characters (experiments/gd_prompting).

  python -m experiments.gd_prompting.main --config=experiments/gd_prompting/configs/default.py --workdir=workdirs/gd_prompting
  python -m experiments.gd_prompting.main --config=experiments/gd_prompting/configs/default.py:tiny --workdir=workdirs/gd_tiny
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                              # Data and init seed.
  c.num_names = 32                        # Names in the vocabulary (chance on 'describe' = 1 / num_names).
  c.num_words = 32                        # Description words (chance on 'recall' ~ 1 / num_words).
  c.model = ml_collections.ConfigDict(dict(num_layers=2, embed_dim=64, num_heads=4, mlp_dim=128))  # DecoderLM.
  c.pretrain_steps = 3000                 # LM steps on prompted sequences c ⊕ q ⊕ a (makes prompting work).
  c.pretrain_batch = 64                   # Sequences per pretraining step.
  c.pretrain_lr = 3e-3                    # Adam learning rate of pretraining.
  c.etas = (0.03, 0.1, 0.3, 1.0)          # Inner learning rates tried for the one-step rows (best on dev).
  c.meta_steps = 1000                     # Meta-training steps (LC, second order, subset 'all').
  c.meta_batch = 8                        # Tasks per meta-step (scanned sequentially).
  c.meta_lr = 1e-3                        # Adam learning rate of meta-training.
  c.arms = ('lc/second_order', 'lc/first_order')  # Meta-trained models: objective/mode[/subset[/steps]].
  c.num_dev = 256                         # Dev items (eta choice).
  c.num_test = 512                        # Test items per query kind (every row uses the same ones).
  if arg == 'tiny':
    c.model = ml_collections.ConfigDict(dict(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32))
    c.pretrain_steps, c.pretrain_batch, c.meta_steps, c.meta_batch = 3, 8, 2, 2
    c.etas, c.arms, c.num_dev, c.num_test = (0.1,), ('lc/second_order',), 8, 8
  elif arg:
    raise ValueError(f'Unknown config variant {arg!r}; expected "" or "tiny".')
  return c
