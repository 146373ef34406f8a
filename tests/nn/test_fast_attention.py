"""The fast attention path (jaxlab.nn.fast_attention) equals the reference: values and gradients, GQA, causal and
padding masks, the decode cache; capture and override keep using the reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn import fast_attention
from jaxlab.nn.attention import causal_mask, combine_masks, dot_product_attention_weights, padding_mask
from jaxlab.nn.lm import transformer


def reference(q, k, v, mask):
  b, t, h, d = q.shape
  kvh = k.shape[2]
  w = dot_product_attention_weights(q.reshape(b, t, kvh, h // kvh, d), k, mask)
  return jnp.einsum("bkgts,bskd->btkgd", w.reshape(b, kvh, h // kvh, t, k.shape[1]), v).reshape(b, t, h, d)


def qkv(b=2, t=16, h=4, kvh=2, d=8, seed=0):
  r = np.random.default_rng(seed)
  return tuple(jnp.asarray(r.normal(size=s), jnp.float32) for s in ((b, t, h, d), (b, t, kvh, d), (b, t, kvh, d)))


# Batch row 1 is left-padded by 5: its first 5 query rows see no key under causal + padding (all-zero output).
VALID = jnp.asarray(np.arange(16)[None] >= np.array([[0], [5]]))


@pytest.mark.parametrize("causal, pad", [(True, False), (True, True), (False, True), (False, False)])
def test_xla_path_equals_reference_values_and_gradients(causal, pad):
  q, k, v = qkv()
  extra = padding_mask(VALID) if pad else None
  full = combine_masks(causal_mask(16) if causal else None, extra)

  def fast(q, k, v):
    return fast_attention.attend(q, k, v, extra, causal=causal, implementation="xla")

  np.testing.assert_allclose(fast(q, k, v), reference(q, k, v, full), atol=1e-5)
  loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
  g_fast = jax.grad(loss(fast), argnums=(0, 1, 2))(q, k, v)
  g_ref = jax.grad(loss(lambda q, k, v: reference(q, k, v, full)), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(g_fast, g_ref):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_auto_resolves_per_backend():
  assert fast_attention.resolve("auto", "cpu") == "xla"
  assert fast_attention.resolve("auto", "gpu") == "cudnn"
  assert fast_attention.resolve("auto", "tpu") == "splash"
  with pytest.raises(ValueError, match="'flash' is not one of"):
    fast_attention.resolve("flash")


def lm(impl, **kw):
  cfg = transformer.llama_config(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, mlp_dim=64,
                                 max_len=24, attention_impl=impl, **kw)
  return transformer.DecoderLM(cfg)


@pytest.fixture(scope="module")
def lm_params():
  tokens = jnp.asarray(np.random.default_rng(1).integers(0, 64, (2, 16)), jnp.int32)
  return lm("reference").init(jax.random.PRNGKey(0), tokens)["params"], tokens


def test_decoder_lm_fast_equals_reference_with_padding_and_gradients(lm_params):
  params, tokens = lm_params
  for kw in ({}, {"padding": VALID}):
    ref = lm("reference").apply({"params": params}, tokens, **kw)
    fast = lm("xla").apply({"params": params}, tokens, **kw)
    rows = np.asarray(VALID) if kw else np.ones((2, 16), bool)
    np.testing.assert_allclose(np.asarray(fast)[rows], np.asarray(ref)[rows], atol=1e-5)

  def loss(impl):
    return lambda p: jnp.mean(lm(impl).apply({"params": p}, tokens) ** 2)
  ga, gb = jax.grad(loss("xla"))(params), jax.grad(loss("reference"))(params)
  for (path, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(ga), jax.tree_util.tree_leaves_with_path(gb)):
    np.testing.assert_allclose(a, b, atol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_decode_cache_fast_equals_reference(lm_params):
  params, tokens = lm_params
  out = {}
  for impl in ("reference", "xla"):
    model = lm(impl)
    cache = model.init(jax.random.PRNGKey(0), tokens[:, :1], decode=True)["cache"]
    logits, upd = model.apply({"params": params, "cache": cache}, tokens[:, :10], decode=True, mutable=["cache"])
    steps = [logits]
    for i in range(10, 14):
      logits, upd = model.apply({"params": params, "cache": upd["cache"]}, tokens[:, i:i + 1], decode=True,
                                mutable=["cache"])
      steps.append(logits)
    out[impl] = np.concatenate([np.asarray(s) for s in steps], axis=1)
  np.testing.assert_allclose(out["xla"], out["reference"], atol=1e-5)
  # and decoding equals the full forward pass
  np.testing.assert_allclose(out["xla"], lm("xla").apply({"params": params}, tokens[:, :14]), atol=1e-5)


def test_capture_and_override_use_the_reference(lm_params):
  params, tokens = lm_params
  _, inter = lm("xla").apply({"params": params}, tokens, mutable=["intermediates"])
  w = inter["intermediates"]["layers_0"]["attn"]["attention_weights"][0]
  assert w.shape == (2, 4, 16, 16) and w.dtype == jnp.float32
  _, ref = lm("reference").apply({"params": params}, tokens, mutable=["intermediates"])
  np.testing.assert_allclose(w, ref["intermediates"]["layers_0"]["attn"]["attention_weights"][0], atol=1e-6)


def test_unknown_implementation_is_refused():
  with pytest.raises(ValueError, match="attention_impl must be one of"):
    lm("flash")


@pytest.mark.slow  # Pallas interpret mode on CPU: ~90 s on this 2-core machine
def test_splash_kernel_interpreted_equals_reference():
  q, k, v = qkv(t=128, d=32)
  f = lambda q, k, v: fast_attention.attend(q, k, v, None, causal=True, implementation="splash",  # noqa: E731
                                            interpret=True)
  np.testing.assert_allclose(f(q, k, v), reference(q, k, v, causal_mask(128)), atol=1e-5)
  g_fast = jax.grad(lambda *a: jnp.sum(f(*a) ** 2), argnums=(0, 1, 2))(q, k, v)
  g_ref = jax.grad(lambda *a: jnp.sum(reference(*a, causal_mask(128)) ** 2), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(g_fast, g_ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
