"""Smoke tests of the experiments/psm app on its tiny configs (slow: several models compiled each), and its
config validation (fast)."""

import json
import os

import pytest

from experiments.psm import main as psm_main
from experiments.psm.configs import lm, mqar, s5
from jaxlab.train import runrecord


@pytest.mark.slow
def test_tiny_config_runs(tmp_path):
  cfg = s5.get_config('tiny')
  results = psm_main.run(cfg, str(tmp_path))
  assert [r['model'] for r in results] == list(cfg.models)
  assert all(len(r['accuracy_by_length']) == cfg.data.eval_len for r in results)
  assert os.path.exists(tmp_path / 'accuracy_vs_length.png')
  assert json.load(open(tmp_path / 'results.json'))['results'][0]['model'] == 'transformer'


@pytest.mark.slow
def test_tiny_curriculum_stream_resumes(tmp_path):
  cfg = s5.get_config('tiny')
  with cfg.unlocked():
    cfg.models, cfg.data.task, cfg.data.num_train, cfg.data.curriculum_steps = ('psm',), 's3', 0, 3
    cfg.train.checkpoint_every = 5
  first = psm_main.run(cfg, str(tmp_path))
  with cfg.unlocked():
    cfg.train.total_steps = 7
  second = psm_main.run(cfg, str(tmp_path))  # Resumes from the checkpoint at step 5.
  assert first[0]['steps'] == 5 and second[0]['steps'] == 7


@pytest.mark.slow
def test_tiny_mqar_runs(tmp_path):
  cfg = mqar.get_config('tiny')
  results = psm_main.run(cfg, str(tmp_path))
  names = ['transformer', 'gla'] + [f'psm_c{c}' for c in cfg.model.chunk_sizes]
  assert [r['model'] for r in results] == names
  for r in results:
    assert sorted(r['accuracy_by_pairs']) == sorted(str(p) for p in cfg.data.eval_num_pairs)
    assert all(0. <= a <= 1. for a in r['accuracy_by_pairs'].values())
    assert sum(r['query_count_by_position']['4']) == cfg.data.num_eval * 4
  assert os.path.exists(tmp_path / 'accuracy_vs_pairs.png')


@pytest.mark.slow
def test_tiny_lm_runs(tmp_path):
  cfg = lm.get_config('tiny')
  results = psm_main.run(cfg, str(tmp_path))
  assert [r['model'] for r in results] == ['transformer', 'psm', 'llama']
  for r in results:
    assert r['steps'] == cfg.train.total_steps and r['val_perplexity'] > 1.
  t, p, llama = results
  assert max(abs(x['params'] - t['params']) / t['params'] for x in (p, llama)) < 0.25  # "Same size".


def test_bad_configs_name_the_key(tmp_path):
  cfg = mqar.get_config('tiny')
  with cfg.unlocked():
    cfg.data.task = 'sorting'
  with pytest.raises(ValueError, match='config.data.task'):
    psm_main.run(cfg, str(tmp_path))
  cfg = mqar.get_config('tiny')
  with cfg.unlocked():
    cfg.model.chunk_sizes = (8, 0)
  with pytest.raises(ValueError, match='config.model.chunk_sizes'):
    psm_main.run(cfg, str(tmp_path))
  with pytest.raises(ValueError, match='Unknown config argument'):
    lm.get_config('huge')


def test_finished_run_of_another_chunk_size_is_an_error(tmp_path):
  """A single-c PSM run is named plain 'psm': a folder holding another c is an error, not a silent reuse."""
  cfg = s5.get_config('tiny')
  d = str(tmp_path / 'psm')
  calls = []
  compute = lambda: calls.append(1) or {'model': 'psm', 'chunk_size': 16, 'steps': 5}  # noqa: E731
  first = runrecord.reuse_or_run(d, psm_main.run_config(cfg, 'psm', 16), compute)
  again = runrecord.reuse_or_run(d, psm_main.run_config(cfg, 'psm', 16), compute)
  assert first == again and calls == [1]   # the finished run is reused, not recomputed
  with cfg.unlocked():
    cfg.models = ('transformer', 'psm')     # a sweep key: not part of one model's run
  runrecord.reuse_or_run(d, psm_main.run_config(cfg, 'psm', 16), compute)
  assert calls == [1]
  with pytest.raises(runrecord.ConfigMismatch, match=r'chunk_size 16 -> 32'):
    runrecord.reuse_or_run(d, psm_main.run_config(cfg, 'psm', 32), compute)
