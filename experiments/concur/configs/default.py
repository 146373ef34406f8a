"""CONCUR: routing tasks to computation strategies (model × decoding), continual, with and without budgets.

  python -m experiments.concur.main --config=experiments/concur/configs/default.py --workdir=workdirs/concur
  python -m experiments.concur.main --config=experiments/concur/configs/default.py:tiny --workdir=workdirs/concur_tiny

`tiny` routes a synthetic toy outcome table (no models, hashed bag-of-words embeddings): the entry test.
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seeds = (0, 1, 2)               # predictor seeds (kNN, oracle and the table do not depend on them)
  c.split_seed = 0                  # train/val/test split of the in-distribution tasks
  c.split = (0.5, 0.2, 0.3)         # train / val / test fractions of each in-distribution family
  c.embedder = 'minilm'             # 'minilm' (frozen all-MiniLM-L6-v2) | 'hash' (toy, for the tiny run)
  c.ws = tuple(round(0.05 * i, 2) for i in range(21))  # unconstrained trade-off sweep
  c.budget_fractions = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75)  # budgets B as fractions of the costliest
  #                                                     strategy's mean training cost
  c.knapsack_resolution = 2000      # cost units of the global DP
  c.max_epochs = 100                # predictor training (AdamW 1e-3, batch 32, eval every 3 epochs, patience 5)
  c.patience = 5
  c.eval_every_epochs = 3
  c.hidden = 128
  c.ablations = ('task_only', 'monolithic', 'knn')  # routers besides CONCUR's
  c.continual_orders = ('fixed', 'shuffled')
  c.continual_monolithic_seeds = (0, 1, 2)  # seeds of the monolithic router retrained at every arrival
  c.table_csv = ''                  # read the outcome table from this CSV instead of building it

  t = c.table = ml_collections.ConfigDict()
  t.models = ('smollm2', 'gemma3')
  t.methods = {'smollm2': ('direct', 'cot', 'sc4'), 'gemma3': ('direct',)}  # sc4 also gives sc2
  t.families = ('basic_arithmetic', 'chain_sum', 'products', 'leg_counting', 'letter_counting',
                'family_relationships')
  t.ood_families = ('gcd', 'spell_backward')  # held out: test only
  t.n_per_family = 12
  t.seed = 0
  t.direct_tokens = 8               # new tokens of a direct answer
  t.cot_tokens = 32                 # new tokens of a chain of thought
  t.sc_prompt = 'direct'            # self-consistency samples the direct prompt (budget; see README)
  t.temperature = 0.7
  t.batch_size = 48
  t.prompt_len = 128                # every prompt left-padded to this (one compilation per method)
  t.specialist_size = 'base'        # 2-layer char transformer, width 64
  t.specialist_steps = 600          # what this session's loaded CPU afforded (~6 min); undertrained
  t.specialist_batch = 64
  c.toy_tasks = 0                   # > 0: a synthetic toy table of this many tasks per family (tiny run)

  if arg == 'tiny':
    c.seeds = (0,)
    c.embedder = 'hash'
    c.toy_tasks = 24
    c.max_epochs = 12
    c.patience = 2
    c.ws = (0., 0.5, 0.9, 1.)
    c.budget_fractions = (0.1, 0.5)
    c.continual_monolithic_seeds = (0,)
    c.knapsack_resolution = 200
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
  c.lock()
  return c
