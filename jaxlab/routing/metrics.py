"""Routing metrics: end-to-end accuracy, realised cost, the accuracy–cost Pareto front, gap closed."""

from __future__ import annotations

import numpy as np


def evaluate(choice: np.ndarray, correct: np.ndarray, cost: np.ndarray) -> dict[str, float]:
  """Accuracy and mean realised cost of routing `choice` [tasks] on outcomes `correct` / `cost`
  [tasks, strategies]."""
  choice = np.asarray(choice, np.int64)
  rows = np.arange(len(choice))
  if correct.shape[0] != len(choice):
    raise ValueError(f'{len(choice)} choices for {correct.shape[0]} tasks')
  return {'accuracy': float(correct[rows, choice].mean()), 'cost': float(cost[rows, choice].mean())}


def oracle_choice(correct: np.ndarray, cost: np.ndarray) -> np.ndarray:
  """Per task the cheapest correct strategy, else the cheapest one."""
  big = np.where(correct > 0, cost, np.inf)
  return np.where((correct > 0).any(1), np.argmin(big, 1), np.argmin(cost, 1))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
  """Indices of the (cost, accuracy) points no other point dominates (lower-or-equal cost and
  higher-or-equal accuracy, one strictly), sorted by cost."""
  idx = []
  for i, (c, a) in enumerate(points):
    dominated = any((c2 <= c and a2 >= a and (c2 < c or a2 > a)) for j, (c2, a2) in enumerate(points) if j != i)
    if not dominated:
      idx.append(i)
  return sorted(idx, key=lambda i: (points[i][0], -points[i][1]))


def gap_closed(router_acc: float, best_single_acc: float, oracle_acc: float) -> float:
  """(router − best single) / (oracle − best single); NaN when the oracle is no better."""
  gap = oracle_acc - best_single_acc
  return float((router_acc - best_single_acc) / gap) if gap > 1e-12 else float('nan')


def accuracy_at_cost(points: list[tuple[float, float]], cost: float) -> float:
  """The best accuracy among points with cost <= `cost` (NaN if none): for equal-or-lower-cost claims."""
  ok = [a for c, a in points if c <= cost * (1 + 1e-9)]
  return max(ok) if ok else float('nan')
