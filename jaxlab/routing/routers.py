"""CONCUR's routers: from predicted accuracies p̂ [tasks, strategies] and costs ĉ to one strategy per task.

  unconstrained(p, c, w)      per task argmax_s w·p̂_s − (1 − w)·ĉ_s (ĉ in the caller's units; pass costs
                              normalised to about [0, 1] so that w trades them off);
  global_knapsack(p, c, B)    multiple-choice knapsack over the batch: maximise Σ p̂ subject to Σ ĉ ≤ B·N,
                              by dynamic programming over costs discretised to `resolution` units of the
                              total budget (each cost rounded *up*, so the chosen set is feasible in the
                              exact costs too); when even the cheapest choice per task exceeds the budget
                              every task gets its cheapest strategy;
  local_budget(p, c, B)       per task the highest p̂ among strategies with ĉ ≤ B; when none fits, the
                              cheapest strategy. (The official code returns strategy 0 there, a bug: the
                              intended fallback is the cheapest, which is what this does.)

All return [tasks] int strategy indices.
"""

from __future__ import annotations

import itertools

import numpy as np


def _check(p: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  p, c = np.asarray(p, np.float64), np.asarray(c, np.float64)
  if p.ndim != 2 or p.shape != c.shape or p.shape[1] == 0:
    raise ValueError(f'predicted accuracy {p.shape} and cost {c.shape} must both be [tasks, strategies]')
  if (c < 0).any():
    raise ValueError('predicted costs must be >= 0')
  return p, c


def unconstrained(p: np.ndarray, c: np.ndarray, w: float) -> np.ndarray:
  p, c = _check(p, c)
  if not 0. <= w <= 1.:
    raise ValueError(f'w must be in [0, 1], got {w}')
  return np.argmax(w * p - (1. - w) * c, axis=1)


def local_budget(p: np.ndarray, c: np.ndarray, budget: float) -> np.ndarray:
  p, c = _check(p, c)
  fits = c <= budget
  choice = np.argmax(np.where(fits, p, -np.inf), axis=1)
  cheapest = np.argmin(c, axis=1)
  return np.where(fits.any(axis=1), choice, cheapest)


def global_knapsack(p: np.ndarray, c: np.ndarray, budget: float, resolution: int = 2000) -> np.ndarray:
  """Multiple-choice knapsack by DP; `budget` is per task (total B·N)."""
  p, c = _check(p, c)
  n, s = p.shape
  total = budget * n
  cheapest = np.argmin(c, axis=1)
  if c[np.arange(n), cheapest].sum() > total:
    return cheapest
  if total <= 0:
    return cheapest
  unit = total / resolution
  w = np.ceil(c / unit - 1e-9).astype(np.int64)  # integer weights, rounded up
  cap = resolution
  neg = -np.inf
  # best[k] = max value with total weight exactly k after the tasks so far; choice table for backtracking.
  best = np.full(cap + 1, neg)
  best[0] = 0.
  choice = np.zeros((n, cap + 1), np.int16)
  for i in range(n):
    new = np.full(cap + 1, neg)
    for j in range(s):
      wj = w[i, j]
      if wj > cap:
        continue
      cand = np.full(cap + 1, neg)
      cand[wj:] = best[:cap + 1 - wj] + p[i, j]
      better = cand > new
      new = np.where(better, cand, new)
      choice[i] = np.where(better, j, choice[i])
    best = new
  if not np.isfinite(best).any():  # rounding up made the cheapest set infeasible
    return cheapest
  k = int(np.argmax(best))
  out = np.zeros(n, np.int64)
  for i in range(n - 1, -1, -1):
    j = int(choice[i, k])
    out[i] = j
    k -= int(w[i, j])
  return out


def brute_force_knapsack(p: np.ndarray, c: np.ndarray, budget: float) -> tuple[float, np.ndarray | None]:
  """The exact optimum (value, choice) by enumeration, for tests on tiny instances."""
  p, c = _check(p, c)
  n, s = p.shape
  best_v, best_x = -np.inf, None
  for x in itertools.product(range(s), repeat=n):
    idx = np.array(x)
    cost = c[np.arange(n), idx].sum()
    if cost <= budget * n + 1e-9:
      v = p[np.arange(n), idx].sum()
      if v > best_v:
        best_v, best_x = v, idx
  return best_v, best_x
