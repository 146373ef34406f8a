"""Affine scans: sequential == parallel == chunkwise (values and gradients), bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.psm import scans

FORMS = ('sequential', 'parallel', 'chunkwise')


def _close(a, b, tol=1e-5):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize('kind', ['diag', 'matrix'])
@pytest.mark.parametrize('t,c', [pytest.param(1, 3, marks=pytest.mark.slow), (13, 4)])
def test_affine_scan_forms_agree(kind, t, c):
  rng = np.random.default_rng(t * 10 + c)
  if kind == 'diag':
    a = jnp.asarray(rng.uniform(0.5, 1., (2, t, 3, 1)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(2, t, 3, 4)), jnp.float32)
    h0 = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
  else:
    a = jnp.asarray(0.3 * rng.normal(size=(2, t, 3, 3)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(2, t, 3, 2)), jnp.float32)
    h0 = jnp.asarray(rng.normal(size=(2, 3, 2)), jnp.float32)
  outs = jax.jit(lambda a, b, h0: {f: scans.affine_scan(a, b, kind=kind, form=f, chunk_size=c,
                                                        initial_state=h0) for f in FORMS})(a, b, h0)
  # Plain numpy loop reference.
  s, ref = np.asarray(h0), []
  for i in range(t):
    ai = np.asarray(a[:, i])
    s = (ai * s if kind == 'diag' else np.einsum('bij,bjk->bik', ai, s)) + np.asarray(b[:, i])
    ref.append(s)
  for f in FORMS:
    _close(outs[f][0], jnp.stack(ref, 1))
    _close(outs[f][1], s)

  def loss(form, a, b, h0):
    st, fin = scans.affine_scan(a, b, kind=kind, form=form, chunk_size=c, initial_state=h0)
    return jnp.sum(jnp.sin(st)) + jnp.sum(fin ** 2)
  grads = jax.jit(lambda a, b, h0: {f: jax.grad(loss, argnums=(1, 2, 3))(f, a, b, h0)
                                    for f in FORMS})(a, b, h0)
  for f in FORMS[1:]:
    for g1, g2 in zip(grads['sequential'], grads[f]):
      _close(g1, g2, 1e-4)


@pytest.mark.parametrize('gate,t,c', [('diag', 9, 4)] + [
    pytest.param(g, t, c, marks=pytest.mark.slow)
    for g, t, c in [('scalar', 9, 4), ('none', 9, 4), ('diag', 17, 17), ('scalar', 1, 4)]])
def test_gated_linear_attention_forms_agree(gate, t, c):
  rng = np.random.default_rng(t + c)
  b, h, dk, dv = 2, 2, 4, 3
  q, k = (jnp.asarray(rng.normal(size=(b, t, h, dk)), jnp.float32) for _ in range(2))
  v = jnp.asarray(rng.normal(size=(b, t, h, dv)), jnp.float32)
  gk = {'diag': dk, 'scalar': 1, 'none': 1}[gate]
  log_g = jnp.asarray(-rng.uniform(0, 2, (b, t, h, gk)), jnp.float32)
  if gate == 'none':
    log_g = jnp.zeros_like(log_g)
  h0 = jnp.asarray(rng.normal(size=(b, h, dk, dv)), jnp.float32)

  def run(form, q, k, v, log_g, h0):
    return scans.gated_linear_attention(q, k, v, log_g, form=form, chunk_size=c, initial_state=h0)
  outs = jax.jit(lambda *args: {f: run(f, *args) for f in FORMS})(q, k, v, log_g, h0)
  step = jax.jit(scans.gla_step)
  s, steps = h0, []
  for i in range(t):
    o, s = step(s, q[:, i], k[:, i], v[:, i], log_g[:, i])
    steps.append(o)
  for f in FORMS:
    _close(outs[f][0], jnp.stack(steps, 1))
    _close(outs[f][1], s)
  loss = lambda f, *args: jnp.sum(jnp.tanh(run(f, *args)[0])) + jnp.sum(run(f, *args)[1] ** 2)
  grads = jax.jit(lambda *args: {f: jax.grad(loss, argnums=(1, 2, 3, 4, 5))(f, *args)
                                 for f in FORMS})(q, k, v, log_g, h0)
  for f in FORMS[1:]:
    for g1, g2 in zip(grads['sequential'], grads[f]):
      _close(g1, g2, 1e-4)


def test_chunkwise_is_safe_for_strong_gates():
  b, t, h, d = 1, 64, 1, 4
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(b, t, h, d)), jnp.float32) for _ in range(3))
  log_g = jnp.full((b, t, h, d), -80.)  # g = e^-80: cumulative products underflow to 0.
  o_c, s_c = scans.gated_linear_attention(q, k, v, log_g, form='chunkwise', chunk_size=32)
  o_s, s_s = scans.gated_linear_attention(q, k, v, log_g, form='sequential')
  assert np.all(np.isfinite(o_c)) and np.all(np.isfinite(s_c))
  _close(o_c, o_s)
  g = jax.grad(lambda lg: jnp.sum(scans.gated_linear_attention(q, k, v, lg, form='chunkwise',
                                                               chunk_size=32)[0]))(log_g)
  assert np.all(np.isfinite(g))


def test_bad_inputs():
  a = jnp.ones((1, 5, 2))
  b = jnp.ones((1, 5, 2))
  for c in (0, -3):
    with pytest.raises(ValueError, match='chunk_size'):
      scans.affine_scan(a, b, form='chunkwise', chunk_size=c)
  with pytest.raises(ValueError, match='form'):
    scans.affine_scan(a, b, form='bogus')
  with pytest.raises(ValueError, match='initial state'):
    scans.affine_scan(a, b, initial_state=jnp.ones((1, 3)))
  with pytest.raises(ValueError, match='time axis'):
    scans.affine_scan(a, jnp.ones((1, 4, 2)))
  with pytest.raises(ValueError, match='matrix'):
    scans.affine_scan(jnp.ones((1, 5, 2, 3)), jnp.ones((1, 5, 2, 1)), kind='matrix')
  q = jnp.ones((1, 5, 2, 4))
  with pytest.raises(ValueError, match='initial state'):
    scans.gated_linear_attention(q, q, q, q, initial_state=jnp.ones((1, 2, 4, 5)))
  with pytest.raises(ValueError, match='chunk_size'):
    scans.gated_linear_attention(q, q, q, q, chunk_size=0)
  with pytest.raises(ValueError, match='log_g'):
    scans.gated_linear_attention(q, q, q, jnp.ones((1, 5, 2, 3)))
