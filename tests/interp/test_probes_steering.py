"""jaxlab.interp.probes (dense logistic and Hard-Concrete sparse) and jaxlab.interp.steering."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxlab.interp import hooks as H
from jaxlab.interp import probes as P
from jaxlab.interp import steering as St
from jaxlab.nn import DecoderLM, llama_config


def _data(n, d=20, informative=(3,), seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  x = np.abs(rng.normal(size=(n, d))).astype(np.float32)   # non-negative, like SAE codes
  for i in informative:
    x[:, i] += 3.0 * y
  return x, y


def test_dense_probe_decodes_held_out():
  x, y = _data(400)
  probe = P.fit_logistic(x[:300], y[:300], 2)
  assert P.accuracy(probe, x[300:], y[300:]) > 0.9
  shuffled = P.fit_logistic(x[:300], np.random.default_rng(1).permutation(y[:300]), 2)
  assert P.accuracy(shuffled, x[300:], y[300:]) < 0.7       # a label-shuffle control stays near chance


def test_hard_concrete_gate_formulas():
  m = jnp.asarray([-3.0, 0.0, 3.0])
  u = jax.random.uniform(jax.random.key(0), m.shape, minval=1e-4, maxval=1 - 1e-4)
  s = jax.nn.sigmoid(1.5 * (jnp.log(u / (1 - u)) + m))
  np.testing.assert_allclose(P.gate_train(m, jax.random.key(0)), np.clip(1.2 * s - 0.1, 0, 1), rtol=1e-6)
  np.testing.assert_allclose(P.expected_l0(m), np.sum(1 / (1 + np.exp(-(np.asarray(m) - np.log(0.1 / 1.1) / 1.5)))),
                             rtol=1e-6)
  assert float(P.gate_eval(jnp.asarray(-10.0))) == 0.0 and float(P.gate_eval(jnp.asarray(10.0))) == 1.0


def test_sparse_probe_keeps_the_informative_feature():
  x, y = _data(400, informative=(3,))
  cfg = P.ProbeConfig(steps=400, learning_rate=5e-2, l0=5e-2)
  probe = P.fit_sparse(x[:300], y[:300], 2, cfg)
  assert probe['gates'][3] > 0.5
  assert probe['num_open'] <= 5, probe['gates']                  # the penalty closed most of the 20 gates
  assert P.accuracy(probe, x[300:], y[300:]) > 0.85
  dense_gates = P.fit_sparse(x[:300], y[:300], 2, P.ProbeConfig(steps=50, l0=0.0))['num_open']
  assert dense_gates > probe['num_open']


def test_probe_input_errors():
  with pytest.raises(ValueError, match=r'labels must lie in \[0, 2\)'):
    P.fit_logistic(np.zeros((4, 3)), np.asarray([0, 1, 2, 0]), 2)
  with pytest.raises(ValueError, match='x \\[n, d\\]'):
    P.fit_logistic(np.zeros((4,)), np.zeros(4), 2)


def test_diff_means_and_steering_hook_add_at_positions():
  rng = np.random.default_rng(0)
  direction = rng.normal(size=16)
  a = rng.normal(size=(50, 16))
  b = rng.normal(size=(50, 16)) + 3 * direction / np.linalg.norm(direction)
  v = St.diff_means(a, b)
  assert np.linalg.norm(v) == pytest.approx(1.0, rel=1e-5)
  assert v @ direction / np.linalg.norm(direction) > 0.9
  with pytest.raises(ValueError, match='coincide'):
    St.diff_means(a, a)

  model = DecoderLM(llama_config(vocab_size=32, num_layers=2, embed_dim=16, num_heads=2, num_kv_heads=1,
                                 mlp_dim=32, max_len=8))
  tokens = jnp.asarray(rng.integers(0, 32, (2, 6)), jnp.int32)
  params = model.init(jax.random.key(0), tokens)['params']
  where = jnp.zeros((2, 6), bool).at[:, :3].set(True)   # the "image" positions
  site = 'layers_1/resid_pre'
  run = jax.jit(H.run, static_argnums=0)
  _, clean = run(model, {'params': params}, tokens, hooks=H.capture(site))
  logits, _ = run(model, {'params': params}, tokens, hooks=St.steer_hooks(site, v, 4.0, where))
  # The same as replacing the site by clean + 4·v at the image positions only (the others untouched).
  manual = np.asarray(clean[site]) + 4.0 * np.asarray(where)[..., None] * v
  want, _ = run(model, {'params': params}, tokens, hooks=H.replace(site, jnp.asarray(manual)))
  np.testing.assert_allclose(logits, want, atol=1e-5)
  clean_logits = model.apply({'params': params}, tokens)
  assert np.abs(np.asarray(logits - clean_logits)).max() > 1e-3   # the add took effect
  zero, _ = run(model, {'params': params}, tokens, hooks=St.steer_hooks(site, v, 0.0, where))
  np.testing.assert_allclose(zero, clean_logits, atol=1e-5)        # k = 0 is the identity
