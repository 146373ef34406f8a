"""LoRA on the real SmolLM2-135M (session fixture `smollm2` of tests/io/conftest.py)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn import lora
from jaxlab.nn.lm.transformer import DecoderLM


def test_lora_on_smollm2_zero_init_exact_and_merge(smollm2):
  cfg, params, _, tok = smollm2
  params = jax.tree.map(jnp.asarray, params)
  model = DecoderLM(cfg)
  tokens = jnp.asarray([tok.encode('The capital of France is Paris.').ids], jnp.int32)
  config = lora.LoraConfig(rank=8, alpha=16., targets=('q', 'v', 'down'))
  adapters = nn.unbox(lora.init_adapters(jax.random.key(0), params, config))
  assert adapters['layers_29']['attn']['query']['lora_b'].shape == (8, 9, 64)
  assert adapters['layers_0']['attn']['value']['lora_b'].shape == (8, 3, 64)
  n_adapter, _ = lora.count(adapters)
  n_model, _ = lora.count(params)
  assert n_adapter == 30 * 8 * ((576 + 576) + (576 + 192) + (1536 + 576))   # 967,680 = 0.72% of 134.5M
  base_fn = jax.jit(lambda p, t: model.apply({'params': p}, t))
  lora_fn = jax.jit(lambda p, a, t: lora.apply(model, {'params': p}, a, t, config=config))
  base = base_fn(params, tokens)
  # Zero B: exactly the base logits op by op; under jit XLA fuses the 30 blocks a little differently.
  np.testing.assert_array_equal(
      np.asarray(lora.apply(model, {'params': params}, adapters, tokens[:, :4], config=config)),
      np.asarray(model.apply({'params': params}, tokens[:, :4])))
  jitted = lora_fn(params, adapters, tokens)
  assert float(jnp.linalg.norm(jitted - base) / jnp.linalg.norm(base)) < 1e-5   # 1.4e-6 seen
  keys = iter(jax.random.split(jax.random.key(1), 1000))
  moved = jax.tree.map(lambda x: x + 0.02 * jax.random.normal(next(keys), x.shape), adapters)
  out = lora_fn(params, moved, tokens)
  assert float(jnp.max(jnp.abs(out - base))) > 0.1
  merged = base_fn(lora.merge(params, moved, config), tokens)
  rel = float(jnp.linalg.norm(merged - out) / jnp.linalg.norm(out))
  assert rel < 1e-5, rel
  assert n_adapter < 0.01 * n_model
