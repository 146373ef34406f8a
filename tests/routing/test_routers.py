"""Routers: the knapsack DP against brute force, the local fallback, the unconstrained trade-off; metrics;
the RouterBench-style CSV round trip; kNN."""

import numpy as np
import pytest

from jaxlab.routing import baselines, metrics, routers
from jaxlab.routing.table import OutcomeTable, from_csv, to_csv


@pytest.mark.parametrize('seed', range(12))
def test_global_knapsack_matches_brute_force(seed):
  rng = np.random.default_rng(seed)
  n, s = int(rng.integers(2, 6)), int(rng.integers(2, 4))
  p = rng.uniform(size=(n, s))
  c = rng.integers(1, 10, size=(n, s)).astype(float)  # integer costs
  total = int(rng.integers(int(c.min(1).sum()), int(c.max(1).sum()) + 1))
  budget = total / n
  want, _ = routers.brute_force_knapsack(p, c, budget)
  # resolution = total: one unit per cost unit, so the DP is exact on integer costs.
  x = routers.global_knapsack(p, c, budget, resolution=total)
  rows = np.arange(n)
  assert c[rows, x].sum() <= total + 1e-9
  np.testing.assert_allclose(p[rows, x].sum(), want, rtol=1e-12)


def test_global_knapsack_real_costs_stays_feasible():
  rng = np.random.default_rng(0)
  p, c = rng.uniform(size=(40, 5)), rng.uniform(0.1, 3., size=(40, 5))
  for budget in (0.2, 0.5, 1., 2.):
    x = routers.global_knapsack(p, c, budget, resolution=500)
    assert c[np.arange(40), x].sum() <= budget * 40 + 1e-9 or (x == c.argmin(1)).all()
  # a budget below the cheapest choice: every task gets its cheapest strategy
  np.testing.assert_array_equal(routers.global_knapsack(p, c, 0.01), c.argmin(1))
  # a huge budget: the most accurate everywhere
  np.testing.assert_array_equal(routers.global_knapsack(p, c, 100.), p.argmax(1))


def test_local_budget_falls_back_to_the_cheapest_not_strategy_zero():
  p = np.array([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])
  c = np.array([[5., 2., 1.], [9., 8., 7.]])
  x = routers.local_budget(p, c, budget=2.5)
  assert x[0] == 1          # the most accurate that fits
  assert x[1] == 2          # nothing fits: the cheapest (the official code returned 0 here)


def test_unconstrained_endpoints():
  p = np.array([[0.2, 0.8, 0.5]])
  c = np.array([[0.1, 0.9, 0.3]])
  assert routers.unconstrained(p, c, 1.)[0] == 1
  assert routers.unconstrained(p, c, 0.)[0] == 0
  with pytest.raises(ValueError, match='w must be'):
    routers.unconstrained(p, c, 1.5)
  with pytest.raises(ValueError, match=r'\[tasks, strategies\]'):
    routers.unconstrained(p[0], c[0], 0.5)


def test_metrics_oracle_pareto_gap():
  correct = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 0]], float)
  cost = np.array([[3., 1., 2.], [1., 1., 5.], [4., 2., 3.]])
  oc = metrics.oracle_choice(correct, cost)
  np.testing.assert_array_equal(oc, [2, 2, 1])
  m = metrics.evaluate(oc, correct, cost)
  assert m['accuracy'] == pytest.approx(2 / 3) and m['cost'] == pytest.approx(3.)
  pts = [(1., 0.5), (2., 0.5), (2., 0.7), (3., 0.6), (0.5, 0.1)]
  assert metrics.pareto_front(pts) == [4, 0, 2]
  assert metrics.gap_closed(0.6, 0.5, 0.7) == pytest.approx(0.5)
  assert np.isnan(metrics.gap_closed(0.6, 0.5, 0.5))
  assert metrics.accuracy_at_cost(pts, 2.) == 0.7


def test_csv_round_trip_and_bad_input(tmp_path):
  t = OutcomeTable(['a/0', 'b/1'], ['a', 'b'], ['What is 2+2, "really"?', 'line\nbreak'], ['m/direct', 'm/cot'],
                   np.array([[1, 0], [0, 1]], np.float32), np.array([[1e9, 2.5e10], [1.5e9, 3e10]]),
                   np.array([[0.1, 1.2], [0.2, 1.3]]))
  path = str(tmp_path / 'outcomes.csv')
  text = to_csv(t, path)
  assert text.splitlines()[0].startswith('sample_id,prompt,eval_name,m/direct,m/direct|total_cost')
  back = from_csv(path)
  assert back.strategies == t.strategies and back.prompts == t.prompts and back.families == t.families
  np.testing.assert_array_equal(back.correct, t.correct)
  np.testing.assert_array_equal(back.flops, t.flops)
  np.testing.assert_allclose(back.seconds, t.seconds, rtol=1e-5)
  with pytest.raises(ValueError, match='no strategy columns'):
    from_csv('sample_id,prompt\nx,y\n')
  with pytest.raises(ValueError, match='expected'):
    OutcomeTable(['a'], ['a'], ['p'], ['s'], np.zeros((2, 1)), np.zeros((1, 1)), np.zeros((1, 1)))


def test_knn_and_best_single():
  e_train = np.array([[1., 0.], [0.9, 0.1], [0., 1.], [0.1, 0.9]])
  correct = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], float)
  cost = np.ones((4, 2))
  p, _ = baselines.knn_predict(e_train, correct, cost, np.array([[1., 0.05], [0.05, 1.]]), k=2)
  np.testing.assert_allclose(p, [[1, 0], [0, 1]])
  k = baselines.tune_knn(e_train, correct, cost, e_train, correct)
  assert k == 1  # the nearest neighbour is the task itself: perfect on this validation set
  assert baselines.best_single(correct, np.array([[1., 5.]] * 4)) == 0  # tie 0.5/0.5: the cheaper
  assert baselines.best_single(correct, np.array([[9., 5.]] * 4), budget=6.) == 1
