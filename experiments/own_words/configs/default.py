r"""User-turn-only prompting and the context filter (experiments/own_words).

  python -m experiments.own_words.main --config=experiments/own_words/configs/default.py --workdir=workdirs/own_words
  python -m experiments.own_words.main --config=experiments/own_words/configs/default.py --config.model=gemma3 --workdir=workdirs/own_words_gemma
  python -m experiments.own_words.main --config=experiments/own_words/configs/default.py:tiny --workdir=workdirs/ow_tiny
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                              # Conversation draw, sampling and filter split seed.
  c.model = 'smollm2'                     # smollm2 | gemma3 | tiny_random (random 1-layer model: pipeline tests).
  c.num_conversations = 32                # Synthetic conversations (dialogues.py).
  c.rounds = 4                            # User turns per conversation.
  c.modes = ('full', 'user_only', 'summary')  # Context builders compared (jaxlab.agents.context.MODES).
  c.max_new_tokens = 16                   # Answer length cap (greedy).
  c.batch_size = 32                       # Conversations per generate call.
  c.sharegpt = ml_collections.ConfigDict(dict(
      enabled=True,                       # Part 1: ShareGPT context statistics (the `sharegpt` asset, 27 MB).
      limit=0,                            # Read at most this many conversations (0 = all that decode).
      min_rounds=5, max_rounds=10))       # The paper's round filter.
  c.filter = ml_collections.ConfigDict(dict(
      enabled=True,                       # Part 3: the context filter on the FC / AO runs.
      pca_dim=20,                         # PCA components of the prompt and history embeddings (paper: 20).
      n_search=20,                        # Randomised-search draws of the L1 strength C (5-fold F1).
      taus=(0., .1, .2, .3, .4, .5, .6, .7, .8, .9, 1.),  # FC where P(FC preferred) >= tau.
      seed=0))
  if arg == 'tiny':
    c.model, c.num_conversations, c.rounds, c.max_new_tokens, c.batch_size = 'tiny_random', 4, 2, 2, 4
    c.modes = ('full', 'user_only')
    c.sharegpt.enabled = False
    c.filter.enabled, c.filter.n_search, c.filter.pca_dim = True, 2, 2
  elif arg:
    raise ValueError(f'Unknown config variant {arg!r}; expected "" or "tiny".')
  return c
