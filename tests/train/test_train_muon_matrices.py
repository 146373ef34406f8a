"""optimizer.muon_all_matrices: Muon also orthogonalises jaxlab's rank-3 attention kernels (as one matrix)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxlab.train import optim


PARAMS = {'attn': {'query': {'kernel': jnp.ones((8, 2, 4))}, 'out': {'kernel': jnp.ones((2, 4, 8))}},
          'tokens': jnp.ones((1, 3, 8)), 'bias': jnp.ones((8,))}


def _grads():
  return jax.tree.map(lambda x: np.asarray(jax.random.normal(jax.random.key(x.size + x.ndim), x.shape)), PARAMS)


def _update(flag: bool):
  cfg = ml_collections.ConfigDict(dict(name='muon', learning_rate=1.0, momentum=0.0, muon_all_matrices=flag))
  tx, _ = optim.make_optimizer(cfg, 10)
  grads = jax.tree.map(jnp.asarray, _grads())
  return jax.device_get(tx.update(grads, tx.init(PARAMS), PARAMS)[0])


def _muon_2d(grad2d):
  """optax Muon's update of a plain 2-D weight with the same settings."""
  tx = optax.contrib.muon(1.0, beta=0.0)
  w = {'w': jnp.ones(grad2d.shape)}
  return np.asarray(tx.update({'w': jnp.asarray(grad2d)}, tx.init(w), w)[0]['w'])


def test_rank3_weights_get_muon_only_when_asked():
  on, off, grads = _update(True), _update(False), _grads()
  # With the option, a rank-3 kernel is updated exactly like the 2-D matrix it flattens to.
  q = grads['attn']['query']['kernel']
  np.testing.assert_allclose(on['attn']['query']['kernel'], _muon_2d(q.reshape(8, 8)).reshape(8, 2, 4), atol=1e-5)
  o = grads['attn']['out']['kernel']
  np.testing.assert_allclose(on['attn']['out']['kernel'], _muon_2d(o.reshape(8, 8)).reshape(2, 4, 8), atol=1e-5)
  np.testing.assert_allclose(on['tokens'][0], _muon_2d(grads['tokens'][0]), atol=1e-5)
  # Without it they take Adam's (Nesterov) first step: one magnitude for every entry, the sign of -g.
  u = off['attn']['query']['kernel']
  np.testing.assert_array_equal(np.sign(u), -np.sign(q))
  np.testing.assert_allclose(np.abs(u), np.abs(u).flat[0], rtol=1e-3)
  np.testing.assert_allclose(on['bias'], off['bias'])          # vectors stay on Adam either way
