"""Linear probes on activations: dense logistic (softmax) probes and sparse probes with a Hard-Concrete gate.

Dense (multimodal-saes probing on mean-pooled residuals): logits = x W + b on standardised features
x [n, d], cross-entropy (binary = 2 classes), optional L2, full-batch Adam.

Sparse (multimodal-saes probing_approximation, on SAE codes): every input feature i has a gate with
log-odds m_i (Louizos et al. 2018, β = 2/3, γ = −0.1, ζ = 1.1, as in the reference):

    train:  u ~ U(1e-4, 1 − 1e-4),  s = σ(1.5 (log(u / (1 − u)) + m)),  z = clip(1.2 s − 0.1, 0, 1)
    eval:   z = clip(1.2 σ(m) − 0.1, 0, 1)       (the usual deterministic gate)
    logits = (x ⊙ z) W + b;  loss = CE + λ Σ_i σ(m_i − log(0.1 / 1.1) / 1.5)   (the expected L0)

The reference trains binary class pairs with BCE (Adam 1e-3, 1000 epochs, batch 32, λ ∈ {5e-3, 5e-4, 5e-5,
0}); here full-batch Adam for `steps` updates, which is the same objective on the small data sets of jaxlab.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
_LOG_RATIO = float(np.log(0.1 / 1.1))


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
  """Probe optimisation."""
  steps: int = 300              # full-batch Adam updates
  learning_rate: float = 1e-2
  l2: float = 1e-4              # dense probes: L2 on W (mean over entries)
  l0: float = 0.0               # sparse probes: λ of the expected-L0 gate penalty
  init_log_alpha: float = 2.0   # sparse probes: initial gate log-odds m (gates start mostly open)
  seed: int = 0


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  mu, sd = x.mean(0), x.std(0)
  return mu, np.where(sd > 1e-8, sd, 1.0)


def gate_train(m: Array, rng: Array) -> Array:
  """Stochastic Hard-Concrete gates z [F] for log-odds m [F]."""
  u = jax.random.uniform(rng, m.shape, minval=1e-4, maxval=1 - 1e-4)
  s = jax.nn.sigmoid(1.5 * (jnp.log(u / (1 - u)) + m))
  return jnp.clip(1.2 * s - 0.1, 0.0, 1.0)


def gate_eval(m: Array) -> Array:
  """Deterministic gates z [F]."""
  return jnp.clip(1.2 * jax.nn.sigmoid(m) - 0.1, 0.0, 1.0)


def expected_l0(m: Array) -> Array:
  """Σ_i P(z_i ≠ 0) = Σ_i σ(m_i − log(0.1/1.1)/1.5)."""
  return jnp.sum(jax.nn.sigmoid(m - _LOG_RATIO / 1.5))


def _fit(loss_fn, params, cfg: ProbeConfig):
  tx = optax.adam(cfg.learning_rate)

  @jax.jit
  def run(params, key):
    def body(carry, i):
      p, s = carry
      (l, aux), g = jax.value_and_grad(loss_fn, has_aux=True)(p, jax.random.fold_in(key, i))
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), l
    (p, _), losses = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(cfg.steps))
    return p, losses
  return run(params, jax.random.key(cfg.seed))


def fit_logistic(x: np.ndarray, y: np.ndarray, num_classes: int, cfg: ProbeConfig = ProbeConfig()) -> dict:
  """Dense probe on x [n, d] (standardised inside), integer labels y [n]. Returns the probe dict."""
  x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
  _check(x, y, num_classes)
  mu, sd = _standardiser(x)
  xs = jnp.asarray((x - mu) / sd)

  def loss_fn(p, key):
    del key
    logits = xs @ p['W'] + p['b']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y)).mean()
    return ce + cfg.l2 * jnp.mean(jnp.square(p['W'])), ()

  p0 = {'W': jnp.zeros((x.shape[1], num_classes)), 'b': jnp.zeros((num_classes,))}
  p, losses = _fit(loss_fn, p0, cfg)
  return {'kind': 'dense', 'W': np.asarray(p['W']), 'b': np.asarray(p['b']), 'mu': mu, 'sd': sd,
          'final_loss': float(losses[-1])}


def fit_sparse(x: np.ndarray, y: np.ndarray, num_classes: int, cfg: ProbeConfig = ProbeConfig()) -> dict:
  """Hard-Concrete gated probe on x [n, F] (e.g. SAE codes; not standardised, as in the reference)."""
  x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
  _check(x, y, num_classes)
  xs = jnp.asarray(x)

  def loss_fn(p, key):
    z = gate_train(p['m'], key)
    logits = (xs * z) @ p['W'] + p['b']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y)).mean()
    return ce + cfg.l0 * expected_l0(p['m']), ()

  f = x.shape[1]
  p0 = {'W': jnp.zeros((f, num_classes)), 'b': jnp.zeros((num_classes,)),
        'm': jnp.full((f,), cfg.init_log_alpha, jnp.float32)}
  p, losses = _fit(loss_fn, p0, cfg)
  gates = np.asarray(gate_eval(p['m']))
  return {'kind': 'sparse', 'W': np.asarray(p['W']), 'b': np.asarray(p['b']), 'm': np.asarray(p['m']),
          'gates': gates, 'num_open': int((gates > 0).sum()), 'final_loss': float(losses[-1])}


def predict_logits(probe: dict, x: np.ndarray) -> np.ndarray:
  """Class logits [n, classes] of a fitted probe."""
  x = np.asarray(x, np.float32)
  if probe['kind'] == 'dense':
    return ((x - probe['mu']) / probe['sd']) @ probe['W'] + probe['b']
  return (x * probe['gates']) @ probe['W'] + probe['b']


def accuracy(probe: dict, x: np.ndarray, y: np.ndarray) -> float:
  return float(np.mean(predict_logits(probe, x).argmax(-1) == np.asarray(y)))


def _check(x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
  if x.ndim != 2 or y.shape != (x.shape[0],):
    raise ValueError(f'probe inputs must be x [n, d] and y [n], got {x.shape} and {y.shape}.')
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f'labels must lie in [0, {num_classes}), got [{y.min()}, {y.max()}].')
