"""The jaxlab LM trained on 8 fake devices (data, fsdp and tensor axes) equals one device."""

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.nn.lm import transformer
from jaxlab.train import Task, train
from tests.train.helpers import base_config


def lm_task(family: str):
  make = transformer.llama_config if family == "llama" else transformer.gpt2_config
  cfg = make(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2 if family == "llama" else None,
             mlp_dim=64, max_len=16)
  model = transformer.DecoderLM(cfg)
  rng = np.random.default_rng(0)
  windows = [{"inputs": w[:-1], "targets": w[1:]} for w in rng.integers(0, 64, (64, 17)).astype(np.int32)]
  data = iter(grain.MapDataset.source(windows).shuffle(seed=0).repeat(None).batch(16, drop_remainder=True))

  def loss_fn(params, batch, rng):
    logits = model.apply({"params": params}, batch["inputs"])
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean(), {}

  return Task(init_params=lambda r: model.init(r, jnp.zeros((1, 16), jnp.int32))["params"], loss_fn=loss_fn,
              train_data=data, tokens_per_example=16)


# SGD, not Adam: GPT-2's key bias has an exactly-zero true gradient (a per-query shift cancels in the
# softmax), so its computed gradient is float noise that Adam would normalise into lr-sized updates.
SGD = {"optimizer.name": "sgd", "optimizer.learning_rate": 0.5, "optimizer.weight_decay": 0.0}


@pytest.mark.parametrize("family", ["llama", pytest.param("gpt2", marks=pytest.mark.slow)])
def test_lm_sharded_equals_single_device(tmp_path, family):
  one = train(base_config(total_steps=2, **SGD), str(tmp_path / "one"), lm_task(family), devices=[jax.devices()[0]])
  many = train(base_config(total_steps=2, mesh=dict(data=2, fsdp=2, tensor=2), **SGD), str(tmp_path / "many"),
               lm_task(family))
  np.testing.assert_allclose(many.train_metrics["loss"], one.train_metrics["loss"], atol=1e-5)
  a, b = jax.device_get(one.state.params), jax.device_get(many.state.params)
  for (path, x), (_, y) in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)):
    np.testing.assert_allclose(x, y, atol=1e-5, err_msg=jax.tree_util.keystr(path))
  # Logical names reached the mesh: attention heads over 'tensor', embeddings' width over 'fsdp'.
  q = many.state.params["layers_0"]["attn"]["query"]["kernel"]
  assert q.sharding.spec[:2] == ("fsdp", "tensor")
  assert tuple(many.state.params["embed"]["embedding"].sharding.spec) == ("tensor", "fsdp")
