"""VARC training data: (pseudo-)tasks of ARC demonstration pairs drawn on augmented canvases.

A `TaskSet` is a list of (pseudo-)tasks, each a list of (input, output) pairs already in the
pseudo-task's frame (geometric transform and colour map applied); the (pseudo-)task index is the row
of the model's task-token table. Examples draw a random (task, pair) and a random scale/translation
(`augment=True`) or scale 1 at offset (0, 0).

* Offline: `offline_dataset` is a checkpointable grain pipeline (shuffle, repeat, random_map, batch)
  over every demonstration pair of the ARC-1 training tasks; the trainer restores its position.
* TTT: `ttt_batches` is a plain seeded numpy sampler over the pseudo-tasks of one evaluation task
  (each task's TTT is short and independent, so no resumption is needed).
"""

from __future__ import annotations

import dataclasses

import grain
import numpy as np

from jaxlab.data import arc as arc_lib
from jaxlab.data import arc_canvas as cv


@dataclasses.dataclass
class TaskSet:
  """Pseudo-tasks: pairs[j] are the (input, output) grids of pseudo-task j; views[j] built them."""
  pairs: list[list[tuple[np.ndarray, np.ndarray]]]
  views: list[cv.View]
  side: int        # largest grid side over all pairs (plans the scale range)


def pseudo_tasks(task: arc_lib.ArcTask, num: int, seed: int) -> TaskSet:
  """The first `num` TTT pseudo-tasks of `task` (see `cv.pseudo_task_views`) from its demo pairs."""
  views = cv.pseudo_task_views(num, seed)
  pairs = [[(v.apply(x), v.apply(y)) for x, y in task.train] for v in views]
  return TaskSet(pairs, views, task.max_side)


def offline_taskset(tasks: dict[str, arc_lib.ArcTask], views_per_task: int, seed: int) -> TaskSet:
  """Offline training set: each task × `views_per_task` variants, each variant its own task token."""
  pairs, views, side = [], [], 1
  for i, task in enumerate(tasks.values()):
    ts = pseudo_tasks(task, views_per_task, seed + i)
    pairs += ts.pairs
    views += ts.views
    side = max(side, ts.side)
  return TaskSet(pairs, views, side)


def example(ts: TaskSet, j: int, k: int, canvas: int, patch: int, rng: np.random.Generator,
            augment: bool) -> dict[str, np.ndarray]:
  """Pair k of pseudo-task j on a canvas with a random (or no) scale/translation."""
  x, y = ts.pairs[j][k]
  side = max(max(x.shape), max(y.shape))
  scale, offset = cv.sample_placement([x.shape, y.shape], canvas, rng, augment, side=side)
  return cv.make_example(x, y, scale, offset, canvas, patch, task_id=j)


def offline_dataset(ts: TaskSet, canvas: int, patch: int, batch_size: int, seed: int,
                    augment: bool = True) -> grain.DatasetIterator:
  """Checkpointable grain iterator of batches over every (task, pair), shuffled, repeated forever."""
  for j, pairs in enumerate(ts.pairs):
    for k, (x, y) in enumerate(pairs):
      side = max(max(x.shape), max(y.shape))
      cv.check_fits(side, canvas)
  index = [(j, k) for j, pairs in enumerate(ts.pairs) for k in range(len(pairs))]
  ds = grain.MapDataset.source(index).seed(seed).shuffle().repeat(None)
  ds = ds.random_map(lambda jk, rng: example(ts, jk[0], jk[1], canvas, patch, rng, augment))
  return iter(ds.batch(batch_size, drop_remainder=True))


def ttt_batches(ts: TaskSet, canvas: int, patch: int, batch_size: int, seed: int, augment: bool = True):
  """Endless seeded numpy batches of random (pseudo-task, demo pair) examples."""
  rng = np.random.default_rng(seed)
  while True:
    exs = []
    for _ in range(batch_size):
      j = int(rng.integers(len(ts.pairs)))
      k = int(rng.integers(len(ts.pairs[j])))
      exs.append(example(ts, j, k, canvas, patch, rng, augment))
    yield {key: np.stack([e[key] for e in exs]) for key in exs[0]}
