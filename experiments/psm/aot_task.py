"""The PSM language model (configs/lm.py) without weights or data, for ahead-of-time compilation.

  python -m jaxlab.train.aot --config=experiments/psm/configs/lm.py:paper --topology=v5p:2x2x2

The first model of the config's sweep that is a Transformer-PSM, at its first chunk size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jaxlab.data import lm_task
from jaxlab.train import aot

from experiments.psm import lm as psm_lm


def abstract_task(config: ml_collections.ConfigDict) -> aot.AbstractTask:
  if config.data.task != "lm":
    raise SystemExit(f"config.data.task={config.data.task!r}: the AOT task builder covers the PSM LM "
                     "(experiments/psm/configs/lm.py)")
  seq_len = int(config.data.seq_len)
  model = psm_lm.make_model(config, "psm", int(config.data.vocab_size), int(config.model.chunk_sizes[0]))
  window = jax.ShapeDtypeStruct((int(config.batch_size), seq_len), jnp.int32)
  return aot.AbstractTask(init_params=lambda rng: model.init(rng, jnp.zeros((1, seq_len), jnp.int32))["params"],
                          loss_fn=lm_task.make_loss_fn(model), batch={"inputs": window, "targets": window},
                          tokens_per_example=seq_len, trainer_config=psm_lm.trainer_config(config))
