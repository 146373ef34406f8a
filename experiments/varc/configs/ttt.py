r"""VARC test-time training + multi-view evaluation on a fixed list of ARC-1 evaluation tasks.

  python -m experiments.varc.main --config=experiments/varc/configs/ttt.py:tiny \
      --config.init_from=workdirs/varc_pre/params.msgpack --workdir=workdirs/varc_ttt

Argument: comma-separated options: 'tiny' (CPU sizes), 'noaug' (no scale/translation in TTT or
inference). TTT from scratch: leave init_from empty. TTT uses jaxlab.train.step.make_train_step jitted
once and a Python loop over tasks (each task independent, fresh task tokens, all weights tuned).
"""

import ml_collections

# The 13 ARC-1 evaluation tasks whose largest grid side is at most 6 pixels (every grid of the task,
# demos and tests): the cheapest on CPU, they fit a 16x16 canvas at scale 1-2 (3x3 ones up to 4), and
# they are the likeliest to be learnt by a tiny model in a few hundred TTT steps.
SMALL_EVAL_TASKS = ('6ea4a07e', '66e6c45b', '4cd1b7b2', 'be03b35f', 'ca8de6ea', 'e633a9e5', '00576224',
                    '2072aba6', '68b67ca3', 'a8610ef7', '31d5ba1a', 'b1fc8b8e', 'ed98d772')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  opts = set((arg or '').split(','))
  tiny = 'tiny' in opts
  c = ml_collections.ConfigDict()
  c.mode = 'ttt'                           # 'pretrain' or 'ttt'.
  c.seed = 0                               # TTT seed (task i uses seed + i).
  c.init_from = ''                         # params.msgpack from pretraining ('' = TTT from scratch).
  c.num_renders = 4                        # PNG renderings of the first N tasks.
  c.model = ml_collections.ConfigDict()
  c.model.size = 'tiny' if tiny else '18m'  # Must match the pretrained model.
  c.model.canvas = 16 if tiny else 64      # Canvas side.
  c.model.patch = 2                        # Patch side.
  c.model.dropout_rate = 0.0 if tiny else 0.1  # Dropout.
  c.model.overrides = ml_collections.ConfigDict(
      {})  # VitConfig overrides.
  c.data = ml_collections.ConfigDict()
  c.data.task_dir = ''                     # Folder of ARC JSON tasks instead of ARC-1 evaluation.
  c.data.cache_dir = ''                    # Asset cache ('' = default).
  c.data.task_ids = SMALL_EVAL_TASKS if tiny else ()  # Tasks to evaluate (() = all).
  c.ttt = ml_collections.ConfigDict()
  c.ttt.loop = 'python'                    # Tasks run one after another with a shared jitted step.
  c.ttt.num_pseudo_tasks = 16 if tiny else 51  # Pseudo-tasks (fresh task tokens) per task (paper 51).
  c.ttt.steps = 400 if tiny else 2500      # TTT optimiser steps per task (paper ~100 epochs at batch 8).
  c.ttt.batch_size = 8                     # TTT batch (paper 8).
  c.ttt.learning_rate = 2e-3 if tiny else 3e-4  # Peak lr (paper 3e-4).
  c.ttt.warmup_steps = 20 if tiny else 100  # Linear warmup, then cosine to 0.
  c.ttt.grad_clip_norm = 1.0               # Global-norm clipping.
  c.ttt.augment = 'noaug' not in opts      # Random scale/translation in TTT and inference.
  c.ttt.view_tasks = 16 if tiny else 51    # Pseudo-tasks used as views at inference.
  c.ttt.draws = 4 if tiny else 10          # Random placements per pseudo-task (views = view_tasks x draws).
  return c
