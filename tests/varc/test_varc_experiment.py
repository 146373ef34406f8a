"""The VARC experiment pieces: grain pipeline resumes, TTT+voting runs end to end, bad tasks are isolated."""

import jax
import ml_collections
import numpy as np
import pytest

from jaxlab.data import arc as arc_lib
from jaxlab.data import arc_canvas as cv
from jaxlab.evals import arc as arc_eval
from jaxlab.nn.vision import vit

from experiments.varc import data as data_lib
from experiments.varc import ttt as ttt_lib


def _task(tid='t0', n=3, seed=0):
  rng = np.random.default_rng(seed)
  train = []
  for _ in range(n):
    x = rng.integers(0, 3, size=(3, 3)).astype(np.uint8)
    train.append((x, np.fliplr(x).copy()))
  x = rng.integers(0, 3, size=(3, 3)).astype(np.uint8)
  return arc_lib.ArcTask(tid, tuple(train), ((x, np.fliplr(x).copy()),))


def test_pseudo_tasks_are_consistent_views():
  task = _task()
  ts = data_lib.pseudo_tasks(task, 7, seed=0)
  assert len(ts.pairs) == 7 and ts.views[0] == cv.View(0, tuple(range(12)))
  for v, pairs in zip(ts.views, ts.pairs):
    for (x, y), (x0, y0) in zip(pairs, task.train):
      np.testing.assert_array_equal(v.invert(x), x0)
      np.testing.assert_array_equal(v.invert(y), y0)


def test_offline_pipeline_resumes_exactly():
  ts = data_lib.offline_taskset({'a': _task('a'), 'b': _task('b', seed=1)}, views_per_task=2, seed=0)
  it = data_lib.offline_dataset(ts, canvas=16, patch=2, batch_size=4, seed=3)
  next(it)
  state = it.get_state()
  want = [next(it) for _ in range(3)]
  it2 = data_lib.offline_dataset(ts, canvas=16, patch=2, batch_size=4, seed=3)
  it2.set_state(state)
  got = [next(it2) for _ in range(3)]
  for w, g in zip(want, got):
    for k in w:
      np.testing.assert_array_equal(w[k], g[k])
  assert want[0]['inputs'].shape == (4, 16, 16) and want[0]['key_mask'].shape == (4, 64)
  assert set(np.unique(want[0]['task_id'])) <= {0, 1, 2, 3}


@pytest.mark.slow  # ~40 s on the shared 2-core CPU (compiles TTT step and predictor).
def test_ttt_and_voting_end_to_end_with_a_failing_task():
  cfg = ml_collections.ConfigDict(dict(num_pseudo_tasks=3, steps=3, batch_size=4, learning_rate=1e-3,
                                       warmup_steps=1, grad_clip_norm=1.0, augment=True, view_tasks=3, draws=2))
  runner = ttt_lib.TTTRunner(vit.vit_config('tiny', canvas=12, num_tasks=3), cfg)
  init = runner.init_params(jax.random.PRNGKey(0))
  big = np.zeros((20, 20), np.uint8)
  tasks = {'ok': _task('ok'), 'big': arc_lib.ArcTask('big', ((big, big),), ((big, big),)), 'ok2': _task('ok2', seed=5)}
  results = arc_eval.evaluate_tasks(list(tasks), lambda tid: runner.run(tasks[tid], init, seed=0))
  assert [r.task_id for r in results] == ['ok', 'big', 'ok2']
  assert results[1].error is not None and 'does not fit' in results[1].error
  for r in (results[0], results[2]):
    assert r.error is None and set(r.scores) >= {'pass@1', 'pass@2', 'single_pass@1'}
    assert 0.0 <= r.scores['pass@1'] <= r.scores['pass@2'] <= 1.0
  batch, meta = runner.views(data_lib.pseudo_tasks(tasks['ok'], 3, 0), tasks['ok'].test[0][0], seed=0)
  assert batch['inputs'].shape == (6, 12, 12) and len(meta) == 6
