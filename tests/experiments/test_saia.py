"""experiments/saia: the config checks (default suite) and (slow, ~3 min on the shared 2-core machine) the
tiny run end to end: backbone, wired + trained models with the reliance check, both agents, results."""

import importlib
import json
import os

import pytest

from experiments.saia.configs import default as cfg_mod


def test_configs_and_their_checks():
  main = importlib.import_module('experiments.saia.main')
  for arg in ('', 'tiny'):
    main.check_config(cfg_mod.get_config(arg))
  c = cfg_mod.get_config('tiny')
  c.agent.rounds = 0
  with pytest.raises(ValueError, match='config.agent.rounds=0'):
    main.check_config(c)
  c = cfg_mod.get_config('tiny')
  c.image_size = 30
  with pytest.raises(ValueError, match='config.image_size=30'):
    main.check_config(c)
  with pytest.raises(ValueError, match="unknown config variant 'big'"):
    cfg_mod.get_config('big')


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
  main = importlib.import_module('experiments.saia.main')
  out = main.run(cfg_mod.get_config('tiny'), str(tmp_path))
  saved = json.load(open(os.path.join(tmp_path, 'results.json')))
  manifest = json.load(open(os.path.join(tmp_path, 'manifest.json')))['models']
  assert len(manifest) == 4 and all('reliance' in m for m in manifest)
  assert out['num_models']['wired'] == 2 and len(saved['per_model']) == 2 + out['num_models']['trained']
  for kind in ('wired', 'trained'):
    s = saved['summary'][kind]
    if s['num_models']:
      assert len(s['reflective']['exact_accuracy']) == 2 and 'one_round' in s
  assert os.path.exists(os.path.join(tmp_path, 'grid.png')) and os.path.exists(os.path.join(tmp_path, 'rounds.png'))
