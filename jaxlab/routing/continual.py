"""The CONCUR router and its continual protocol.

`ConcurRouter` keeps one (accuracy, cost) predictor pair per strategy. `add_strategies(...)` trains only the
new strategies' pairs (jaxlab.routing.predictors.fit_strategies) and never touches the pairs already there,
so adding a strategy costs its own two predictors; `predict(e)` stacks the pairs' outputs into p̂, ĉ
[tasks, strategies] for the routers (jaxlab.routing.routers).

`continual_rows(order, ...)`: strategies arrive one at a time in `order`; after each arrival the CONCUR
router (the pairs of the arrived strategies; each pair depends only on its own strategy's data and seed, so
it is the pair trained at that strategy's arrival) and a monolithic router retrained from scratch on all
arrived strategies (jaxlab.routing.baselines) are evaluated with w chosen on validation, and both
cumulative training costs are recorded (optimiser steps and their share of the wall time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxlab.routing import baselines, metrics, predictors, routers


@dataclasses.dataclass
class ConcurRouter:
  """Per-strategy predictor pairs over frozen task embeddings.

  cost_scale: costs are regressed divided by it (one constant for all strategies) and predicted × it.
  """
  cost_scale: float
  seed: int = 0
  task_only: bool = False
  fit_kwargs: dict = dataclasses.field(default_factory=dict)
  infos: list = dataclasses.field(default_factory=list)
  acc: list = dataclasses.field(default_factory=list)
  cost: list = dataclasses.field(default_factory=list)

  @property
  def strategies(self) -> list[str]:
    return [i.name for i in self.infos]

  def add_fits(self, info: predictors.StrategyInfo, acc: predictors.Fit, cost: predictors.Fit) -> None:
    if info.name in self.strategies:
      raise ValueError(f'strategy {info.name!r} is already in the router')
    self.infos.append(info)
    self.acc.append(acc)
    self.cost.append(cost)

  def add_strategies(self, infos: Sequence[predictors.StrategyInfo], e_train, correct_train, cost_train, e_val,
                     correct_val, cost_val, workdir: str) -> None:
    """Trains the new strategies' pairs only; correct_* / cost_* [n, len(infos)] are their outcomes."""
    clash = [i.name for i in infos if i.name in self.strategies]
    if clash:
      raise ValueError(f'strategies {clash} are already in the router')
    kw = dict(task_only=self.task_only, **self.fit_kwargs)
    a = predictors.fit_strategies('acc', list(infos), [self.seed], e_train, correct_train, e_val, correct_val,
                                  workdir + '/acc', **kw)
    c = predictors.fit_strategies('cost', list(infos), [self.seed], e_train,
                                  np.asarray(cost_train) / self.cost_scale, e_val,
                                  np.asarray(cost_val) / self.cost_scale, workdir + '/cost', **kw)
    for info in infos:
      self.add_fits(info, a[(self.seed, info.name)], c[(self.seed, info.name)])

  def subset(self, names: Sequence[str]) -> 'ConcurRouter':
    idx = [self.strategies.index(n) for n in names]
    return ConcurRouter(self.cost_scale, self.seed, self.task_only, dict(self.fit_kwargs),
                        [self.infos[i] for i in idx], [self.acc[i] for i in idx], [self.cost[i] for i in idx])

  def predict(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p̂, ĉ) [tasks, strategies], ĉ in the original cost units."""
    if not self.infos:
      raise ValueError('the router has no strategies yet')
    p = np.stack([f.predict(predictors.strategy_inputs(e, i)) for f, i in zip(self.acc, self.infos)], 1)
    c = np.stack([f.predict(predictors.strategy_inputs(e, i)) for f, i in zip(self.cost, self.infos)], 1)
    return p, c * self.cost_scale

  def train_cost(self) -> tuple[int, float]:
    """(optimiser steps, wall seconds) of all its predictors."""
    fits = self.acc + self.cost
    return int(sum(f.steps for f in fits)), float(sum(f.seconds for f in fits))


def best_w(p_val, c_val, correct_val, cost_val, cost_norm: float, ws: Sequence[float]) -> float:
  """The w of unconstrained routing with the highest validation accuracy (ties: the lower cost)."""
  scored = []
  for w in ws:
    m = metrics.evaluate(routers.unconstrained(p_val, c_val / cost_norm, w), correct_val, cost_val)
    scored.append((-m['accuracy'], m['cost'], w))
  return float(min(scored)[2])


def _route_eval(p_val, c_val, p_test, c_test, split, cols, cost_scale, ws) -> dict:
  _, yv, cv = split['val']
  _, ys, cs = split['test']
  w = best_w(p_val, c_val, yv[:, cols], cv[:, cols], cost_scale, ws)
  m = metrics.evaluate(routers.unconstrained(p_test, c_test / cost_scale, w), ys[:, cols], cs[:, cols])
  return dict(w=w, **m)


def continual_rows(order: Sequence[int], router: ConcurRouter, split: dict, workdir: str, *, cost_scale: float,
                   seeds: Sequence[int], ws: Sequence[float], fit_kwargs: dict | None = None,
                   monolithic: bool = True) -> list[dict]:
  """Per arrival (strategies `order`, indices into router.strategies and the split's columns): the CONCUR
  router on the arrived strategies and, when `monolithic`, monolithic routers (one per seed) retrained on
  all arrived strategies; test accuracy / cost with w chosen on validation and cumulative training costs.

  split: {'train' | 'val' | 'test': (e [n, embed], correct [n, S], cost [n, S])}.
  """
  fit_kwargs = dict(fit_kwargs or {})
  (et, yt, ct), (ev, yv, cv), (es, _, _) = split['train'], split['val'], split['test']
  rows = []
  mono = {}
  if monolithic:  # every arrival's monolithic router, side by side in one run per predictor kind
    data_a = [(et, yt[:, list(order[:k + 1])], ev, yv[:, list(order[:k + 1])]) for k in range(len(order))]
    data_c = [(et, ct[:, list(order[:k + 1])] / cost_scale, ev, cv[:, list(order[:k + 1])] / cost_scale)
              for k in range(len(order))]
    fa = baselines.fit_monolithic('acc', data_a, workdir + '/mono_acc', seeds=list(seeds), **fit_kwargs)
    fc = baselines.fit_monolithic('cost', data_c, workdir + '/mono_cost', seeds=list(seeds), **fit_kwargs)
    n = len(order)
    mono = {(s, k): (fa[i * n + k], fc[i * n + k]) for i, s in enumerate(seeds) for k in range(n)}
  mono_steps = {s: 0 for s in seeds}
  mono_secs = {s: 0. for s in seeds}
  for k, j in enumerate(order):
    cols = list(order[:k + 1])
    sub = router.subset([router.strategies[i] for i in cols])
    pv, cvh = sub.predict(ev)
    ps, csh = sub.predict(es)
    m = _route_eval(pv, cvh, ps, csh, split, cols, cost_scale, ws)
    steps, secs = sub.train_cost()
    row = {'arrived': router.strategies[j], 'num_strategies': k + 1, 'w': m['w'], 'accuracy': m['accuracy'],
           'cost': m['cost'], 'train_steps_cumulative': steps, 'train_seconds_cumulative': secs,
           'train_steps_this_arrival': router.acc[j].steps + router.cost[j].steps}
    if monolithic:
      accs, costs, this_steps = [], [], []
      for s in seeds:
        ma, mc = mono[(s, k)]
        mono_steps[s] += ma.steps + mc.steps
        mono_secs[s] += ma.seconds + mc.seconds
        this_steps.append(ma.steps + mc.steps)
        mm = _route_eval(baselines.predict_monolithic(ma, ev, len(cols)),
                         baselines.predict_monolithic(mc, ev, len(cols)) * cost_scale,
                         baselines.predict_monolithic(ma, es, len(cols)),
                         baselines.predict_monolithic(mc, es, len(cols)) * cost_scale, split, cols, cost_scale, ws)
        accs.append(mm['accuracy'])
        costs.append(mm['cost'])
      row.update(mono_accuracy=float(np.mean(accs)), mono_accuracy_std=float(np.std(accs)),
                 mono_cost=float(np.mean(costs)),
                 mono_train_steps_cumulative=float(np.mean([mono_steps[s] for s in seeds])),
                 mono_train_seconds_cumulative=float(np.mean([mono_secs[s] for s in seeds])),
                 mono_train_steps_this_arrival=float(np.mean(this_steps)))
    rows.append(row)
  return rows
