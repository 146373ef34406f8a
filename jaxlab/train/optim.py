"""Optimisers and learning-rate schedules from a config, all built from optax.

``config.optimizer`` fields (see experiments/lm/configs/default.py for a commented example):

  name            'adamw' | 'muon' | 'sgd'
  learning_rate   peak learning rate
  schedule        'warmup_cosine' | 'constant' | 'linear' (warmup then linear decay to 0) |
                  'constant_linear_tail' (warmup, constant, then linear to 0 over the last
                  decay_fraction of the steps: the multimodal-SAE trainer's schedule)
  decay_fraction  'constant_linear_tail' only: fraction of total_steps of the final decay (default 0.2)
  warmup_steps    linear warmup length (all schedules)
  end_lr_fraction final learning rate of the cosine schedule as a fraction of the peak
  weight_decay    decoupled weight decay, applied to parameters of rank ≥ 2 only
  b1, b2, eps     Adam moments (AdamW; Muon's Adam fallback for non-matrix params)
  momentum        SGD momentum (0 disables), Muon's beta
  grad_clip_norm  global-norm clipping threshold (0 disables)
  muon_all_matrices  Muon only: also orthogonalise the rank-3 weights (attention projections
                  [embed, heads, head_dim] / [heads, head_dim, embed] as one matrix, [1, n, d] tables as
                  n × d), as reference Muon implementations do for every ≥2-D weight (default False:
                  optax's default, rank-3 weights go to the Adam fallback)
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import ml_collections
import optax

OPTIMIZERS = ("adamw", "muon", "sgd")
SCHEDULES = ("warmup_cosine", "constant", "linear", "constant_linear_tail")


def make_schedule(cfg: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Builds the learning-rate schedule named by ``config.optimizer.schedule``."""
  lr, warmup = float(cfg.learning_rate), int(cfg.get("warmup_steps", 0))
  name = cfg.get("schedule", "constant")
  if warmup < 0 or (name != "constant" and warmup >= max(total_steps, 1)):
    raise ValueError(f"config.optimizer.warmup_steps={warmup} must be in [0, total_steps={total_steps})")
  if name == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=total_steps,
        end_value=lr * float(cfg.get("end_lr_fraction", 0.0)))
  if name == "constant":
    if warmup == 0:
      return optax.constant_schedule(lr)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
  if name == "linear":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), optax.linear_schedule(lr, 0.0, total_steps - warmup)],
        [warmup])
  if name == "constant_linear_tail":
    frac = float(cfg.get("decay_fraction", 0.2))
    if not 0.0 < frac <= 1.0:
      raise ValueError(f"config.optimizer.decay_fraction={frac} must be in (0, 1]")
    decay = max(1, int(round(frac * total_steps)))
    start = total_steps - decay
    if warmup > start:
      raise ValueError(f"config.optimizer.warmup_steps={warmup} overlaps the final decay (starts at {start})")
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr),
         optax.linear_schedule(lr, 0.0, decay)], [warmup, start])
  raise ValueError(f"config.optimizer.schedule={name!r} is not one of {SCHEDULES}")


def decay_mask(params) -> object:
  """Weight decay on matrices and embeddings only (not on norms' scales or biases)."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def _muon_dims(path, p):
  """Muon dimension numbers of one parameter (None: Adam), for ``muon_all_matrices``."""
  md = optax.contrib.MuonDimensionNumbers
  names = [str(getattr(k, "key", k)) for k in path]
  if p.ndim == 2:
    return md(0, 1)
  if p.ndim == 3:
    if p.shape[0] == 1:                        # [1, n, d] learned tokens: one n × d matrix
      return md(1, 2)
    if len(names) >= 2 and names[-2] == "out":  # HeadsOut kernel [heads, head_dim, embed]
      return md((0, 1), 2)
    return md(0, (1, 2))                       # HeadsIn kernel [embed, heads, head_dim]
  return None


def make_optimizer(cfg: ml_collections.ConfigDict, total_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Returns ``(tx, schedule)`` for ``config.optimizer``; clipping is part of ``tx``."""
  schedule = make_schedule(cfg, total_steps)
  name = cfg.get("name", "adamw")
  wd = float(cfg.get("weight_decay", 0.0))
  if name == "adamw":
    tx = optax.adamw(schedule, b1=cfg.get("b1", 0.9), b2=cfg.get("b2", 0.999), eps=cfg.get("eps", 1e-8),
                     weight_decay=wd, mask=decay_mask)
  elif name == "muon":
    # Muon orthogonalises the updates of 2-D weights; everything else (embeddings are 2-D too, but
    # optax's default dimension numbers treat every 2-D array as a matrix) falls back to Adam.
    dims = None
    if cfg.get("muon_all_matrices", False):
      dims = lambda params: jax.tree_util.tree_map_with_path(_muon_dims, params)  # noqa: E731
    tx = optax.contrib.muon(schedule, beta=cfg.get("momentum", 0.95), weight_decay=wd,
                            weight_decay_mask=decay_mask, adam_b1=cfg.get("b1", 0.9),
                            adam_b2=cfg.get("b2", 0.999), adam_weight_decay=wd,
                            muon_weight_dimension_numbers=dims)
  elif name == "sgd":
    momentum = float(cfg.get("momentum", 0.0))
    tx = optax.sgd(schedule, momentum=momentum or None)
    if wd:
      tx = optax.chain(optax.add_decayed_weights(wd, mask=decay_mask), tx)
  else:
    raise ValueError(f"config.optimizer.name={name!r} is not one of {OPTIMIZERS}")
  clip = float(cfg.get("grad_clip_norm", 0.0))
  if clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  return tx, schedule


def ema_update(ema_params, params, decay: float):
  """Exponential moving average of parameters: ema ← decay·ema + (1 − decay)·params."""
  return optax.incremental_update(params, ema_params, step_size=1.0 - decay)


LearningRateFn = Callable[[jax.Array], jax.Array]
