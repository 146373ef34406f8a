r"""Circuits and functional interchangeability on SmolLM2-135M-Instruct, one task per run.

  python -m experiments.circuits.main --config=experiments/circuits/configs/default.py:ioi \
      --workdir=workdirs/circuits_ioi
Variants: ioi | greater_than | entity2 | entity3 (one task each, < 25 min on the shared 2-core CPU),
behaviour (all four tasks' accuracy only, no circuit analysis), tiny (the entry test: 2 of the 30 layers,
4 prompts, IOI).
"""

import ml_collections

TASKS = ('ioi', 'greater_than', 'entity2', 'entity3')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.tasks = 'ioi'                 # comma-separated: ioi, greater_than, entity2, entity3
  c.num_layers = 0                # 0: all 30 layers; n > 0 keeps the first n (the tiny entry test)
  c.num_prompts = 4               # prompts per task (one batch of one token length; 4 keeps a run < 25 min here)
  c.seed = 0                      # prompt draws, clusterer restarts and the null's partitions
  c.min_accuracy = 0.7            # below this clean accuracy the task is reported and dropped
  c.analyse = True                # False: behaviour only
  c.top_k = 8                     # heads (by |noising patching effect|) that are clustered and swapped
  c.resid_stride = 10             # residual denoising at every resid_stride-th layer
  c.pairs_per_call = 8            # swaps per forward (the prompt batch is tiled that many times)
  c.null_partitions = 1000        # random partitions of the same sizes for I(C)'s null
  c.norm_matched_swaps = True     # also swap with o_h' rescaled to |o_h| per position (a second r matrix)
  if arg in TASKS:
    c.tasks = arg
  elif arg == 'behaviour':
    c.tasks = ','.join(TASKS)
    c.analyse = False
    c.num_prompts = 32
  elif arg == 'tiny':
    c.num_layers, c.num_prompts, c.top_k = 2, 4, 4
    c.null_partitions, c.min_accuracy, c.pairs_per_call = 50, 0.0, 4
  elif arg not in (None, ''):
    raise ValueError(f"unknown config variant {arg!r}; expected '', {', '.join(TASKS)}, 'behaviour' or 'tiny'")
  return c
