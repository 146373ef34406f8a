"""Entry test of experiments/gd_prompting: the tiny config runs end to end (pretrain, eta choice, meta-train,
every row) in-process and writes results.json with one accuracy per row and query kind."""

import json

import pytest

from experiments.gd_prompting import main
from experiments.gd_prompting.configs import default


@pytest.mark.slow  # ~55 s on the loaded 2-core CPU (compiles a second-order meta-step)
def test_tiny_config_runs(tmp_path):
  out = main.run(default.get_config('tiny'), str(tmp_path))
  res = json.loads((tmp_path / 'results.json').read_text())
  assert res['eta'] in default.get_config('tiny').etas
  for kind in ('describe', 'recall'):
    rows = res['rows'][kind]
    assert set(rows) == {'no_context', 'prompted', 'one_step_no_meta', 'meta lc/second_order',
                         'meta lc/second_order, no context', 'meta lc/second_order, irrelevant context'}
    assert all(0. <= v <= 1. for v in rows.values())
  assert res['meta_training']['lc/second_order']['seconds_per_step'] > 0
  assert out['rows'] == res['rows']


def test_arms_parse_and_reject_mistakes():
  assert main.parse_arm('lc/first_order/rank1/4') == {'objective': 'lc', 'mode': 'first_order',
                                                     'subset': 'rank1', 'steps': 4}
  assert main.parse_arm('lg/hvp')['subset'] == 'all'
  for bad in ('lc', 'kl/second_order', 'lc/second_order/half'):
    with pytest.raises(ValueError):
      main.parse_arm(bad)
