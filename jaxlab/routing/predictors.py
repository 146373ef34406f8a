"""CONCUR's per-strategy predictors: an accuracy MLP (2 logits, cross-entropy) and a cost MLP (softplus, MSE).

Inputs, as in the official code: the task embedding e [embed] from a frozen text encoder (MiniLM here),
the strategy's model- and decoding-description embeddings (frozen, constant for a strategy), learned
model-id and decoding-id embeddings and a learned projection of e, concatenated -> Linear -> ReLU -> head.
With one predictor per strategy every strategy input is the same on every row (a learned bias in effect);
`task_only=True` is the ablation that feeds e alone.

`fit_strategies(...)` trains strategies' predictors through the one trainer (jaxlab.train): AdamW 1e-3,
batch 32, at most `max_epochs` epochs, a validation pass every `eval_every_epochs` epochs, patience
`patience` passes (accuracy predictor: validation accuracy; cost predictor: validation MSE); the parameters
of the best validation pass are kept. Independent predictors (strategies × seeds) train side by side in
one trainer run (`fit_members`: params stacked on a member axis, losses summed, so no member's gradient
sees another's): on this CPU a trainer run's compilation costs far more than a tiny MLP's steps, and one
run per predictor would spend the budget compiling. Each member stops on its own patience (the run ends
when all have; the trainer's on_eval hook raises `_Stop`), and its recorded cost is its own step count.

Costs are regressed in units of `cost_scale` (the caller passes one constant for every strategy, e.g. the
mean training-set FLOPs over all strategies), so the MSE is on numbers of order 1.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import time
from typing import Any

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxlab.train import default_config
from jaxlab.train import trainer as trainer_lib


@dataclasses.dataclass(frozen=True)
class StrategyInfo:
  """What a predictor knows of its strategy: description embeddings and integer ids."""
  name: str
  model_id: int
  decoding_id: int
  model_desc: np.ndarray      # [embed] frozen embedding of the model description
  decoding_desc: np.ndarray   # [embed] frozen embedding of the decoding description


class PredictorMLP(nn.Module):
  """Per-row inputs -> [batch, out] (2 logits, or 1 raw cost before softplus).

  e [batch, embed]; model_desc, decoding_desc [batch, embed]; model_id, decoding_id [batch] int.
  """
  out: int
  hidden: int = 128
  id_dim: int = 32
  proj_dim: int = 128
  num_models: int = 8
  num_decodings: int = 8
  task_only: bool = False

  @nn.compact
  def __call__(self, e, model_desc, decoding_desc, model_id, decoding_id):
    if self.task_only:
      x = e
    else:
      mid = nn.Embed(self.num_models, self.id_dim, name='model_id')(model_id)
      did = nn.Embed(self.num_decodings, self.id_dim, name='decoding_id')(decoding_id)
      proj = nn.Dense(self.proj_dim, name='task_proj')(e)
      x = jnp.concatenate([e, model_desc, decoding_desc, mid, did, proj], -1)
    h = nn.relu(nn.Dense(self.hidden, name='hidden')(x))
    return nn.Dense(self.out, name='head')(h)


def strategy_inputs(e: np.ndarray, info: StrategyInfo) -> dict[str, np.ndarray]:
  """The per-row inputs of a strategy's predictor for task embeddings e [n, embed]."""
  n = len(e)
  return {'e': np.asarray(e, np.float32),
          'model_desc': np.broadcast_to(np.asarray(info.model_desc, np.float32), (n, len(info.model_desc))),
          'decoding_desc': np.broadcast_to(np.asarray(info.decoding_desc, np.float32),
                                           (n, len(info.decoding_desc))),
          'model_id': np.full(n, info.model_id, np.int32), 'decoding_id': np.full(n, info.decoding_id, np.int32)}


def train_config(seed: int, total_steps: int, num_members: int) -> ml_collections.ConfigDict:
  """The trainer config of a stacked fit: AdamW 1e-3, constant rate, no clipping (a global-norm clip would
  couple the members); the trainer's batch axis is the member axis (each member draws its own 32 rows)."""
  c = default_config()
  c.seed = seed
  c.batch_size = num_members
  c.total_steps = total_steps
  c.eval_every = 1                  # on_eval decides per member whether it is at a validation pass
  c.log_every = total_steps
  c.optimizer.learning_rate = 1e-3
  c.optimizer.schedule = 'constant'
  c.optimizer.weight_decay = 0.01
  c.optimizer.b2 = 0.999
  c.optimizer.grad_clip_norm = 0.
  return c


class _Stop(Exception):
  """Raised from on_eval when every member has stopped (caught by `fit_members`)."""


@dataclasses.dataclass
class Fit:
  """A trained predictor: params, its module, and what its training cost."""
  kind: str                 # 'acc' | 'cost'
  params: Any
  module: nn.Module
  best_metric: float        # validation accuracy ('acc') or MSE ('cost') at the kept parameters
  steps: int                # optimiser steps this predictor ran before early stopping
  seconds: float            # its share of the stacked fit's wall time (by steps; compilation included)

  def predict(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """[n] P(correct) for 'acc', predicted cost (the targets' units) for 'cost'."""
    return np.asarray(_predict_fn(self.module, self.kind)(self.params,
                                                          {k: jnp.asarray(v) for k, v in inputs.items()}))


@functools.lru_cache(maxsize=64)
def _predict_fn(module: nn.Module, kind: str):
  """One jitted prediction per (module, kind): every member of a stacked fit shares its compilation."""
  def f(params, inputs):
    out = module.apply({'params': params}, **inputs)
    return jax.nn.softmax(out, -1)[:, 1] if kind == 'acc' else jax.nn.softplus(out[:, 0])
  return jax.jit(f)


@dataclasses.dataclass
class Member:
  """One independent predictor of a stacked fit: its data, and the (seed, tag) its init and order use."""
  x_train: dict
  y_train: np.ndarray
  x_val: dict
  y_val: np.ndarray
  seed: int
  tag: int


def _pad(x: np.ndarray, n: int) -> np.ndarray:
  x = np.asarray(x)
  return np.concatenate([x, np.zeros((n - len(x),) + x.shape[1:], x.dtype)]) if len(x) < n else x


class _MemberBatches:
  """Random-access batches [members, batch, ...]: member k reads its own stream of per-epoch shuffles."""

  def __init__(self, members: list[Member], batch_size: int):
    self.members, self.b = members, batch_size

  def __len__(self):
    return 1 << 30

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    rows = []
    for m in self.members:
      n = len(m.y_train)
      pos = i * self.b + np.arange(self.b)
      epochs, within = pos // n, pos % n
      idx = np.empty(self.b, np.int64)
      for ep in np.unique(epochs):
        perm = np.random.default_rng([m.seed, m.tag, int(ep)]).permutation(n)
        idx[epochs == ep] = perm[within[epochs == ep]]
      rows.append(idx)
    out = {k: np.stack([np.asarray(m.x_train[k])[r] for m, r in zip(self.members, rows)])
           for k in self.members[0].x_train}
    out['y'] = np.stack([np.asarray(m.y_train, np.float32)[r] for m, r in zip(self.members, rows)])
    return out


def fit_members(kind: str, module: nn.Module, members: list[Member], workdir: str, *, max_epochs: int = 100,
                patience: int = 5, eval_every_epochs: int = 3, batch_size: int = 32) -> list[Fit]:
  """Trains independent predictors side by side in ONE trainer run (params stacked on a member axis, each
  member's loss on its own batch; the losses are summed, so every member's gradient is its own).

  kind: 'acc' (y in {0, 1}, 2 logits, cross-entropy; validation accuracy) or 'cost' (softplus of 1 output,
  MSE; validation MSE). Each member runs at most `max_epochs` epochs of its own data, is validated every
  `eval_every_epochs` epochs, keeps the parameters of its best pass and stops after `patience` passes
  without improvement (its later updates are discarded); the run ends when every member has stopped.
  A member's init key and data order depend only on its (seed, tag), not on the other members.
  """
  if kind not in ('acc', 'cost'):
    raise ValueError(f"predictor kind must be 'acc' or 'cost', got {kind!r}")
  if not members:
    raise ValueError('fit_members needs at least one member')
  keys = sorted(members[0].x_train)
  for i, m in enumerate(members):
    for name, x, y in (('train', m.x_train, m.y_train), ('val', m.x_val, m.y_val)):
      bad = {k: np.shape(v) for k, v in x.items() if len(v) != len(y)}
      if bad or not len(y) or sorted(x) != keys:
        raise ValueError(f'predictor member {i} {name} data: {len(y)} targets, inputs {bad or sorted(x)}: '
                         'need matching, non-empty rows and the same input names in every member')
  spe = np.array([max(1, math.ceil(len(m.y_train) / batch_size)) for m in members])
  total = int((spe * max_epochs).max())
  config = train_config(int(members[0].seed), total, len(members))
  nv = max(len(m.y_val) for m in members)
  val_x = {k: jnp.asarray(np.stack([_pad(m.x_val[k], nv) for m in members])) for k in keys}
  val_y = np.stack([_pad(np.asarray(m.y_val, np.float32), nv) for m in members])
  val_w = np.stack([_pad(np.ones(len(m.y_val), np.float32), nv) for m in members])

  def one_loss(params, batch):
    out = module.apply({'params': params}, **{k: batch[k] for k in keys})
    if kind == 'acc':
      return optax.softmax_cross_entropy_with_integer_labels(out, batch['y'].astype(jnp.int32)).mean()
    return jnp.mean((jax.nn.softplus(out[:, 0]) - batch['y']) ** 2)

  def loss_fn(params, batch, rng):
    del rng
    losses = jax.vmap(one_loss)(params, batch)
    return losses.sum(), {'mean_member_loss': losses.mean()}

  @jax.jit
  def val_out(params):
    return jax.vmap(lambda p, x: module.apply({'params': p}, **x))(params, val_x)

  init_keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(m.seed), m.tag) for m in members])
  example = {k: jnp.asarray(np.asarray(members[0].x_train[k])[:1]) for k in keys}
  init = lambda rng: jax.vmap(lambda r: module.init(r, **example)['params'])(init_keys)  # noqa: E731
  k_members = len(members)
  best = [{'metric': -np.inf, 'params': None, 'since': 0, 'stopped': None} for _ in members]

  def on_eval(state, step):
    due = [k for k in range(k_members) if best[k]['stopped'] is None
           and (step % (eval_every_epochs * spe[k]) == 0 or step >= max_epochs * spe[k])]
    if not due:
      return {}
    out = np.asarray(val_out(state.params))
    host_params = None
    for k in due:
      if kind == 'acc':
        metric = float(((out[k].argmax(-1) == val_y[k]) * val_w[k]).sum() / val_w[k].sum())
      else:
        sp = np.logaddexp(0., out[k][:, 0])
        metric = -float((((sp - val_y[k]) ** 2) * val_w[k]).sum() / val_w[k].sum())
      b = best[k]
      if metric > b['metric']:
        if host_params is None:
          host_params = jax.device_get(state.params)
        b.update(metric=metric, params=jax.tree.map(lambda x, k=k: np.array(x[k]), host_params), since=0)
      else:
        b['since'] += 1
      if b['since'] >= patience or step >= max_epochs * spe[k]:
        b['stopped'] = step
    if all(b['stopped'] is not None for b in best):
      raise _Stop
    return {}

  ds = grain.MapDataset.source(_MemberBatches(members, batch_size))
  task = trainer_lib.Task(init_params=init, loss_fn=loss_fn, train_data=iter(ds.to_iter_dataset()),
                          on_eval=on_eval)
  t0 = time.perf_counter()
  try:
    trainer_lib.train(config, workdir, task, devices=jax.devices()[:1])
  except _Stop:
    pass
  seconds = time.perf_counter() - t0
  steps = [int(b['stopped'] or total) for b in best]
  return [Fit(kind, b['params'], module, b['metric'] if kind == 'acc' else -b['metric'], st,
              seconds * st / max(sum(steps), 1)) for b, st in zip(best, steps)]


def strategy_tag(name: str) -> int:
  """A stable integer of a strategy name (its predictors' init / data-order key with the seed)."""
  return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], 'little')


def fit_strategies(kind: str, infos: list[StrategyInfo], seeds: list[int], e_train: np.ndarray,
                   y_train: np.ndarray, e_val: np.ndarray, y_val: np.ndarray, workdir: str, *,
                   task_only: bool = False, hidden: int = 128, **kwargs) -> dict[tuple[int, str], Fit]:
  """Each listed strategy's own accuracy ('acc') or cost ('cost') predictor for each seed, in one stacked
  trainer run. y_* [n, len(infos)]: column j holds strategy j's targets. Returns {(seed, name): Fit}."""
  y_train, y_val = np.asarray(y_train), np.asarray(y_val)
  if y_train.ndim != 2 or y_train.shape[1] != len(infos) or y_val.shape[1:] != y_train.shape[1:]:
    raise ValueError(f'targets train {y_train.shape} / val {y_val.shape}: need [tasks, {len(infos)} strategies]')
  module = PredictorMLP(out=2 if kind == 'acc' else 1, hidden=hidden, task_only=task_only,
                        num_models=max([8] + [i.model_id + 1 for i in infos]),
                        num_decodings=max([8] + [i.decoding_id + 1 for i in infos]))
  members, keys = [], []
  for s in seeds:
    for j, info in enumerate(infos):
      members.append(Member(strategy_inputs(e_train, info), y_train[:, j], strategy_inputs(e_val, info),
                            y_val[:, j], int(s), strategy_tag(info.name)))
      keys.append((int(s), info.name))
  return dict(zip(keys, fit_members(kind, module, members, workdir, **kwargs)))


def param_bytes(params) -> bytes:
  """The exact bytes of a parameter tree (for bit-for-bit comparisons)."""
  return b''.join(np.asarray(x).tobytes() for x in jax.tree.leaves(params))
