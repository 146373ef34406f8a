"""jaxlab.nn.diffusion.flow and the ELF objective against direct numpy computations; samplers with an oracle denoiser."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.diffusion import elf, elf_flow, flow

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 5, 6)).astype(np.float32)
EPS = RNG.normal(size=(2, 5, 6)).astype(np.float32)
T = np.array([0.3, 0.97], np.float32)      # the second time exercises the max(1 - t, 0.05) clamp


def test_interpolation_and_velocity_match_numpy():
  z = np.asarray(flow.interpolate(X, EPS, T, noise_scale=2.0))
  z_np = T[:, None, None] * X + (1 - T[:, None, None]) * 2.0 * EPS
  np.testing.assert_allclose(z, z_np, rtol=1e-6, atol=1e-6)
  v = np.asarray(flow.velocity(X, z_np, T, t_eps=0.05))
  v_np = (X - z_np) / np.maximum(1 - T, 0.05)[:, None, None]
  np.testing.assert_allclose(v, v_np, rtol=1e-5, atol=1e-5)
  # Where the clamp is inactive the target is x - s·ε.
  np.testing.assert_allclose(v[0], X[0] - 2.0 * EPS[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('prediction', ['x', 'v', 'eps'])
def test_parameterisations_agree_on_the_truth(prediction):
  """Each parameterisation, fed its exact target, gives the true velocity and clean data."""
  t = np.array([0.3, 0.6], np.float32)
  z = t[:, None, None] * X + (1 - t[:, None, None]) * 2.0 * EPS
  truth = {'x': X, 'v': X - 2.0 * EPS, 'eps': EPS}[prediction]
  v, x_hat = flow.to_velocity(jnp.asarray(truth), z, t, prediction, 0.05, 2.0)
  np.testing.assert_allclose(np.asarray(x_hat), X, atol=1e-5)
  np.testing.assert_allclose(np.asarray(v), X - 2.0 * EPS, atol=1e-4)


def test_guided_target_reduces_to_plain_target_at_w_1():
  v_star, v_sc, v_nosc = (jnp.asarray(RNG.normal(size=(2, 5, 6)), jnp.float32) for _ in range(3))
  out = flow.guided_target(v_star, v_sc, v_nosc, jnp.ones((2,)), jnp.array([True, True]))
  np.testing.assert_array_equal(np.asarray(out), np.asarray(v_star))
  w = np.array([2.0, 4.0], np.float32)
  out = flow.guided_target(v_star, v_sc, v_nosc, w, jnp.array([True, False]))
  ref = np.asarray(v_star).copy()
  ref[0] += (1 - 1 / 2.0) * (np.asarray(v_sc)[0] - np.asarray(v_nosc)[0])
  np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-6)


def test_time_guidance_and_decoder_noise_draws_match_numpy():
  key = jax.random.key(3)
  t = np.asarray(flow.sample_time(key, 1000, 'logit_normal', -1.5, 0.8))
  np.testing.assert_allclose(t, 1 / (1 + np.exp(-(-1.5 + 0.8 * np.asarray(jax.random.normal(key, (1000,)))))),
                             rtol=1e-5)
  w = np.asarray(flow.sample_guidance(key, 4000, 0.5, 5.0))
  assert w.min() >= 0.5 - 1e-6 and w.max() <= 5.0 + 1e-5
  u = np.asarray(jax.random.uniform(key, (4000,)))
  np.testing.assert_allclose(w, 1.5 * np.exp(u * np.log(6 / 1.5)) - 1, rtol=1e-5)
  zd = np.asarray(flow.decode_noising(key, jnp.asarray(X), 0.8, 0.8, 5.0))
  kp, kn = jax.random.split(key)
  p = 1 / (1 + np.exp(-(0.8 + 0.8 * np.asarray(jax.random.normal(kp, (2, 5, 1))))))
  np.testing.assert_allclose(zd, p * X + (1 - p) * 5 * np.asarray(jax.random.normal(kn, X.shape)), rtol=1e-5,
                             atol=1e-5)


@functools.cache
def _tiny_elf():
  cfg = elf.ElfConfig(latent_dim=6, vocab_size=11, num_layers=1, embed_dim=16, num_heads=2, bottleneck_dim=4,
                      decoder_dim=8, freq_dim=8)
  model = elf.Elf(cfg)
  params = nn.unbox(elf.init_params(model, jax.random.key(0), 5))
  # Non-zero output projection, so x̂ is not identically 0.
  params['out_proj']['kernel'] = 0.3 * jax.random.normal(jax.random.key(1), params['out_proj']['kernel'].shape)
  return model, params


def test_denoise_loss_matches_numpy(prediction='x'):
  """The whole denoise branch recomputed in numpy from the same random draws and network calls."""
  model, params = _tiny_elf()
  obj = elf_flow.ElfObjective(decoder_prob=0.0, prediction=prediction)
  batch = {'tokens': jnp.zeros((2, 5), jnp.int32), 'latents': jnp.asarray(X * 0.2)}
  rng = jax.random.key(7)
  loss, _ = jax.jit(lambda p, b, r: elf_flow.elf_loss(model, obj, p, b, r))(params, batch, rng)
  k = jax.random.split(rng, 7)
  x = X.astype(np.float64)
  apply = jax.jit(lambda p, z, t, w, sc: model.apply({'params': p}, z, t, w, sc))
  t = 1 / (1 + np.exp(-(-1.5 + 0.8 * np.asarray(jax.random.normal(k[0], (2,)), np.float64))))
  eps = np.asarray(jax.random.normal(k[1], x.shape), np.float64)
  z = t[:, None, None] * x + (1 - t[:, None, None]) * 2 * eps
  u = np.asarray(jax.random.uniform(k[2], (2,)), np.float64)
  w = 1.5 * np.exp(u * np.log(6 / 1.5)) - 1
  use_sc = np.asarray(jax.random.uniform(k[3], (2,))) < 0.5
  div = np.maximum(1 - t, 0.05)[:, None, None]

  def net(sc):
    sc = np.zeros_like(z) if sc is None else sc
    out = np.asarray(apply(params, *(jnp.asarray(a, jnp.float32) for a in (z, t, w, sc))), np.float64)
    if prediction == 'x':
      return (out - z) / div, out
    return out, z + div * out
  v0, x0 = net(None)
  v, _ = net(x0 * use_sc[:, None, None])
  target = (x - z) / div + ((1 - 1 / w) * use_sc)[:, None, None] * (v - v0)
  np.testing.assert_allclose(float(loss), np.mean((v - target) ** 2), rtol=2e-4)


def test_decode_loss_matches_numpy():
  model, params = _tiny_elf()
  tokens = jnp.asarray(RNG.integers(0, 11, (2, 5)), jnp.int32)
  batch = {'tokens': tokens, 'latents': jnp.asarray(X * 0.2)}
  rng = jax.random.key(5)
  loss_fn = jax.jit(lambda obj, p, b, r: elf_flow.elf_loss(model, obj, p, b, r), static_argnums=0)
  loss, m = loss_fn(elf_flow.ElfObjective(decoder_prob=1.0), params, batch, rng)
  k = jax.random.split(rng, 7)
  zd = flow.decode_noising(k[5], jnp.asarray(X), 0.8, 0.8, 5.0)
  u = np.asarray(jax.random.uniform(k[2], (2,)))
  w = jnp.asarray(1.5 * np.exp(u * np.log(6 / 1.5)) - 1, jnp.float32)
  logits = np.asarray(model.apply({'params': params}, zd, jnp.ones((2,)), w, None, decode=True), np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ce = -np.take_along_axis(logp, np.asarray(tokens)[..., None], -1).mean()
  np.testing.assert_allclose(float(loss), ce, rtol=1e-5)
  assert float(m['decode_step']) == 1.0


GRIDS = ([flow.time_grid(n, 'uniform') for n in (1, 3, 32)] + [flow.time_grid(16, 'logit_normal', jax.random.key(2))]
         + [jnp.concatenate([jnp.zeros(1), jnp.sort(jax.random.uniform(jax.random.key(9), (11,))), jnp.ones(1)])])


def test_oracle_denoiser_reaches_x_for_any_grid():
  """ODE with the exact x lands on x at t = 1 for any grid; with the official clamp max(1 - t, 0.05),
  steps from t > 0.95 are shortened and the residual is the product of the shortened steps' factors."""
  x, z0 = jnp.asarray(X), 2.0 * jnp.asarray(EPS)

  @jax.jit
  def run(grid, key, t_eps):
    oracle = lambda z, t, x_prev: (flow.velocity(x, z, t, t_eps), x)  # noqa: E731
    ode = flow.integrate(oracle, z0, grid, method='ode')[0]
    return ode, flow.integrate(oracle, z0, grid, method='sde', rng=key, gamma=1.5)[0]

  for grid in GRIDS:
    g = np.asarray(grid, np.float64)
    for t_eps in (1e-6, 0.05):
      factor = np.prod([1 - (b - a) / max(1 - a, t_eps) for a, b in zip(g[:-1], g[1:])])
      ode, sde = run(grid, jax.random.key(0), t_eps)
      np.testing.assert_allclose(np.asarray(ode - x), factor * np.asarray(z0 - x), atol=3e-5, err_msg=str(g))
      if 1 - g[-2] >= t_eps:  # exact arrival; the SDE's last step is an ODE step, so it lands on x too
        assert factor == 0.0
        np.testing.assert_allclose(np.asarray(sde), X, atol=3e-5)


def test_ode_path_of_the_oracle_is_the_straight_line():
  x, z0 = jnp.asarray(X), 2.0 * jnp.asarray(EPS)
  grid = np.asarray(flow.time_grid(8, 'logit_normal', jax.random.key(1)))
  z, prev = z0, jnp.zeros_like(z0)
  for t, t_next in zip(grid[:-1], grid[1:]):
    z, prev = flow.ode_step(lambda z, t, p: (flow.velocity(x, z, t), x), z, t, t_next, prev)
    np.testing.assert_allclose(np.asarray(z), t_next * X + (1 - t_next) * np.asarray(z0), atol=2e-5)


def test_grids():
  g = np.asarray(flow.time_grid(16, 'logit_normal', jax.random.key(0)))
  assert g.shape == (17,) and g[0] == 0 and g[-1] == 1 and np.all(np.diff(g) >= 0)
  np.testing.assert_allclose(np.asarray(flow.time_grid(4, 'uniform')), [0, .25, .5, .75, 1])
  assert np.asarray(flow.mask_after_eos(jnp.array([[5, 2, 7, 2, 8]]), 2, 0)).tolist() == [[5, 2, 0, 0, 0]]


def test_bad_sampling_arguments_are_clear_errors():
  model, params = _tiny_elf()
  obj = elf_flow.ElfObjective()
  kw = dict(num_samples=2, length=5)
  with pytest.raises(ValueError, match=r'guidance scale w must be > 0, got 0'):
    elf_flow.generate(model, obj, params, jax.random.key(0), num_steps=4, guidance=0.0, **kw)
  with pytest.raises(ValueError, match=r'guidance scale w must be > 0, got -1'):
    elf_flow.generate(model, obj, params, jax.random.key(0), num_steps=4, guidance=-1.0, **kw)
  with pytest.raises(ValueError, match=r'num_steps \(sampling steps\) must be >= 1, got 0'):
    elf_flow.generate(model, obj, params, jax.random.key(0), num_steps=0, **kw)
  with pytest.raises(ValueError, match=r"method 'euler'"):
    elf_flow.generate(model, obj, params, jax.random.key(0), num_steps=2, method='euler', **kw)
  with pytest.raises(ValueError, match=r'prediction'):
    elf_flow.ElfObjective(prediction='score')
  with pytest.raises(ValueError, match=r'guidance range'):
    flow.sample_guidance(jax.random.key(0), 3, 0.0, 5.0)
