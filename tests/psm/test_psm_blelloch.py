"""Blelloch tree == binary counter == naive bracketing for a random non-associative Agg, n = 1..33."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.psm import BinaryCounter, blelloch_exclusive_scan, naive_bracketing

D = 3
W = np.random.default_rng(0).normal(size=(2 * D, D)).astype(np.float32) / 2


def agg_np(x, y):  # Non-associative: tanh of a linear map of the concatenation.
  return np.tanh(np.concatenate([x, y], -1) @ W)


def test_agg_is_not_associative():
  x, y, z = np.random.default_rng(1).normal(size=(3, D)).astype(np.float32)
  assert not np.allclose(agg_np(agg_np(x, y), z), agg_np(x, agg_np(y, z)), atol=1e-3)


@pytest.mark.slow
def test_blelloch_equals_counter_equals_naive():
  rng = np.random.default_rng(2)
  xs_all = rng.normal(size=(33, D)).astype(np.float32)
  agg_jnp = lambda x, y: jnp.tanh(jnp.concatenate([x, y], -1) @ W)
  scan = lambda xs: blelloch_exclusive_scan(agg_jnp, xs)  # Eager: 33 compiles cost more.
  for n in range(1, 34):
    xs = xs_all[:n]
    naive = naive_bracketing(agg_np, list(xs))
    tree, ident = scan(jnp.asarray(xs))
    counter = BinaryCounter(agg_np, max_chunks=n)
    for i in range(n):
      assert bool(ident[i]) == (naive[i] is None) == (counter.prefix is None), (n, i)
      if naive[i] is not None:
        np.testing.assert_allclose(np.asarray(tree[i]), naive[i], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(counter.prefix, naive[i], rtol=1e-5, atol=1e-5)
      counter.push(xs[i])
      # O(log n) memory: at most ceil(log2(count + 1)) roots (and as many cached folds).
      assert counter.num_roots <= int(np.ceil(np.log2(counter.count + 1))), (counter.count,)
      assert counter.num_roots == bin(counter.count).count('1')
    # Amortised O(1) Agg calls per chunk: carries (< n) plus one fold per push.
    assert counter.agg_calls <= 2 * n


def test_blelloch_batched_pytree_states():
  """States may be pytrees with extra (batch) axes; identity flags come out per chunk."""
  xs = {'a': jnp.arange(5 * 2 * 3, dtype=jnp.float32).reshape(5, 2, 3)}
  agg = lambda l, r: {'a': jnp.tanh(l['a'] - 2 * r['a'])}
  pre, ident = blelloch_exclusive_scan(agg, xs)
  assert pre['a'].shape == (5, 2, 3)
  assert ident.tolist() == [True, False, False, False, False]
  np.testing.assert_allclose(pre['a'][1], xs['a'][0])


def test_bad_inputs():
  with pytest.raises(ValueError, match='max_chunks'):
    BinaryCounter(agg_np, max_chunks=0)
  counter = BinaryCounter(agg_np, max_chunks=2)
  counter.push(np.zeros(D))
  counter.push(np.zeros(D))
  with pytest.raises(ValueError, match='full'):
    counter.push(np.zeros(D))
  with pytest.raises(ValueError, match='leading'):
    blelloch_exclusive_scan(lambda l, r: l, {'a': jnp.zeros((3, 2)), 'b': jnp.zeros((4, 2))})
