"""The continual protocol: adding a strategy trains only its own predictors (the others' bytes unchanged);
the stacked predictors (one trainer run) learn a separable toy signal; the continual rows and the
monolithic baseline come out with their training costs."""

import numpy as np
import pytest

from jaxlab.routing import continual, predictors


def _info(name, mid, did, dim=8):
  rng = np.random.default_rng(mid * 10 + did)
  return predictors.StrategyInfo(name, mid, did, rng.normal(size=dim).astype(np.float32),
                                 rng.normal(size=dim).astype(np.float32))


@pytest.fixture(scope='module')
def toy():
  rng = np.random.default_rng(0)
  e = rng.normal(size=(128, 8)).astype(np.float32)
  correct = np.stack([(e[:, 0] > 0), (e[:, 1] > 0), (e[:, 0] + e[:, 1] > 0)], 1).astype(np.float32)
  cost = np.stack([np.full(128, 1.), np.full(128, 3.), 2. + e[:, 2] ** 2], 1)
  split = {'train': (e[:64], correct[:64], cost[:64]), 'val': (e[64:96], correct[64:96], cost[64:96]),
           'test': (e[96:], correct[96:], cost[96:])}
  infos = [_info('m0/direct', 0, 0), _info('m0/cot', 0, 1), _info('m1/direct', 1, 0)]
  return split, infos


def test_adding_a_strategy_leaves_the_other_predictors_bit_unchanged(toy, tmp_path):
  split, infos = toy
  (et, yt, ct), (ev, yv, cv) = split['train'], split['val']
  router = continual.ConcurRouter(cost_scale=2., seed=0, fit_kwargs=dict(max_epochs=6, patience=2))
  router.add_strategies(infos[:2], et, yt[:, :2], ct[:, :2], ev, yv[:, :2], cv[:, :2], str(tmp_path / 'a'))
  before = [predictors.param_bytes(f.params) for f in router.acc + router.cost]
  p_before, c_before = router.predict(ev)
  router.add_strategies(infos[2:], et, yt[:, 2:], ct[:, 2:], ev, yv[:, 2:], cv[:, 2:], str(tmp_path / 'b'))
  after = [predictors.param_bytes(f.params) for f in router.acc[:2] + router.cost[:2]]
  assert after == before
  p_after, c_after = router.predict(ev)
  np.testing.assert_array_equal(p_after[:, :2], p_before)
  np.testing.assert_array_equal(c_after[:, :2], c_before)
  assert p_after.shape == (32, 3) and router.strategies == [i.name for i in infos]
  assert all(0 < f.steps <= 2 * 6 for f in router.acc + router.cost)  # 2 steps per epoch, 6 epochs at most
  with pytest.raises(ValueError, match='already in the router'):
    router.add_strategies(infos[:1], et, yt[:, :1], ct[:, :1], ev, yv[:, :1], cv[:, :1], str(tmp_path / 'c'))


@pytest.mark.slow
def test_predictors_learn_and_continual_rows_count_training(toy, tmp_path):
  split, infos = toy
  (et, yt, ct), (ev, yv, cv) = split['train'], split['val']
  router = continual.ConcurRouter(cost_scale=2., seed=0, fit_kwargs=dict(max_epochs=30, patience=3))
  router.add_strategies(infos, et, yt, ct, ev, yv, cv, str(tmp_path / 'a'))
  p, c = router.predict(ev)
  # the predictors learned: strategy 0's accuracy predictor beats the majority class on validation
  acc0 = np.mean((p[:, 0] > 0.5) == yv[:, 0])
  assert acc0 > max(yv[:, 0].mean(), 1 - yv[:, 0].mean())
  assert abs(c[:, 1].mean() - 3.) < 1.  # a constant-cost strategy is predicted near its cost
  assert all(0 < f.steps <= 2 * 30 for f in router.acc + router.cost)
  # the continual rows: CONCUR's cumulative steps grow by the new pair only; the monolithic one retrains
  rows = continual.continual_rows([2, 0, 1], router, split, str(tmp_path / 'cont'), cost_scale=2., seeds=[0],
                                  ws=(0., 0.5, 1.), fit_kwargs=dict(max_epochs=6, patience=2))
  assert [r['arrived'] for r in rows] == ['m1/direct', 'm0/direct', 'm0/cot']
  for prev, row in zip(rows, rows[1:]):
    assert row['train_steps_cumulative'] == prev['train_steps_cumulative'] + row['train_steps_this_arrival']
    assert row['mono_train_steps_cumulative'] > prev['mono_train_steps_cumulative']
  assert all(0. <= r['accuracy'] <= 1. and 0. <= r['mono_accuracy'] <= 1. for r in rows)
