"""Train state and the generic train / eval steps.

A task supplies a loss ``loss_fn(params, batch, rng) -> (loss, aux)`` where ``loss`` is a scalar *mean*
over the examples of ``batch`` and ``aux`` a dict of scalar metrics. The step:

* splits the batch into ``num_microbatches`` equal micro-batches (example ``j`` goes to micro-batch
  ``j % k``, which keeps each device's rows on that device) and accumulates gradients with ``lax.scan``;
  the mean of micro-batch means equals the big-batch mean, so accumulation is exact for mean losses;
* applies the optax transformation (clipping is inside it), updates the optional EMA of params;
* folds the step into the RNG, so dropout noise depends on (seed, step) only and a resumed run draws
  the same noise as an uninterrupted one;
* returns metrics computed on device (loss, grad/param norms, learning rate, aux): no host round trips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxlab.train import optim

LossFn = Callable[[Any, Mapping[str, jax.Array], jax.Array], tuple[jax.Array, Mapping[str, jax.Array]]]
EvalFn = Callable[[Any, Mapping[str, jax.Array]], Mapping[str, jax.Array]]


@flax.struct.dataclass
class TrainState:
  """Everything a checkpoint must hold to resume a run exactly (besides the data iterator)."""
  step: jax.Array          # int32 scalar: number of updates applied so far
  params: Any              # model parameters (unboxed pytree)
  opt_state: Any           # optax state
  rng: jax.Array           # uint32[2] base key; the step's key is fold_in(rng, step)
  ema_params: Any = None   # EMA of params, or None when disabled


def init_train_state(params, tx: optax.GradientTransformation, rng: jax.Array, use_ema: bool) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), rng=rng,
                    ema_params=jax.tree.map(jnp.copy, params) if use_ema else None)


def split_microbatches(batch: Mapping[str, jax.Array], k: int) -> Mapping[str, jax.Array]:
  """[batch, ...] -> [k, batch // k, ...]; micro-batch j holds examples j, j + k, j + 2k, ..."""
  def split(x):
    if x.shape[0] % k:
      raise ValueError(f"batch dimension {x.shape[0]} is not divisible by num_microbatches={k}")
    return jnp.swapaxes(x.reshape((x.shape[0] // k, k) + x.shape[1:]), 0, 1)
  return jax.tree.map(split, batch)


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation, schedule: optax.Schedule, *,
                    num_microbatches: int = 1, ema_decay: float = 0.0) -> Callable:
  """Returns ``train_step(state, batch, *frozen) -> (state, metrics)`` (not yet jitted).

  ``frozen`` (at most one pytree: weights that are inputs but not trained, e.g. the base model under LoRA
  adapters) is passed on as ``loss_fn(params, batch, rng, frozen)``; it gets no gradient, no optimiser state.
  """
  if num_microbatches < 1:
    raise ValueError(f"config.num_microbatches={num_microbatches} must be ≥ 1")
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def train_step(state: TrainState, batch, *frozen):
    rng = jax.random.fold_in(state.rng, state.step)
    if num_microbatches == 1:
      (loss, aux), grads = grad_fn(state.params, batch, rng, *frozen)
    else:
      micro = split_microbatches(batch, num_microbatches)

      def body(carry, xs):
        i, mb = xs
        (l, a), g = grad_fn(state.params, mb, jax.random.fold_in(rng, i), *frozen)
        acc_g, acc_l, acc_a = carry
        return (jax.tree.map(jnp.add, acc_g, g), acc_l + l, jax.tree.map(jnp.add, acc_a, a)), None

      _, aux_shape = jax.eval_shape(loss_fn, state.params, jax.tree.map(lambda x: x[0], micro), rng, *frozen)
      zeros = (jax.tree.map(jnp.zeros_like, state.params), jnp.zeros((), jnp.float32),
               jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shape))
      (grads, loss, aux), _ = jax.lax.scan(body, zeros, (jnp.arange(num_microbatches), micro))
      grads = jax.tree.map(lambda g: g / num_microbatches, grads)
      loss = loss / num_microbatches
      aux = jax.tree.map(lambda a: a / num_microbatches, aux)

    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = state.ema_params
    if ema is not None:
      ema = optim.ema_update(ema, params, ema_decay)
    metrics = dict(aux)
    metrics.update(loss=loss, grad_norm=optax.global_norm(grads), param_norm=optax.global_norm(params),
                   learning_rate=schedule(state.step))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)
    return new_state, metrics

  return train_step


def reduce_eval_sums(sums: Mapping[str, float]) -> dict[str, float]:
  """Turns accumulated eval sums (with a 'weight' entry) into means."""
  if "weight" not in sums:
    raise ValueError("an eval step must return a 'weight' entry (the number of examples/tokens summed)")
  w = float(sums["weight"])
  return {k: float(v) / max(w, 1e-12) for k, v in sums.items() if k != "weight"} | {"weight": w}
