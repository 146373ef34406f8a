"""VARC offline pretraining without weights or data, for ahead-of-time compilation (jaxlab.train.aot).

  python -m jaxlab.train.aot --config=experiments/varc/configs/pretrain.py:paper --topology=v5p:2x2x1
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jaxlab.nn.vision import vit
from jaxlab.train import aot

from experiments.varc import ttt as ttt_lib

ARC1_TRAINING_TASKS = 400


def abstract_task(config: ml_collections.ConfigDict) -> aot.AbstractTask:
  """The VARC ViT of `config.model` with one task token per ARC-1 training task and view."""
  num_tasks = (int(config.data.max_tasks) or ARC1_TRAINING_TASKS) * int(config.data.views_per_task)
  mcfg = ttt_lib.model_config(config, num_tasks)
  model = vit.VarcViT(mcfg)
  b, c = int(config.batch_size), mcfg.canvas
  sds = jax.ShapeDtypeStruct
  batch = {"inputs": sds((b, c, c), jnp.int32), "targets": sds((b, c, c), jnp.int32),
           "loss_mask": sds((b, c, c), jnp.float32), "key_mask": sds((b, (c // mcfg.patch) ** 2), jnp.bool_),
           "task_id": sds((b,), jnp.int32)}
  return aot.AbstractTask(
      init_params=lambda rng: model.init(rng, jnp.zeros((1, c, c), jnp.int32), jnp.zeros((1,), jnp.int32))["params"],
      loss_fn=ttt_lib.make_loss_fn(model), batch=batch, tokens_per_example=mcfg.num_patches + 1)
