r"""VARC offline pretraining on the ARC-1 training tasks (jaxlab trainer).

  python -m experiments.varc.main --config=experiments/varc/configs/pretrain.py:tiny --workdir=workdirs/varc_pre

Argument: comma-separated options: 'noaug' (no scale/translation augmentation), 'paper' (the paper-size default on the mesh of a
v5p-8 slice: python -m jaxlab.train.aot --config=experiments/varc/configs/pretrain.py:paper --topology=v5p:2x2x1),
'tiny' (CPU: ViT 64d/2 blocks, canvas 16, only the training tasks whose grids fit, a few
hundred steps) or '' (paper-like ViT-18M,
canvas 64; paper: 100 epochs, 400 tasks + RE-ARC, which is not available offline).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  tiny = 'tiny' in (arg or '').split(',')
  c = ml_collections.ConfigDict()
  c.mode = 'pretrain'                      # 'pretrain' or 'ttt'.
  c.seed = 0                               # Init, data order and augmentation seed.
  c.init_from = ''                         # Unused in pretraining.
  c.num_renders = 0                        # Unused in pretraining.
  c.model = ml_collections.ConfigDict()
  c.model.size = 'tiny' if tiny else '18m'  # 'tiny', '6m' or '18m' (jaxlab.nn.vision.vit.vit_config).
  c.model.canvas = 16 if tiny else 64      # Canvas side (pixels).
  c.model.patch = 2                        # Patch side.
  c.model.dropout_rate = 0.1 if not tiny else 0.0  # Dropout (paper 0.1; off for the short CPU runs).
  c.model.overrides = ml_collections.ConfigDict(
      {})  # VitConfig field overrides.
  c.data = ml_collections.ConfigDict()
  c.data.task_dir = ''                     # Folder of ARC JSON tasks instead of ARC-1 training ('' = ARC-1).
  c.data.cache_dir = ''                    # Asset cache ('' = $JAXLAB_CACHE or ~/.cache/jaxlab).
  c.data.max_tasks = 0                     # Use only the first N training tasks (0 = all 400).
  c.data.skip_too_large = tiny             # Skip tasks with grids larger than the canvas (else an error).
  c.data.views_per_task = 1  # Geometric/colour variants per task, each its own task token.
  c.data.augment = 'noaug' not in (arg or '')  # Random scale/translation per example.
  # Trainer.
  c.total_steps = 3000 if tiny else 40_000  # Optimiser steps.
  c.batch_size = 16 if tiny else 32        # Global batch.
  c.num_microbatches = 1                   # Gradient accumulation.
  c.log_every = 50                         # Metric logging period (steps).
  c.eval_every = 0                         # No eval during pretraining (TTT evaluates).
  c.checkpoint_every = 1000 if tiny else 2000  # Checkpoint period (steps).
  c.keep_checkpoints = 2                   # Checkpoints kept.
  c.ema_decay = 0.0                        # No EMA.
  c.measure_peak = False                   # Skip the matmul-peak probe.
  c.peak_flops_per_device = 190e9 if tiny else 0.0  # MFU denominator (2-core CPU: 190 GFLOP/s).
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=1))  # Device mesh.
  if 'paper' in (arg or '').split(','):  # the 18M ViT data-parallel over a v5p-8 slice (4 chips; jaxlab.train.aot)
    c.mesh = ml_collections.ConfigDict(dict(data=4, fsdp=1, tensor=1))
  c.sharding_rules = None                  # Default logical-axis rules.
  c.optimizer = ml_collections.ConfigDict(dict(
      name='adamw', learning_rate=2e-3 if tiny else 3e-4, schedule='warmup_cosine',
      warmup_steps=100 if tiny else 4000, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8,
      grad_clip_norm=1.0, momentum=0.9, end_lr_fraction=0.0))  # Paper: AdamW 3e-4, wd 0, cosine, clip 1.
  return c
