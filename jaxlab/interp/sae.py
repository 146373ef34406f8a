"""Sparse autoencoders on residual-stream activations: the ReLU SAE of multimodal-saes and a TopK SAE.

ReLU SAE (multimodal-interpretability/multimodal-saes, sae/sae_trainer.py; the code, where it differs from
the paper text):

    f = ReLU(x W_enc + b_enc)           x [batch, d], W_enc [d, F], f [batch, F]
    x̂ = f W_dec + b_dec                 W_dec [F, d] (row i = atom i)
    loss = mean_batch[ Σ_j (x − x̂)_j² + λ Σ_i f_i ‖W_dec[i]‖ ]     (decoder norms under stop_gradient)

The reference stores W_d [d, F] = W_decᵀ, draws it Gaussian and rescales each of its *rows* (length F) to
norm 0.1, so an atom has norm ≈ 0.1/√expansion; W_e = W_dᵀ (here W_enc = W_decᵀ), biases 0. λ rises linearly
from 0 to `l1_coeff` (5) over the first 5% of the steps (`l1_schedule`: the value rides in each batch as
'l1', so the loss is a pure function of (params, batch) and resumption is exact); Adam 5e-5, the LR constant
then linear to 0 over the last 20% (`jaxlab.train.optim` 'constant_linear_tail'), clip 1.0. Inputs are
scaled by √d / mean‖x‖ (`ActivationStore.scale`), so the mean norm is √d.

TopK SAE (Gao et al. 2024; sae-lens' TopK): f = ReLU(TopK(x W_enc + b_enc)), loss Σ_j (x − x̂)_j² (no L1).

Metrics (`reconstruction_metrics`; definitions as sae-lens 6.54 sae_lens/evals.py, read from its source):
  l0                  mean over tokens of #{i: f_i ≠ 0}
  mse                 mean over tokens of Σ_j (x − x̂)_j²  (sum over dimensions; sae-lens' convention)
  explained_variance  1 − mse / (E‖x‖² − ‖E x‖²), pooled over all tokens (sae-lens' ExplainedVarianceCalculator;
                      the multimodal-saes trainer logs a wrong variant that sums before squaring)
  loss_recovered      1 − (CE_sae − CE) / (CE_zero − CE), the site zero-ablated for CE_zero (= sae-lens'
                      ce_loss_score); `loss_recovered` takes the three CEs
  dead / dense        fraction of features that never fire over a window of tokens / fire on more than
                      `dense_threshold` of them (sae-lens tracks dead features the same way during training;
                      "dense" is jaxlab's name for the high-frequency tail, default threshold 0.1)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
KINDS = ('relu', 'topk')


@dataclasses.dataclass(frozen=True)
class SaeConfig:
  """SAE architecture and sparsity penalty."""
  d_in: int                     # activation width d
  expansion: int = 8            # F = expansion · d features
  kind: str = 'relu'            # 'relu' (L1 on f·‖atom‖) | 'topk' (exactly k active features)
  k: int = 32                   # TopK only: active features per token
  l1_coeff: float = 5.0         # ReLU only: final λ
  l1_warmup_fraction: float = 0.05  # ReLU only: λ rises linearly 0 → l1_coeff over this fraction of steps
  init_row_norm: float = 0.1    # norm of each row of W_d = W_decᵀ at init (the reference's 0.1)

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f'SaeConfig.kind={self.kind!r} is not one of {KINDS}.')
    if self.d_in < 1 or self.expansion < 1:
      raise ValueError(f'SaeConfig.d_in={self.d_in} and expansion={self.expansion} must be positive.')
    if self.kind == 'topk' and not 0 < self.k <= self.num_features:
      raise ValueError(f'SaeConfig.k={self.k} must be in 1..{self.num_features}.')
    if not 0.0 <= self.l1_warmup_fraction <= 1.0:
      raise ValueError(f'SaeConfig.l1_warmup_fraction={self.l1_warmup_fraction} must be in [0, 1].')

  @property
  def num_features(self) -> int:
    return self.d_in * self.expansion


def init_params(cfg: SaeConfig, rng: Array) -> dict[str, Array]:
  """{'W_enc' [d, F], 'b_enc' [F], 'W_dec' [F, d], 'b_dec' [d]} as the reference initialises them."""
  w_d = jax.random.normal(rng, (cfg.d_in, cfg.num_features), jnp.float32)       # the reference's W_d [d, F]
  w_d = cfg.init_row_norm * w_d / jnp.linalg.norm(w_d, axis=1, keepdims=True)  # each row (over F) → 0.1
  return {'W_enc': w_d, 'b_enc': jnp.zeros((cfg.num_features,), jnp.float32),
          'W_dec': w_d.T, 'b_dec': jnp.zeros((cfg.d_in,), jnp.float32)}


def encode(cfg: SaeConfig, params, x: Array) -> Array:
  """Feature activations f [..., F] of (scaled) activations x [..., d]."""
  pre = x @ params['W_enc'] + params['b_enc']
  if cfg.kind == 'relu':
    return jax.nn.relu(pre)
  vals, idx = jax.lax.top_k(pre, cfg.k)
  flat = jnp.zeros(pre.shape, pre.dtype).reshape(-1, pre.shape[-1])
  rows = jnp.arange(flat.shape[0])[:, None]
  flat = flat.at[rows, idx.reshape(-1, cfg.k)].set(jax.nn.relu(vals).reshape(-1, cfg.k))
  return flat.reshape(pre.shape)


def decode(params, f: Array) -> Array:
  """Reconstruction x̂ [..., d] of features f [..., F]."""
  return f @ params['W_dec'] + params['b_dec']


def forward(cfg: SaeConfig, params, x: Array) -> tuple[Array, Array]:
  """(x̂ [..., d], f [..., F])."""
  f = encode(cfg, params, x)
  return decode(params, f), f


def l1_schedule(cfg: SaeConfig, total_steps: int):
  """λ at update `step` (0-based): linear 0 → l1_coeff over the first l1_warmup_fraction of the steps."""
  warm = int(round(cfg.l1_warmup_fraction * total_steps))

  def value(step):
    if warm <= 0:
      return cfg.l1_coeff
    return cfg.l1_coeff * min(1.0, float(step) / warm)

  return value


def loss(cfg: SaeConfig, params, x: Array, l1: Array | float = 0.0) -> tuple[Array, dict[str, Array]]:
  """The training loss on x [batch, d] (already scaled) and its parts.

  Args:
    cfg: the SAE config.
    params: SAE params.
    x: [batch, d] activations.
    l1: λ, a scalar or [batch] (the per-example copy the data pipeline attaches); ignored by TopK.
  Returns:
    (mean over the batch of Σ_j (x − x̂)_j² + λ Σ_i f_i ‖W_dec[i]‖, {'mse', 'l1_penalty', 'l0', 'l1_coeff'}).
  """
  x_hat, f = forward(cfg, params, x)
  sq = jnp.sum(jnp.square(x - x_hat), axis=-1)                        # [batch]
  norms = jax.lax.stop_gradient(jnp.linalg.norm(params['W_dec'], axis=-1))  # [F], no gradient (reference)
  sparsity = f @ norms                                                # [batch]
  lam = jnp.broadcast_to(jnp.asarray(l1, jnp.float32), sq.shape)
  if cfg.kind == 'topk':
    lam = jnp.zeros_like(lam)
  total = jnp.mean(sq + lam * sparsity)
  return total, {'mse': jnp.mean(sq), 'l1_penalty': jnp.mean(sparsity), 'l0': jnp.mean(jnp.sum(f != 0, -1)),
                 'l1_coeff': jnp.mean(lam)}


def metric_sums(cfg: SaeConfig, params, x: Array, weight: Array | None = None) -> dict[str, Array]:
  """Sums over tokens from which `finalize_metrics` forms l0, mse and explained variance.

  x [tokens, d]; weight [tokens] (1 real, 0 padding). The per-feature firing counts are in 'fired' [F].
  """
  x = x.astype(jnp.float32)
  w = jnp.ones(x.shape[:1], jnp.float32) if weight is None else weight.astype(jnp.float32)
  x_hat, f = forward(cfg, params, x)
  fired = (f != 0).astype(jnp.float32) * w[:, None]
  return {'weight': jnp.sum(w), 'l0': jnp.sum(fired), 'sq_err': jnp.sum(w * jnp.sum(jnp.square(x - x_hat), -1)),
          'sq_norm': jnp.sum(w * jnp.sum(jnp.square(x), -1)), 'sum_x': jnp.sum(w[:, None] * x, 0),
          'fired': jnp.sum(fired, 0)}


def add_sums(a: dict[str, Any] | None, b: dict[str, Any]) -> dict[str, np.ndarray]:
  """Accumulates `metric_sums` outputs on the host (float64)."""
  b = {k: np.asarray(v, np.float64) for k, v in b.items()}
  return b if a is None else {k: a[k] + b[k] for k in b}


def finalize_metrics(sums: dict[str, np.ndarray], dense_threshold: float = 0.1) -> dict[str, float]:
  """l0, mse, explained_variance (sae-lens' pooled definition), dead and dense fractions over the window."""
  n = float(sums['weight'])
  mse = float(sums['sq_err']) / n
  mean_x = np.asarray(sums['sum_x']) / n
  total_var = float(sums['sq_norm']) / n - float(np.sum(mean_x ** 2))
  freq = np.asarray(sums['fired']) / n
  return {'l0': float(sums['l0']) / n, 'mse': mse,
          'explained_variance': (1.0 - mse / total_var) if total_var > 1e-10 else float(mse < 1e-10),
          'dead_fraction': float(np.mean(freq == 0)), 'dense_fraction': float(np.mean(freq > dense_threshold)),
          'tokens': n}


def loss_recovered(ce_clean: float, ce_sae: float, ce_zero: float) -> float:
  """1 − (CE_sae − CE) / (CE_zero − CE): 1 when splicing in the SAE costs nothing, 0 when it is as bad as
  zero-ablating the site."""
  denom = ce_zero - ce_clean
  if abs(denom) < 1e-12:
    raise ValueError(f'CE_zero ({ce_zero}) equals the clean CE ({ce_clean}): loss recovered is undefined.')
  return 1.0 - (ce_sae - ce_clean) / denom

