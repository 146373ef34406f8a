"""Entry tests of experiments/student_traces: the tiny config runs end to end and writes results.json and the
samples in the paper code's JSON layout; bad config values fail with one line before anything is written."""

import json

import ml_collections
import pytest

from experiments.student_traces import main
from experiments.student_traces.configs import default


def _check(res, variants):
  assert res['simulator']['traces'] == res['train_traces'] + res['heldout_traces']
  for v in variants:
    g = res['generation'][v]
    assert 0 <= g['executes'] <= 1 and 0 <= g['solved'] <= 1
    assert res['training'][v]['tokens'] <= res['training']['last']['tokens'] if 'last' in variants else True
    assert set(res['recovery'][v]) == {'success', 'style_distance_to_own_final', 'failing_state_distance_to_own_final'}
  assert res['probes']['trait/skill']['metric'] == 'r2'


def test_tiny_last_only_runs_end_to_end(tmp_path):
  config = ml_collections.ConfigDict(default.get_config('tiny').to_dict())
  config.variants = ('last',)
  main.run(config, str(tmp_path))
  res = json.loads((tmp_path / 'results.json').read_text())
  _check(res, ('last',))
  rows = json.loads((tmp_path / 'last' / 'samples.json').read_text())
  assert len(rows) == res['heldout_traces'] and all(len(r) == 3 for r in rows)
  assert rows[0][1].startswith('student_') and rows[0][0].endswith('<|endoftext|>')


@pytest.mark.slow  # ~3 min on the loaded 2-core CPU: three tiny models, then a rerun that does nothing
def test_tiny_three_variants_and_rerun_keeps_results(tmp_path):
  config = default.get_config('tiny')
  main.run(config, str(tmp_path))
  text = (tmp_path / 'results.json').read_text()
  _check(json.loads(text), tuple(config.variants))
  main.run(config, str(tmp_path))
  assert (tmp_path / 'results.json').read_text() == text
