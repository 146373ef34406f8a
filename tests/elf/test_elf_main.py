"""Entry tests of experiments/elf: the tiny config trains, samples and checkpoints, resumes, the tiny MDLM run and
the sampling sweep (all slow); bad configs fail before any training with an error naming the key."""

import json
import os

import pytest

from experiments.elf import main as elf_main
from experiments.elf import sweep
from experiments.elf.configs import default, sweep as sweep_configs

WORDS = ('the king and the queen of the north rode to the sea while the old man sang of war and love '
         'in the hall of the castle , and every lord and lady listened till the fire went out . ')


def tiny(tmp_path, variant='tiny'):
  corpus = tmp_path / 'corpus.txt'
  if not corpus.exists():
    corpus.write_text('\n'.join(WORDS for _ in range(40)))
  cfg = default.get_config(variant)
  cfg.data.corpus = 'files'
  cfg.data.text_files = (str(corpus),)
  cfg.optimizer.name = 'adamw'      # Muon's Newton-Schulz makes the compile slower; the full runs use Muon
  return cfg


@pytest.mark.slow  # 93 s of the default set's 205 s (2 workers, load 6.7): kept out of the default suite's budget
def test_tiny_elf_trains_and_samples(tmp_path):
  cfg = tiny(tmp_path)
  out = elf_main.run(cfg, str(tmp_path / 'elf'))
  assert out['step'] == cfg.total_steps and out['kind'] == 'elf'
  assert {'decode_acc_clean', 'decode_ce_clean', 'l2_nosc_w1'} <= set(out['eval'])
  samples = (tmp_path / 'elf' / 'samples.txt').read_text().splitlines()
  assert len(samples) == cfg.sample.num_samples
  assert json.load(open(tmp_path / 'elf' / 'results.json'))['step'] == cfg.total_steps


@pytest.mark.slow
def test_tiny_elf_resumes(tmp_path):
  elf_main.run(tiny(tmp_path), str(tmp_path / 'elf'))
  cfg = tiny(tmp_path)
  cfg.total_steps = 6
  assert elf_main.run(cfg, str(tmp_path / 'elf'))['step'] == 6    # continued from the step-4 checkpoint


@pytest.mark.slow
def test_tiny_mdlm_and_sweep(tmp_path):
  elf_main.run(tiny(tmp_path), str(tmp_path / 'elf'))
  out = elf_main.run(tiny(tmp_path, 'tiny,mdlm'), str(tmp_path / 'mdlm'))
  assert out['kind'] == 'mdlm' and 'perplexity_bound' in out['eval']
  scfg = sweep_configs.get_config('tiny')
  scfg.runs = (str(tmp_path / 'elf'), str(tmp_path / 'mdlm'))
  res = sweep.run(scfg, str(tmp_path / 'sweep'))
  assert len(res['rows']) == 2 + 2 + 2       # data and unigram rows, two ELF settings, MDLM at 2 and 1 steps
  assert os.path.exists(tmp_path / 'sweep' / 'results.md')


@pytest.mark.parametrize('key,value,match', [
    ('sample.guidance', 0.0, r'config.sample.guidance=0.0: the guidance scale w must be > 0'),
    ('sample.num_steps', 0, r'config.sample.num_steps=0 must be >= 1'),
    ('data.seq_len', 600, r'config.data.seq_len 600 is longer than the frozen encoder allows \(max_len=512'),
    ('model.kind', 'gpt', r"config.model.kind='gpt' is not one of"),
])
def test_bad_config_is_a_clear_error(tmp_path, key, value, match):
  cfg = tiny(tmp_path)
  section, field = key.split('.')
  cfg[section][field] = value
  with pytest.raises(ValueError, match=match):
    elf_main.run(cfg, str(tmp_path / 'bad'))
  assert not os.path.exists(tmp_path / 'bad' / 'checkpoints')
