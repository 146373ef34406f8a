"""Flow matching in a continuous latent space: interpolation, prediction targets, time grids, samplers.

Pure functions (no parameters, no flax) shared by ELF (`jaxlab.nn.diffusion.elf`) and any other latent flow.
Conventions follow ELF (arXiv 2605.10938; official code lillian039/ELF): t = 0 is noise, t = 1 is data,

    z_t = t·x + (1 - t)·s·ε,        ε ~ N(0, I), s = `noise_scale` (ELF: 2),

and every network output is turned into a clean-data estimate x̂ and a velocity

    v = (x̂ - z) / max(1 - t, t_eps)                                   (t_eps = 0.05),

whose regression target is v* = (x - z) / max(1 - t, t_eps) (= x - s·ε wherever 1 - t ≥ t_eps). The
network may predict x ('x', ELF's choice), v ('v') or the noise ε ('eps'); `to_velocity` converts each
into (v, x̂) so that the loss is always the same velocity loss and only the parameterisation differs.

Samplers integrate dz/dt = v from t = 0 to 1 on a time grid [0, t_1, ..., t_{N-1}, 1]:

* ODE (Euler): z ← z + (t' - t)·v(z, t).
* SDE (the official code's churn step): α = max(1 - γ·h, 0) with h = t' - t; t_b = α·t;
  z_b = α·z + (1 - α)·s·ε; z ← z_b + (t' - t_b)·v(z_b, t_b).
  The last step is always an ODE step.

The denoiser is a callable `denoise(z, t, x_prev) -> (v, x̂)` so that self-conditioning (feeding the
previous step's x̂ back in) and guidance live in the caller. Grids: 'logit_normal' (sorted draws of
sigmoid(N(μ, σ²)), random per call, as the official code) or 'uniform' (linspace).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Denoiser = Callable[[Array, Array, Array], tuple[Array, Array]]

PREDICTIONS = ('x', 'v', 'eps')
SCHEDULES = ('logit_normal', 'uniform')
METHODS = ('sde', 'ode')


def _bcast(t: Array, like: Array) -> Array:
  """[batch] (or scalar) times -> broadcastable to `like` [batch, ...]."""
  t = jnp.asarray(t, like.dtype)
  return t.reshape(t.shape + (1,) * (like.ndim - t.ndim))


def interpolate(x: Array, eps: Array, t: Array, noise_scale: float = 2.0) -> Array:
  """z_t = t·x + (1 - t)·noise_scale·ε.

  Args:
    x: [batch, length, dim] clean latents.
    eps: [batch, length, dim] standard normal noise.
    t: [batch] times in [0, 1] (0 = noise, 1 = data).
    noise_scale: s, the noise standard deviation at t = 0.
  """
  tb = _bcast(t, x)
  return tb * x + (1. - tb) * noise_scale * eps


def velocity(x_hat: Array, z: Array, t: Array, t_eps: float = 0.05) -> Array:
  """v = (x̂ - z) / max(1 - t, t_eps); with x̂ = x this is the regression target v*.

  Args:
    x_hat: [batch, length, dim] clean-data estimate (or the data itself for the target).
    z: [batch, length, dim] noisy latent at time t.
    t: [batch] times.
    t_eps: clamp on 1 - t.
  """
  return (x_hat - z) / jnp.maximum(1. - _bcast(t, z), t_eps)


def to_velocity(out: Array, z: Array, t: Array, prediction: str = 'x', t_eps: float = 0.05,
                noise_scale: float = 2.0) -> tuple[Array, Array]:
  """Network output -> (v, x̂) for the three parameterisations.

  'x':   x̂ = out;                                v = (x̂ - z) / max(1 - t, t_eps).
  'v':   v = out;                                 x̂ = z + max(1 - t, t_eps)·v.
  'eps': ε̂ = out; x̂ = (z - (1 - t)·s·ε̂) / max(t, t_eps); v = (x̂ - z) / max(1 - t, t_eps).

  Args:
    out: [batch, length, dim] network output.
    z: [batch, length, dim] its input latent.
    t: [batch] its time.
  """
  if prediction == 'x':
    return velocity(out, z, t, t_eps), out
  tb = _bcast(t, z)
  if prediction == 'v':
    return out, z + jnp.maximum(1. - tb, t_eps) * out
  if prediction == 'eps':
    x_hat = (z - (1. - tb) * noise_scale * out) / jnp.maximum(tb, t_eps)
    return velocity(x_hat, z, t, t_eps), x_hat
  raise ValueError(f'prediction={prediction!r} is not one of {PREDICTIONS}')


def sample_time(rng: Array, n: int, schedule: str = 'logit_normal', mean: float = -1.5,
                std: float = 0.8) -> Array:
  """[n] training times: sigmoid(N(mean, std²)) ('logit_normal') or U(0, 1) ('uniform')."""
  if schedule == 'logit_normal':
    return jax.nn.sigmoid(mean + std * jax.random.normal(rng, (n,)))
  if schedule == 'uniform':
    return jax.random.uniform(rng, (n,))
  raise ValueError(f'time schedule {schedule!r} is not one of {SCHEDULES}')


def sample_guidance(rng: Array, n: int, w_min: float = 0.5, w_max: float = 5.0) -> Array:
  """[n] guidance scales w with log(1 + w) uniform on [log(1 + w_min), log(1 + w_max)]."""
  if not 0. < w_min <= w_max:
    raise ValueError(f'guidance range must satisfy 0 < w_min <= w_max, got [{w_min}, {w_max}]')
  u = jax.random.uniform(rng, (n,))
  a, b = 1. + w_min, 1. + w_max
  return a * jnp.exp(u * jnp.log(b / a)) - 1.


def guided_target(v_target: Array, v_sc: Array, v_nosc: Array, w: Array, use_sc: Array) -> Array:
  """Training-time self-conditioning guidance target, stop-gradient:

      v_tgt = v* + (1 - 1/w)·(v_sc - v_nosc)   where self-conditioning is used (else v*),

  so that a network told `w` learns the guided velocity v_nosc + w·(v_sc - v_nosc) in one pass.
  At w = 1 this is exactly v*.

  Args:
    v_target: [batch, length, dim] plain target v*.
    v_sc: [batch, length, dim] velocity with self-conditioning on x̂ of the no-self-cond pass.
    v_nosc: [batch, length, dim] velocity with a zero self-conditioning input.
    w: [batch] guidance scales (> 0).
    use_sc: [batch] bool/0-1, whether the example uses self-conditioning.
  """
  gain = (1. - 1. / _bcast(w, v_target)) * _bcast(jnp.asarray(use_sc, v_target.dtype), v_target)
  return jax.lax.stop_gradient(v_target + gain * (v_sc - v_nosc))


def decode_noising(rng: Array, x: Array, mean: float = 0.8, std: float = 0.8, noise_scale: float = 5.0
                   ) -> Array:
  """Decoder-training input z̃ = p·x + (1 - p)·noise_scale·ε with per-token p = sigmoid(N(mean, std²)).

  Args:
    x: [batch, length, dim] clean latents.

  Returns:
    [batch, length, dim].
  """
  rp, rn = jax.random.split(rng)
  p = jax.nn.sigmoid(mean + std * jax.random.normal(rp, x.shape[:-1] + (1,)))
  return p * x + (1. - p) * noise_scale * jax.random.normal(rn, x.shape, x.dtype)


def check_steps(num_steps: int) -> None:
  if int(num_steps) < 1:
    raise ValueError(f'num_steps (sampling steps) must be >= 1, got {num_steps}')


def time_grid(num_steps: int, schedule: str = 'logit_normal', rng: Array | None = None, mean: float = -1.5,
              std: float = 0.8) -> Array:
  """[num_steps + 1] increasing times from 0 to 1.

  'uniform': linspace(0, 1). 'logit_normal': 0, then num_steps - 1 sorted draws of
  sigmoid(N(mean, std²)) (needs `rng`), then 1 (the official code's grid, random per call).
  """
  check_steps(num_steps)
  if schedule == 'uniform':
    return jnp.linspace(0., 1., num_steps + 1)
  if schedule == 'logit_normal':
    if rng is None:
      raise ValueError("the 'logit_normal' time grid is random: pass rng")
    inner = jnp.sort(sample_time(rng, num_steps - 1, schedule, mean, std))
    return jnp.concatenate([jnp.zeros((1,)), inner, jnp.ones((1,))])
  raise ValueError(f'time grid schedule {schedule!r} is not one of {SCHEDULES}')


def ode_step(denoise: Denoiser, z: Array, t: Array, t_next: Array, x_prev: Array) -> tuple[Array, Array]:
  """One Euler step from t to t_next; returns (z', x̂)."""
  tb = jnp.full(z.shape[:1], t, z.dtype)
  v, x_hat = denoise(z, tb, x_prev)
  return z + (t_next - t) * v, x_hat


def sde_step(denoise: Denoiser, rng: Array, z: Array, t: Array, t_next: Array, x_prev: Array, gamma: float,
             noise_scale: float = 2.0) -> tuple[Array, Array]:
  """The official code's stochastic step: step back to α·t with fresh noise, then Euler to t_next."""
  alpha = jnp.maximum(1. - gamma * (t_next - t), 0.)
  t_back = alpha * t
  z_back = alpha * z + (1. - alpha) * noise_scale * jax.random.normal(rng, z.shape, z.dtype)
  v, x_hat = denoise(z_back, jnp.full(z.shape[:1], t_back, z.dtype), x_prev)
  return z_back + (t_next - t_back) * v, x_hat


def integrate(denoise: Denoiser, z0: Array, grid: Array, *, method: str = 'sde', gamma: float = 1.5,
              rng: Array | None = None, noise_scale: float = 2.0) -> tuple[Array, Array]:
  """Integrates from grid[0] = 0 to grid[-1] = 1 with self-conditioning on the previous x̂.

  Steps 0..N-2 use `method` ('sde' or 'ode'); the last step is always ODE. Runs as one lax.scan.

  Args:
    denoise: (z [batch, ...], t [batch], x_prev [batch, ...]) -> (v, x̂); x_prev is zeros at the first step.
    z0: [batch, ...] initial noise (already scaled by noise_scale).
    grid: [N + 1] increasing times from 0 to 1.
    method: 'sde' or 'ode'.
    gamma: SDE churn rate (the official OWT setting is 1.5).
    rng: key for the SDE noise (unused by 'ode').

  Returns:
    (z at t = 1, the last x̂), both [batch, ...].
  """
  if method not in METHODS:
    raise ValueError(f'sampling method {method!r} is not one of {METHODS}')
  if method == 'sde' and rng is None:
    raise ValueError("method='sde' needs rng")
  if grid.ndim != 1 or grid.shape[0] < 2:
    raise ValueError(f'grid must be [num_steps + 1] with num_steps >= 1, got shape {grid.shape}')
  n = grid.shape[0] - 1
  rngs = jax.random.split(rng if rng is not None else jax.random.key(0), max(n - 1, 1))

  def body(carry, xs):
    z, x_prev = carry
    t, t_next, key = xs
    if method == 'sde':
      z, x_hat = sde_step(denoise, key, z, t, t_next, x_prev, gamma, noise_scale)
    else:
      z, x_hat = ode_step(denoise, z, t, t_next, x_prev)
    return (z, x_hat), None

  carry = (z0, jnp.zeros_like(z0))
  if n > 1:
    carry, _ = jax.lax.scan(body, carry, (grid[:-2], grid[1:-1], rngs[:n - 1]))
  z, x_prev = carry
  return ode_step(denoise, z, grid[-2], grid[-1], x_prev)


def mask_after_eos(tokens: Array, eos_id: int, pad_id: int) -> Array:
  """Replaces every token after the first `eos_id` of each row by `pad_id` (the eos itself is kept).

  Args:
    tokens: [batch, length] int.
  """
  after = jnp.cumsum(tokens == eos_id, axis=1) - (tokens == eos_id) > 0
  return jnp.where(after, pad_id, tokens)
