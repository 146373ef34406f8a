"""Tests for jaxlab.nn.layers: norms, Mlp, Embed and RoPE against numpy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax.linen as nn

from jaxlab.nn import Embed, LayerNorm, Mlp, RMSNorm, rope_1d, rope_2d

RNG = np.random.default_rng(0)


def _randn(*shape):
  return RNG.standard_normal(shape).astype(np.float32)


def _params(module, *args):
  return nn.unbox(module.init(jax.random.key(0), *args)['params'])


def _np_rope(x, pos, base=10000.0):
  """Direct numpy port of Hugging Face Llama's apply_rotary_pos_emb (rotate_half)."""
  d = x.shape[-1]
  inv_freq = 1.0 / (base ** (np.arange(0, d, 2, dtype=np.float64) / d))
  freqs = pos[..., None].astype(np.float64) * inv_freq
  emb = np.concatenate([freqs, freqs], -1)[:, :, None, :]
  rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
  return x * np.cos(emb) + rot * np.sin(emb)


def test_rmsnorm_matches_numpy():
  x = _randn(2, 3, 8)
  scale = _randn(8)
  y = RMSNorm(epsilon=1e-6).apply({'params': {'scale': scale}}, x)
  expected = x / np.sqrt(np.mean(x ** 2, -1, keepdims=True) + 1e-6) * scale
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_rmsnorm_bfloat16_output_and_scale_init():
  x = _randn(2, 8)
  params = _params(RMSNorm(dtype=jnp.bfloat16), x)
  np.testing.assert_array_equal(params['scale'], np.ones(8, np.float32))
  assert params['scale'].dtype == jnp.float32
  assert RMSNorm(dtype=jnp.bfloat16).apply({'params': params}, x).dtype == jnp.bfloat16


def test_layernorm_matches_numpy():
  x = _randn(2, 3, 8) * 3 + 1
  scale, bias = _randn(8), _randn(8)
  y = LayerNorm(epsilon=1e-5).apply({'params': {'scale': scale, 'bias': bias}}, x)
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5) * scale + bias, rtol=1e-5, atol=1e-5)
  assert set(_params(LayerNorm(use_bias=False), x)) == {'scale'}


def test_mlp_swiglu_matches_numpy():
  x = _randn(2, 5, 8)
  mlp = Mlp(hidden_dim=16, activation='swiglu')
  p = _params(mlp, x)
  assert {k: v['kernel'].shape for k, v in p.items()} == {
      'wi_gate': (8, 16), 'wi_up': (8, 16), 'wo': (16, 8)}
  gate, up = x @ p['wi_gate']['kernel'], x @ p['wi_up']['kernel']
  expected = (gate / (1 + np.exp(-gate)) * up) @ p['wo']['kernel']
  np.testing.assert_allclose(mlp.apply({'params': p}, x), expected, rtol=1e-5, atol=1e-5)


def test_mlp_gelu_tanh_with_bias_matches_numpy():
  x = _randn(2, 5, 8)
  mlp = Mlp(hidden_dim=16, activation='gelu', use_bias=True)
  p = _params(mlp, x)
  p = jax.tree.map(lambda a: a + 0.1 * _randn(*a.shape), p)  # non-zero biases
  h = x @ p['wi']['kernel'] + p['wi']['bias']
  h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
  expected = h @ p['wo']['kernel'] + p['wo']['bias']
  np.testing.assert_allclose(mlp.apply({'params': p}, x), expected, rtol=1e-5, atol=1e-5)


def test_mlp_unknown_activation_raises():
  with pytest.raises(ValueError, match='relu6'):
    Mlp(hidden_dim=4, activation='relu6').init(jax.random.key(0), _randn(1, 2, 4))


def test_mlp_dropout_needs_rng_and_changes_output():
  x = _randn(2, 5, 8)
  mlp = Mlp(hidden_dim=16, dropout_rate=0.5)
  v = mlp.init(jax.random.key(0), x)
  y_det = mlp.apply(v, x)
  y_drop = mlp.apply(v, x, deterministic=False, rngs={'dropout': jax.random.key(1)})
  assert not np.allclose(y_det, y_drop)


def test_embed_lookup_and_attend():
  emb = Embed(num_embeddings=11, features=6)
  ids = jnp.array([[0, 3, 10], [5, 5, 1]])
  p = _params(emb, ids)
  table = np.asarray(p['embedding'])
  assert table.shape == (11, 6)
  np.testing.assert_allclose(emb.apply({'params': p}, ids), table[np.asarray(ids)])
  x = _randn(2, 3, 6)
  np.testing.assert_allclose(emb.apply({'params': p}, x, method=Embed.attend), x @ table.T,
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='integer'):
    emb.apply({'params': p}, jnp.zeros((2,), jnp.float32))


def test_rope_1d_matches_hf_rotate_half_and_preserves_norm():
  x = _randn(2, 7, 3, 8)
  pos = RNG.integers(0, 100, size=(2, 7))
  y = np.asarray(rope_1d(jnp.asarray(x), jnp.asarray(pos), base=500.0))
  np.testing.assert_allclose(y, _np_rope(x, pos, 500.0), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
  # Position 0 is the identity; pair (0, d/2) turns by exactly `pos` radians.
  np.testing.assert_allclose(rope_1d(jnp.asarray(x), jnp.zeros((2, 7))), x, atol=1e-6)
  e0 = np.zeros((1, 1, 1, 8), np.float32)
  e0[..., 0] = 1.
  y0 = np.asarray(rope_1d(jnp.asarray(e0), jnp.full((1, 1), 0.3)))
  np.testing.assert_allclose(y0[0, 0, 0, [0, 4]], [np.cos(0.3), np.sin(0.3)], atol=1e-6)


def test_rope_1d_scores_depend_only_on_relative_position():
  q, k = _randn(1, 1, 1, 16), _randn(1, 1, 1, 16)

  def score(pq, pk):
    rq = rope_1d(jnp.asarray(q), jnp.full((1, 1), pq))
    rk = rope_1d(jnp.asarray(k), jnp.full((1, 1), pk))
    return float(jnp.sum(rq * rk))

  assert score(5, 2) == pytest.approx(score(13, 10), rel=1e-4, abs=1e-5)
  assert score(5, 2) == pytest.approx(score(3.5, 0.5), rel=1e-4, abs=1e-5)
  assert score(5, 2) != pytest.approx(score(5, 3), rel=1e-3)


def test_rope_2d_rotates_halves_by_row_and_column():
  x = _randn(2, 6, 2, 16)
  pos = RNG.integers(0, 20, size=(2, 6, 2))
  y = np.asarray(rope_2d(jnp.asarray(x), jnp.asarray(pos)))
  np.testing.assert_allclose(y[..., :8], _np_rope(x[..., :8], pos[..., 0]), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(y[..., 8:], _np_rope(x[..., 8:], pos[..., 1]), rtol=1e-4, atol=1e-4)


def test_rotate_mask_leaves_tokens_unrotated():
  x = jnp.asarray(_randn(2, 5, 2, 8))
  keep = jnp.array([[True, False, True, True, False], [False] * 5])
  pos = jnp.broadcast_to(jnp.arange(1, 6), (2, 5))
  y1 = rope_1d(x, pos, rotate_mask=keep)
  np.testing.assert_allclose(y1, jnp.where(keep[..., None, None], rope_1d(x, pos), x), atol=1e-6)
  np.testing.assert_array_equal(y1[1], x[1])
  pos2 = jnp.stack([pos, pos + 1], -1)
  y2 = rope_2d(x, pos2, rotate_mask=keep)
  np.testing.assert_array_equal(y2[~keep], x[~keep])
  assert not np.allclose(y2[keep], x[keep])


def test_rope_bad_shapes_raise():
  with pytest.raises(ValueError, match='head_dim'):
    rope_1d(jnp.zeros((1, 2, 1, 7)), jnp.zeros((1, 2)))
  with pytest.raises(ValueError, match='head_dim'):
    rope_2d(jnp.zeros((1, 2, 1, 6)), jnp.zeros((1, 2, 2)))
  with pytest.raises(ValueError, match='positions_yx'):
    rope_2d(jnp.zeros((1, 2, 1, 8)), jnp.zeros((1, 2, 3)))


def test_param_logical_axes():
  x = _randn(1, 2, 8)
  specs = {
      name: nn.get_partition_spec(module.init(jax.random.key(0), x)['params'])
      for name, module in [('rms', RMSNorm()), ('mlp', Mlp(hidden_dim=4, activation='gelu', use_bias=True))]
  }
  P = jax.sharding.PartitionSpec
  assert specs['rms']['scale'] == P('embed')
  assert specs['mlp']['wi'] == {'kernel': P('embed', 'mlp'), 'bias': P('mlp')}
  assert specs['mlp']['wo'] == {'kernel': P('mlp', 'embed'), 'bias': P('embed')}
