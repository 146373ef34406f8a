"""Entry test of experiments/attn_programs: the tiny config runs end to end on real SmolLM2-135M, with
every offline-proposed program evaluated in jaxlab.sandbox (slow: ~2 min on the 2-core CPU)."""

import json
import os
import subprocess
import sys

import pytest

from jaxlab.interp import proposer, registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_tiny_config_runs_with_sandboxed_proposals(tmp_path):
  cmd = [sys.executable, '-m', 'experiments.attn_programs.main',
         '--config=experiments/attn_programs/configs/smollm2.py:tiny', f'--workdir={tmp_path}']
  r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False)
  assert r.returncode == 0, r.stderr[-3000:]
  res = json.loads((tmp_path / 'results.json').read_text())
  n_lib, n_prop = len(registry.load_folder()), len(proposer.OfflineProposer().sources())
  assert res['library_programs'] == n_lib and res['programs'] == n_lib + n_prop
  assert res['rejected_proposals'] == 0 and res['heads'] == 270
  assert 0 < res['mean_best_iou_heldout'] <= 1
  assert (tmp_path / 'heads.csv').exists() and (tmp_path / 'grid.png').exists()
