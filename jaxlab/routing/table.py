"""The outcome table: tasks × strategies, with correctness and cost; RouterBench-style CSV export/import.

`OutcomeTable` holds one row per task (id, family, prompt) and per strategy its correctness (0/1), model
FLOPs and wall seconds. `to_csv` / `from_csv` write and read the wide layout RouterBench users know
(withmartian/routerbench: one row per prompt with `sample_id`, `prompt`, `eval_name`, a column per model
holding its score, `<model>|total_cost` its cost; plus `<strategy>|seconds` and
`oracle_model_to_route_to`); RouteLLM's routers read the same per-prompt correctness columns. Costs in
the CSV are FLOPs.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os

import numpy as np


@dataclasses.dataclass
class OutcomeTable:
  """Outcomes of every strategy on every task.

  Attributes:
    task_ids, families, prompts: [num_tasks] lists.
    strategies: [num_strategies] names ('model/method').
    correct: [num_tasks, num_strategies] float 0/1.
    flops: [num_tasks, num_strategies] model FLOPs.
    seconds: [num_tasks, num_strategies] wall seconds.
  """
  task_ids: list[str]
  families: list[str]
  prompts: list[str]
  strategies: list[str]
  correct: np.ndarray
  flops: np.ndarray
  seconds: np.ndarray

  def __post_init__(self):
    n, s = len(self.task_ids), len(self.strategies)
    for name in ('correct', 'flops', 'seconds'):
      a = np.asarray(getattr(self, name))
      if a.shape != (n, s):
        raise ValueError(f'OutcomeTable.{name} has shape {a.shape}, expected [tasks, strategies]=({n}, {s})')
      setattr(self, name, a)
    if len(self.families) != n or len(self.prompts) != n:
      raise ValueError(f'OutcomeTable: families ({len(self.families)}) and prompts ({len(self.prompts)}) must '
                       f'have one entry per task ({n})')
    if len(set(self.strategies)) != s:
      raise ValueError(f'OutcomeTable: duplicate strategy names in {self.strategies}')

  def rows(self, mask: np.ndarray) -> 'OutcomeTable':
    """The sub-table of the tasks where `mask` [num_tasks] bool (or the given indices)."""
    idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
    return OutcomeTable([self.task_ids[i] for i in idx], [self.families[i] for i in idx],
                        [self.prompts[i] for i in idx], list(self.strategies), self.correct[idx],
                        self.flops[idx], self.seconds[idx])

  def columns(self, names: list[str]) -> 'OutcomeTable':
    idx = [self.strategies.index(n) for n in names]
    return OutcomeTable(list(self.task_ids), list(self.families), list(self.prompts), list(names),
                        self.correct[:, idx], self.flops[:, idx], self.seconds[:, idx])

  def summary(self) -> dict[str, dict[str, float]]:
    """Per strategy: mean accuracy, mean FLOPs and mean seconds."""
    return {s: {'accuracy': float(self.correct[:, j].mean()), 'flops': float(self.flops[:, j].mean()),
                'seconds': float(self.seconds[:, j].mean())} for j, s in enumerate(self.strategies)}


def to_csv(table: OutcomeTable, path: str | None = None) -> str:
  """The RouterBench-style wide CSV text (written to `path` when given)."""
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator='\n')
  header = ['sample_id', 'prompt', 'eval_name']
  for s in table.strategies:
    header += [s, f'{s}|total_cost', f'{s}|seconds']
  w.writerow(header + ['oracle_model_to_route_to'])
  for i, tid in enumerate(table.task_ids):
    row = [tid, table.prompts[i], table.families[i]]
    for j in range(len(table.strategies)):
      row += [f'{table.correct[i, j]:g}', repr(float(table.flops[i, j])), f'{table.seconds[i, j]:.6g}']
    right = np.flatnonzero(table.correct[i] > 0)
    oracle = table.strategies[int(right[np.argmin(table.flops[i, right])])] if len(right) else ''
    w.writerow(row + [oracle])
  text = buf.getvalue()
  if path is not None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
      f.write(text)
  return text


def from_csv(path_or_text: str) -> OutcomeTable:
  """Reads a RouterBench-style wide CSV: strategy columns are those with a matching '|total_cost' column
  (a missing '|seconds' column reads as 0)."""
  text = path_or_text
  if '\n' not in path_or_text and os.path.exists(path_or_text):
    with open(path_or_text, encoding='utf-8') as f:
      text = f.read()
  reader = csv.DictReader(io.StringIO(text))
  fields = reader.fieldnames or []
  for need in ('sample_id', 'prompt'):
    if need not in fields:
      raise ValueError(f'outcome CSV lacks the {need!r} column (has {fields[:6]}...)')
  strategies = [f for f in fields if f'{f}|total_cost' in fields]
  if not strategies:
    raise ValueError('outcome CSV has no strategy columns (a column NAME needs a NAME|total_cost column)')
  ids, fams, prompts, correct, flops, secs = [], [], [], [], [], []
  for n, row in enumerate(reader):
    try:
      correct.append([float(row[s]) for s in strategies])
      flops.append([float(row[f'{s}|total_cost']) for s in strategies])
      secs.append([float(row.get(f'{s}|seconds') or 0.) for s in strategies])
    except (TypeError, ValueError) as e:
      raise ValueError(f'outcome CSV row {n + 2}: a score or cost is not a number ({e})') from e
    ids.append(row['sample_id'])
    fams.append(row.get('eval_name', ''))
    prompts.append(row['prompt'])
  return OutcomeTable(ids, fams, prompts, strategies, np.array(correct, np.float32).reshape(len(ids), -1),
                      np.array(flops, np.float64).reshape(len(ids), -1),
                      np.array(secs, np.float64).reshape(len(ids), -1))
