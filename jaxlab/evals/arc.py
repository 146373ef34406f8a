"""ARC scoring as in VARC: majority vote over views on whole grids, pass@k, per-task robustness.

For each test input, every view yields a candidate grid (or None when it could not be decoded). Votes
count identical grids (same shape and values); the candidates are ranked by votes (ties: the grid
first seen wins). pass@k: a test input is solved if its ground truth is among the top k; a task's
score is the fraction of its test inputs solved; the benchmark accuracy is the mean of task scores.

`evaluate_tasks` runs a per-task function and records a task that raises as an error with score 0
instead of stopping the evaluation of the others.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging


def _key(grid: np.ndarray) -> tuple:
  g = np.asarray(grid)
  return (g.shape, g.astype(np.uint8).tobytes())


def vote(candidates: Iterable[np.ndarray | None]) -> list[tuple[np.ndarray, int]]:
  """Ranks distinct grids by their number of votes.

  Args:
    candidates: one grid [h, w] (or None for an undecodable view) per view.

  Returns:
    [(grid, votes)] sorted by votes descending, ties broken by first appearance.
  """
  counts: dict[tuple, list] = {}
  for order, g in enumerate(candidates):
    if g is None:
      continue
    k = _key(g)
    if k in counts:
      counts[k][1] += 1
    else:
      counts[k] = [np.asarray(g), 1, order]
  ranked = sorted(counts.values(), key=lambda e: (-e[1], e[2]))
  return [(g, n) for g, n, _ in ranked]


def is_correct(top: Sequence[np.ndarray], truth: np.ndarray, k: int) -> bool:
  """Whether `truth` equals one of the first k grids of `top` (shape and values)."""
  t = _key(truth)
  return any(_key(g) == t for g in list(top)[:k])


def task_score(ranked_per_test: Sequence[Sequence[np.ndarray]], truths: Sequence[np.ndarray], k: int) -> float:
  """Fraction of a task's test inputs whose ground truth is within the top k ranked grids."""
  if len(ranked_per_test) != len(truths):
    raise ValueError(f'{len(ranked_per_test)} ranked lists for {len(truths)} test outputs.')
  if not truths:
    raise ValueError('a task needs at least one test output to be scored.')
  return float(np.mean([is_correct(r, t, k) for r, t in zip(ranked_per_test, truths)]))


def accuracy(task_scores: Mapping[str, float]) -> float:
  """Mean of the task scores (the ARC benchmark number)."""
  if not task_scores:
    raise ValueError('no task scores.')
  return float(np.mean(list(task_scores.values())))


@dataclasses.dataclass
class TaskResult:
  task_id: str
  scores: dict[str, float]          # e.g. {'pass@1': 0.5, 'pass@2': 1.0}
  info: dict[str, Any] = dataclasses.field(default_factory=dict)
  error: str | None = None


def evaluate_tasks(task_ids: Sequence[str], run_task: Callable[[str], TaskResult],
                   metric_names: Sequence[str] = ('pass@1', 'pass@2')) -> list[TaskResult]:
  """Runs `run_task` on every id; a task that raises scores 0 and is recorded, the rest go on."""
  results = []
  for tid in task_ids:
    try:
      results.append(run_task(tid))
    except Exception as e:  # pylint: disable=broad-except  # one bad task must not stop the others.
      logging.error('task %s failed: %s\n%s', tid, e, traceback.format_exc())
      results.append(TaskResult(tid, {m: 0.0 for m in metric_names}, error=f'{type(e).__name__}: {e}'))
  return results


def summarize(results: Sequence[TaskResult]) -> dict[str, float]:
  """Mean of every score over tasks (failed tasks count as 0) and the number of failed tasks."""
  if not results:
    raise ValueError('no results.')
  names = sorted({m for r in results for m in r.scores})
  out = {m: float(np.mean([r.scores.get(m, 0.0) for r in results])) for m in names}
  out['num_tasks'] = float(len(results))
  out['num_failed'] = float(sum(r.error is not None for r in results))
  return out
