"""Routing baselines: best single strategy (chosen on validation), random, oracle, kNN, a monolithic MLP.

kNN (cosine over task embeddings): p̂_s and ĉ_s of a query are the means over its k nearest training tasks
(k tuned on validation by the accuracy of routing to argmax p̂). The monolithic router is one accuracy MLP
and one cost MLP over [task embedding, strategy one-hot] trained on every (task, strategy) pair, so adding a
strategy means retraining it on all strategies (the continual comparison in jaxlab.routing.continual).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxlab.routing import predictors


def best_single(correct_val: np.ndarray, cost_val: np.ndarray, budget: float | None = None) -> int:
  """The strategy with the highest validation accuracy (ties: the cheaper), optionally among those whose
  mean validation cost is <= budget (none fits: the cheapest)."""
  acc, cost = correct_val.mean(0), cost_val.mean(0)
  ok = np.ones_like(acc, bool) if budget is None else cost <= budget
  if not ok.any():
    return int(np.argmin(cost))
  order = sorted(np.flatnonzero(ok), key=lambda j: (-acc[j], cost[j]))
  return int(order[0])


def random_choice(n: int, num_strategies: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, num_strategies, size=n)


def knn_predict(e_train: np.ndarray, correct_train: np.ndarray, cost_train: np.ndarray, e_query: np.ndarray,
                k: int) -> tuple[np.ndarray, np.ndarray]:
  """(p̂, ĉ) [queries, strategies]: means over the k most cosine-similar training tasks."""
  a = e_train / np.maximum(np.linalg.norm(e_train, axis=1, keepdims=True), 1e-12)
  b = e_query / np.maximum(np.linalg.norm(e_query, axis=1, keepdims=True), 1e-12)
  k = min(k, len(a))
  nn_idx = np.argsort(-(b @ a.T), axis=1, kind='stable')[:, :k]
  return correct_train[nn_idx].mean(1), cost_train[nn_idx].mean(1)


def tune_knn(e_train, correct_train, cost_train, e_val, correct_val, ks=(1, 3, 5, 10, 20, 40)) -> int:
  """The k whose argmax-p̂ routing (ties: cheaper ĉ) is most accurate on validation (ties: smaller k)."""
  best_k, best_acc = ks[0], -1.
  for k in ks:
    p, c = knn_predict(e_train, correct_train, cost_train, e_val, k)
    choice = np.argmax(p - 1e-6 * c / max(float(c.max()), 1e-12), axis=1)
    acc = float(correct_val[np.arange(len(choice)), choice].mean())
    if acc > best_acc + 1e-12:
      best_k, best_acc = k, acc
  return best_k


class MonolithicMLP(nn.Module):
  """[batch, embed] task embedding + [batch] strategy index -> [batch, out]."""
  out: int
  num_slots: int = 16
  hidden: int = 128

  @nn.compact
  def __call__(self, e, sid):
    x = jnp.concatenate([e, jnp.eye(self.num_slots, dtype=e.dtype)[sid]], -1)
    return nn.Dense(self.out, name='head')(nn.relu(nn.Dense(self.hidden, name='hidden')(x)))


def _pairs(e: np.ndarray, y: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
  n, s = y.shape
  return ({'e': np.repeat(np.asarray(e, np.float32), s, 0), 'sid': np.tile(np.arange(s, dtype=np.int32), n)},
          y.reshape(-1))


def fit_monolithic(kind: str, datasets: list[tuple], workdir: str, *, seeds: list[int], num_slots: int = 16,
                   **kwargs) -> list[predictors.Fit]:
  """Monolithic predictors, one per (dataset, seed) (seed-major), trained side by side in one trainer run.

  datasets: [(e_train, y_train [tasks, strategies], e_val, y_val)], e.g. one per arrival of the continual
  protocol (the strategies arrived so far).
  """
  members = []
  for s in seeds:
    for k, (et, yt, ev, yv) in enumerate(datasets):
      if yt.shape[1] > num_slots:
        raise ValueError(f'{yt.shape[1]} strategies > num_slots={num_slots} of the monolithic one-hot')
      xt, ytf = _pairs(et, yt)
      xv, yvf = _pairs(ev, yv)
      members.append(predictors.Member(xt, ytf, xv, yvf, int(s), 1000 + k))
  module = MonolithicMLP(out=2 if kind == 'acc' else 1, num_slots=num_slots)
  return predictors.fit_members(kind, module, members, workdir, **kwargs)


def predict_monolithic(fit: predictors.Fit, e: np.ndarray, num_strategies: int) -> np.ndarray:
  x, _ = _pairs(e, np.zeros((len(e), num_strategies)))
  return fit.predict(x).reshape(len(e), num_strategies)
