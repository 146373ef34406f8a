"""The lm experiment's task without weights or data, for ahead-of-time compilation (jaxlab.train.aot).

  python -m jaxlab.train.aot --config=experiments/lm/configs/default.py:paper --topology=v5p:4x4x4
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from jaxlab.data import lm_task
from jaxlab.nn.lm import transformer
from jaxlab.train import aot


def abstract_task(config: ml_collections.ConfigDict) -> aot.AbstractTask:
  """The DecoderLM of `config.model` at vocabulary `config.data.vocab_size` on [batch_size, seq_len] windows."""
  seq_len = int(config.data.seq_len)
  model = transformer.DecoderLM(lm_task.model_config(config, int(config.data.vocab_size), seq_len))
  window = jax.ShapeDtypeStruct((int(config.batch_size), seq_len), jnp.int32)
  return aot.AbstractTask(init_params=lambda rng: model.init(rng, jnp.zeros((1, seq_len), jnp.int32))["params"],
                          loss_fn=lm_task.make_loss_fn(model), batch={"inputs": window, "targets": window},
                          tokens_per_example=seq_len)
