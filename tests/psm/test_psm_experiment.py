"""Smoke test of the experiments/psm app on its tiny config (slow: three compiles of three models)."""

import json
import os

import pytest

from experiments.psm import main as psm_main
from experiments.psm.configs import s5


@pytest.mark.slow
def test_tiny_config_runs(tmp_path):
  cfg = s5.get_config('tiny')
  results = psm_main.run(cfg, str(tmp_path))
  assert [r['model'] for r in results] == list(cfg.models)
  assert all(len(r['accuracy_by_length']) == cfg.data.eval_len for r in results)
  assert os.path.exists(tmp_path / 'accuracy_vs_length.png')
  assert json.load(open(tmp_path / 'results.json'))['results'][0]['model'] == 'transformer'
