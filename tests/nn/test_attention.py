"""Tests for jaxlab.nn.attention against a numpy reference, plus capture, override and the KV cache."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax.linen as nn

from jaxlab.nn import Attention, causal_mask, combine_masks, padding_mask, rope_1d

B, T, E, H, D = 2, 5, 16, 4, 8
RNG = np.random.default_rng(0)


def _randn(*shape):
  return RNG.standard_normal(shape).astype(np.float32)


def _init(attn, x, **kw):
  return nn.unbox(attn.init(jax.random.key(0), jnp.asarray(x), **kw)['params'])


def _np_attention(p, x, mask=None, kv_x=None, rope_base=None):
  """softmax(q k^T / sqrt(d)) v with GQA by repeating k/v heads; fully masked rows give zeros."""
  kv_x = x if kv_x is None else kv_x
  q = np.einsum('bte,ehd->bthd', x, p['query']['kernel'])
  k = np.einsum('bte,ehd->bthd', kv_x, p['key']['kernel'])
  v = np.einsum('bte,ehd->bthd', kv_x, p['value']['kernel'])
  if rope_base is not None:
    pos = np.broadcast_to(np.arange(x.shape[1]), x.shape[:2])
    q, k = (np.asarray(rope_1d(jnp.asarray(a), jnp.asarray(pos), rope_base)) for a in (q, k))
  group = q.shape[2] // k.shape[2]
  k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
  logits = np.einsum('bthd,bshd->bhts', q, k) / np.sqrt(q.shape[-1])
  if mask is not None:
    mask = np.broadcast_to(np.asarray(mask), logits.shape)
    logits = np.where(mask, logits, -np.inf)
  m = np.max(logits, -1, keepdims=True)
  w = np.exp(logits - np.where(np.isfinite(m), m, 0))
  w = np.where(w.sum(-1, keepdims=True) > 0, w / np.maximum(w.sum(-1, keepdims=True), 1e-30), 0)
  heads = np.einsum('bhts,bshd->bthd', w, v)
  return np.einsum('bthd,hde->bte', heads, p['out']['kernel']), w, v


def _apply(attn, p, x, **kw):
  out, state = attn.apply({'params': p}, jnp.asarray(x), mutable=['intermediates'], **kw)
  return np.asarray(out), np.asarray(state['intermediates']['attention_weights'][0])


@pytest.mark.parametrize('kind', ['causal', 'bidirectional', 'random'])
@pytest.mark.parametrize('kv_heads', [H, 2])
def test_matches_numpy_reference(kind, kv_heads):
  x = _randn(B, T, E)
  attn = Attention(num_heads=H, num_kv_heads=kv_heads, head_dim=D)
  p = _init(attn, x)
  mask = {'causal': causal_mask(T), 'bidirectional': None,
          'random': jnp.asarray(RNG.random((B, 1, T, T)) < 0.6)}[kind]
  out, w = _apply(attn, p, x, mask=mask)
  ref, ref_w, _ = _np_attention(p, x, mask)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(w, ref_w, rtol=1e-4, atol=1e-6)


def test_rope_qk_norm_and_biases_run():
  x = _randn(B, T, E)
  attn = Attention(num_heads=H, num_kv_heads=2, head_dim=D, rope='1d', rope_base=100.)
  p = _init(attn, x)
  out, _ = _apply(attn, p, x, mask=causal_mask(T))
  np.testing.assert_allclose(out, _np_attention(p, x, causal_mask(T), rope_base=100.)[0],
                             rtol=1e-4, atol=1e-5)
  full = Attention(num_heads=H, num_kv_heads=2, head_dim=D, qk_norm=True, use_bias=True, out_bias=True)
  shapes = jax.tree.map(jnp.shape, _init(full, x))
  assert shapes['q_norm'] == {'scale': (D,)} and shapes['k_norm'] == {'scale': (D,)}
  assert shapes['query']['bias'] == (H, D) and shapes['key']['bias'] == (2, D)
  assert shapes['out']['bias'] == (E,)


def test_gqa_equals_mha_with_repeated_kv():
  x = _randn(B, T, E)
  gqa = Attention(num_heads=H, num_kv_heads=2, head_dim=D)
  p = _init(gqa, x)
  mha_p = dict(p, key={'kernel': np.repeat(p['key']['kernel'], 2, axis=1)},
               value={'kernel': np.repeat(p['value']['kernel'], 2, axis=1)})
  mha = Attention(num_heads=H, num_kv_heads=H, head_dim=D)
  np.testing.assert_allclose(_apply(gqa, p, x, mask=causal_mask(T))[0],
                             _apply(mha, mha_p, x, mask=causal_mask(T))[0], rtol=1e-5, atol=1e-6)


def test_cross_attention_uses_kv_x():
  x, kv_x = _randn(B, T, E), _randn(B, 7, E)
  attn = Attention(num_heads=H, num_kv_heads=H, head_dim=D)
  p = _init(attn, x, kv_x=jnp.asarray(kv_x))
  out, w = _apply(attn, p, x, kv_x=jnp.asarray(kv_x))
  assert w.shape == (B, H, T, 7)
  np.testing.assert_allclose(out, _np_attention(p, x, kv_x=kv_x)[0], rtol=1e-4, atol=1e-5)


def test_fully_masked_row_gives_zeros_and_rows_sum_to_one():
  x = _randn(B, T, E)
  attn = Attention(num_heads=H, num_kv_heads=H, head_dim=D)
  p = _init(attn, x)
  mask = np.array(causal_mask(T))
  mask = np.broadcast_to(mask, (B, 1, T, T)).copy()
  mask[0, 0, 2] = False
  out, w = _apply(attn, p, x, mask=jnp.asarray(mask))
  assert np.all(np.isfinite(out))
  np.testing.assert_array_equal(out[0, 2], 0.)
  np.testing.assert_array_equal(w[0, :, 2], 0.)
  sums = w.sum(-1)
  sums[0, :, 2] = 1.
  np.testing.assert_allclose(sums, 1., rtol=1e-6)
  # Padding via `padding` equals the explicit key mask.
  valid = jnp.array([[True] * T, [False, True, True, True, True]])
  np.testing.assert_allclose(_apply(attn, p, x, padding=valid)[0],
                             _apply(attn, p, x, mask=padding_mask(valid))[0])


def test_override_with_own_weights_is_identity_and_one_head_acts_through_that_head():
  x = _randn(B, T, E)
  attn = Attention(num_heads=H, num_kv_heads=2, head_dim=D)
  p = _init(attn, x)
  out, w = _apply(attn, p, x, mask=causal_mask(T))
  same, sown = _apply(attn, p, x, mask=causal_mask(T), head_override=(w, jnp.ones(H, bool)))
  np.testing.assert_allclose(same, out, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(sown, w)

  head = 1
  new_w = np.asarray(jax.nn.softmax(jnp.asarray(_randn(B, H, T, T)), -1))
  use = np.arange(H) == head
  changed, sown = _apply(attn, p, x, mask=causal_mask(T), head_override=(jnp.asarray(new_w), use))
  np.testing.assert_array_equal(sown, w)  # the sown weights are the model's own
  _, _, v = _np_attention(p, x)  # v [b, s, heads, d] after repeating kv heads
  delta_head = np.einsum('bts,bsd->btd', new_w[:, head] - w[:, head], v[:, :, head])
  expected_delta = np.einsum('btd,de->bte', delta_head, p['out']['kernel'][head])
  np.testing.assert_allclose(changed - out, expected_delta, rtol=1e-4, atol=1e-5)
  assert np.abs(expected_delta).max() > 1e-3


def test_bad_head_counts_raise():
  with pytest.raises(ValueError, match=r'num_heads \(4\).*num_kv_heads \(3\)'):
    Attention(num_heads=4, num_kv_heads=3, head_dim=D).init(jax.random.key(0), jnp.zeros((1, 2, E)))
  with pytest.raises(ValueError, match='rope'):
    Attention(num_heads=4, num_kv_heads=4, head_dim=D, rope='2d').init(
        jax.random.key(0), jnp.zeros((1, 2, E)))


def test_combine_masks():
  assert combine_masks(None, None) is None
  a = causal_mask(3)
  np.testing.assert_array_equal(combine_masks(None, a), a)
  valid = jnp.array([[True, False, True]])
  np.testing.assert_array_equal(combine_masks(a, padding_mask(valid))[0, 0],
                                np.tril(np.ones((3, 3), bool)) & np.array([True, False, True]))


def test_decode_prefill_then_steps_with_padding_matches_full():
  max_len = 8
  x = _randn(B, 6, E)
  attn = Attention(num_heads=H, num_kv_heads=2, head_dim=D, rope='1d', max_cache_len=max_len)
  variables = attn.init(jax.random.key(0), jnp.asarray(x[:, :3]), decode=True)
  cache = variables['cache']
  assert cache['cached_key'].shape == (B, max_len, 2, D)
  assert cache['cached_valid'].shape == (B, max_len) and not cache['cached_valid'].any()
  assert int(cache['cache_index']) == 0 and not np.asarray(cache['cached_key']).any()
  params = variables['params']
  # Row 1 is padded at position 0: key 0 is invisible to it, positions stay absolute slots.
  padding = jnp.array([[True] * 6, [False] + [True] * 5])
  full = attn.apply({'params': params}, jnp.asarray(x),
                    mask=combine_masks(causal_mask(6), padding_mask(padding)))
  step = jax.jit(lambda c, xi, pad: attn.apply({'params': params, 'cache': c}, xi, decode=True,
                                               padding=pad, mutable=['cache']))
  out, state = step(cache, jnp.asarray(x[:, :3]), padding[:, :3])
  outs = [out]
  for i in range(3, 6):
    out, state = step(state['cache'], jnp.asarray(x[:, i:i + 1]), padding[:, i:i + 1])
    outs.append(out)
  assert int(state['cache']['cache_index']) == 6
  np.testing.assert_array_equal(state['cache']['cached_valid'][:, :6], padding)
  decoded = np.concatenate(outs, axis=1)
  np.testing.assert_allclose(decoded[0], full[0], atol=1e-5)
  np.testing.assert_allclose(decoded[1, 1:], full[1, 1:], atol=1e-5)

  # Overflow: too many tokens at trace time is an error, a running overflow poisons with NaN.
  with pytest.raises(ValueError, match='max_cache_len'):
    step(cache, jnp.zeros((B, max_len + 1, E)), jnp.ones((B, max_len + 1), bool))
  out, _ = step(state['cache'], jnp.zeros((B, 3, E)), jnp.ones((B, 3), bool))
  assert np.isnan(out).all()


def test_decode_needs_cache_length():
  with pytest.raises(ValueError, match='max_cache_len'):
    Attention(num_heads=H, num_kv_heads=H, head_dim=D).init(
        jax.random.key(0), jnp.zeros((1, 2, E)), decode=True)
