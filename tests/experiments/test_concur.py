"""experiments/concur on the synthetic toy outcome table (no language model): the whole routing analysis
end to end, and the tiny config with every ablation and both continual orders (slow)."""

import json

import numpy as np
import pytest

from experiments.concur import main
from experiments.concur.configs import default


def _check(res, cfg):
  strategies = res['strategies']
  assert len(strategies) == 6 and res['num_tasks']['test_ood'] == 2 * cfg.toy_tasks
  for part in ('test', 'test_ood'):
    b = res['baselines'][part]
    assert b['oracle']['accuracy'] >= b['best_single']['accuracy']
    assert b['oracle']['accuracy'] >= res['routers']['concur'][part]['chosen']['accuracy_mean']
    sweep = res['routers']['concur'][part]['sweep']
    assert [r['w'] for r in sweep] == list(cfg.ws)
    # w = 0 routes on cost alone: the cheapest strategy's cost (toy_c/direct everywhere)
    assert sweep[0]['cost_mean'] <= min(v['cost'] for v in res['per_strategy'][part].values()) * 1.2
    for g, l, budget in zip(res['routers']['concur'][part]['global'], res['routers']['concur'][part]['local'],
                            cfg.budget_fractions):
      assert g['budget'] == l['budget'] and 0 <= g['accuracy_mean'] <= 1
  # on the toy table the family decides the right model: the router must beat the best single strategy
  assert (res['routers']['concur']['test']['chosen']['accuracy_mean']
          > res['baselines']['test']['best_single']['accuracy'])
  rows = res['continual']['fixed']['rows']
  assert [r['num_strategies'] for r in rows] == list(range(1, 7))
  steps = [r['train_steps_cumulative_mean'] for r in rows]
  assert all(b > a for a, b in zip(steps, steps[1:]))


def test_toy_table_routing_end_to_end(tmp_path):
  cfg = default.get_config('tiny')
  with cfg.unlocked():
    cfg.ablations = ()
    cfg.continual_orders = ('fixed',)
  out = main.run(cfg, str(tmp_path))
  res = json.loads((tmp_path / 'results.json').read_text())
  _check(res, cfg)
  assert set(res['routers']) == {'concur'}
  assert out['results'] == 'results.json' and (tmp_path / 'pareto.png').exists()
  back = main.table_lib.from_csv(str(tmp_path / 'outcomes.csv'))  # the RouterBench-style export reads back
  assert back.strategies == res['strategies'] and back.correct.shape == (4 * cfg.toy_tasks, 6)


@pytest.mark.slow
def test_tiny_config_every_router_and_order(tmp_path):
  cfg = default.get_config('tiny')
  main.run(cfg, str(tmp_path))
  res = json.loads((tmp_path / 'results.json').read_text())
  _check(res, cfg)
  assert set(res['routers']) == {'concur', 'task_only', 'monolithic', 'knn'}
  assert set(res['continual']) == {'fixed', 'shuffled'}
  shuffled = res['continual']['shuffled']['order']
  assert sorted(shuffled) == sorted(res['strategies']) and shuffled != res['strategies']
  assert np.isfinite(res['continual']['shuffled']['rows'][-1]['mono_train_steps_cumulative'])
