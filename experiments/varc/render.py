"""PNG renderings of an ARC task: demonstration pairs, then per test input the prediction and the truth."""

from __future__ import annotations

import matplotlib

matplotlib.use('Agg')
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from jaxlab.data import arc as arc_lib  # noqa: E402
from jaxlab.evals import arc as arc_eval  # noqa: E402

# The usual ARC palette for colours 0-9.
PALETTE = ['#000000', '#0074D9', '#FF4136', '#2ECC40', '#FFDC00', '#AAAAAA', '#F012BE', '#FF851B',
           '#7FDBFF', '#870C25']
_CMAP = mcolors.ListedColormap(PALETTE)


def _show(ax, grid, title):
  ax.set_title(title, fontsize=7)
  ax.set_xticks([])
  ax.set_yticks([])
  if grid is None:
    ax.text(0.5, 0.5, 'none', ha='center', va='center')
    return
  ax.imshow(np.asarray(grid), cmap=_CMAP, vmin=0, vmax=9, interpolation='nearest')


def render_task(task: arc_lib.ArcTask, result: arc_eval.TaskResult, path: str) -> None:
  """Top rows: demo input/output pairs; bottom rows: test input, top-2 voted predictions, truth."""
  n_demo, n_test = len(task.train), len(task.test)
  cols = max(n_demo, 4)
  fig, axes = plt.subplots(2 + n_test, cols, figsize=(1.6 * cols, 1.6 * (2 + n_test)), squeeze=False)
  for ax in axes.ravel():
    ax.axis('off')
  for i, (x, y) in enumerate(task.train):
    axes[0, i].axis('on')
    axes[1, i].axis('on')
    _show(axes[0, i], x, f'demo {i} in')
    _show(axes[1, i], y, f'demo {i} out')
  for t, (x, y) in enumerate(task.test):
    top = result.info.get('top', [[]] * n_test)[t]
    row = [(x, f'test {t} in'), (top[0] if top else None, 'pred #1'),
           (top[1] if len(top) > 1 else None, 'pred #2'), (y, 'truth')]
    for j, (g, title) in enumerate(row):
      axes[2 + t, j].axis('on')
      _show(axes[2 + t, j], g, title)
  fig.suptitle(f'{task.task_id}  pass@2={result.scores.get("pass@2", 0):.2f}', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)
