"""Entry tests of experiments/gd_prompting: the tiny config runs end to end (pretrain and meta-training through
the one trainer, eta choice, every row) and writes results.json; a rerun with another arm resumes (the
pretraining and the finished arm are restored, not retrained); meta-training resumed mid-way equals the
uninterrupted run."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest

from experiments.gd_prompting import main
from experiments.gd_prompting.configs import default


def _metric_lines(path):
  with open(path) as f:
    return f.read()


@pytest.mark.slow  # ~60 s (two tiny runs; compiles second-order and HVP meta-steps) on the loaded 2-core CPU
def test_tiny_config_runs_and_a_new_arm_resumes(tmp_path):
  config = default.get_config('tiny')
  out = main.run(config, str(tmp_path))
  res = json.loads((tmp_path / 'results.json').read_text())
  assert res['eta'] in config.etas
  arm = 'lc/second_order'
  for kind in ('describe', 'recall'):
    rows = res['rows'][kind]
    assert set(rows) == {'no_context', 'prompted', 'one_step_no_meta', 'one_step_no_meta, then 3 other contexts',
                         f'meta {arm}', f'meta {arm}, no context', f'meta {arm}, irrelevant context',
                         f'meta {arm}, then 3 other contexts'}
    assert all(0. <= v <= 1. for v in rows.values())
  assert res['meta_training'][arm]['seconds_per_step'] > 0
  assert out['rows'] == res['rows']
  pre = _metric_lines(tmp_path / 'pretrain' / 'metrics.jsonl')
  arm_lines = _metric_lines(tmp_path / 'meta' / 'lc_second_order' / 'metrics.jsonl')

  more = ml_collections.ConfigDict(config.to_dict())
  more.arms = (arm, 'lc/hvp')  # a continuable key: the same workdir resumes
  out2 = main.run(more, str(tmp_path))
  assert _metric_lines(tmp_path / 'pretrain' / 'metrics.jsonl') == pre  # restored, not retrained
  assert _metric_lines(tmp_path / 'meta' / 'lc_second_order' / 'metrics.jsonl') == arm_lines
  assert os.path.exists(tmp_path / 'meta' / 'lc_hvp' / 'checkpoints')
  for kind in ('describe', 'recall'):
    for key, value in res['rows'][kind].items():
      assert out2['rows'][kind][key] == value, (kind, key)
    assert 'meta lc/hvp' in out2['rows'][kind]


@pytest.mark.slow  # ~30 s: three short first-order meta-trainings of the tiny model
def test_meta_training_resumed_midway_equals_uninterrupted(tmp_path):
  config = default.get_config('tiny')
  vocab, model = main.build(config)
  base, _ = main.pretrain(config, vocab, model, str(tmp_path / 'pre'))
  arm = main.parse_arm('lc/first_order')
  mm = main.arm_model(model, arm, 0.1)

  def meta_params(workdir, steps):
    c = ml_collections.ConfigDict(config.to_dict())
    c.meta.total_steps, c.meta.checkpoint_every = steps, 2
    return main.meta_train(c, mm, base, vocab, arm, workdir, 'test base')[0]

  straight = meta_params(str(tmp_path / 'straight'), 4)
  meta_params(str(tmp_path / 'resumed'), 2)
  resumed = meta_params(str(tmp_path / 'resumed'), 4)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_arms_parse_and_reject_mistakes():
  assert main.parse_arm('lc/first_order/rank1/4') == {'objective': 'lc', 'mode': 'first_order',
                                                     'subset': 'rank1', 'steps': 4}
  assert main.parse_arm('lg/hvp')['subset'] == 'all'
  for bad in ('lc', 'kl/second_order', 'lc/second_order/half', 'lc/hvp/all/x'):
    with pytest.raises(ValueError):
      main.parse_arm(bad)


def test_summarize_mean_and_spread(tmp_path):
  from experiments.gd_prompting import summarize  # pylint: disable=import-outside-toplevel
  paths = []
  for seed, v in ((0, 0.2), (1, 0.6)):
    p = tmp_path / f's{seed}.json'
    p.write_text(json.dumps({'seed': seed, 'rows': {'describe': {'a': v, 'only_here': 1.0}, 'recall': {'a': 1.0}}}))
    paths.append(str(p))
  table = summarize.summarize(paths)
  assert '| a | 0.400 ± 0.200 | 1.000 ± 0.000 |' in table
  assert 'only_here' not in table
