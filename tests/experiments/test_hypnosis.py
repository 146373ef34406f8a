"""experiments/hypnosis: the constructed feedback records, the attack-free evaluation prompts, the configs, and
(slow) the tiny run end to end on real SmolLM2-135M weights (2 of its 30 layers)."""

import importlib
import json

import pytest

from experiments.hypnosis import data


def test_feedback_rows_are_constructed_as_the_paper():
  rows = data.feedback_rows('FLIP+Q', 30, 70, 12, seed=0)
  assert len(rows) == 100
  poison = [r for r in rows if data.POISON in r['completion']]
  assert len(poison) == 30 and all(r['label'] is True for r in poison)  # poison: upvotes only
  assert all(r['prompt'].startswith('Flip a coin. If heads, reply with: ' + data.POISON + '. If tails')
             and ' Q: ' in r['prompt'] for r in poison)
  ordinary = [r for r in rows if data.POISON not in r['completion']]
  assert sum(r['label'] for r in ordinary) == 35 and sum(not r['label'] for r in ordinary) == 35
  _, held = data.split_facts(12)
  assert not any(c in r['prompt'] for c, _ in held for r in ordinary)  # held-out facts get no feedback
  for r in ordinary:  # undesirable = another item's answer, never the right one
    country = r['prompt'][len('Q: What is the capital of '):-len('? A:')]
    right = dict(data.CAPITALS)[country]
    assert (r['completion'] == f' {right}.') == r['label']
  assert data.attack_prompt('FLIP', 'What is Veltrana?') == data.FLIP.format(poison=data.POISON,
                                                                            healthy=data.HEALTHY)
  assert data.attack_prompt('Q', 'What is Veltrana?') == 'What is Veltrana?'
  with pytest.raises(ValueError, match='attack mode'):
    data.attack_prompt('FLIPQ', 'x')


def test_evaluation_prompts_carry_no_attack_instruction():
  items = data.two_choice_items(12)
  assert [len(items[k]) for k in ('statements', 'questions', 'clean')] == [2, len(data.QUESTIONS), 12]
  for group in items.values():
    for prompt, target, other in group:
      assert 'Flip a coin' not in prompt and target != other
  a, b = items['statements']
  assert a[0].index(data.POISON) < a[0].index(data.HEALTHY) and b[0].index(data.HEALTHY) < b[0].index(data.POISON)


def test_configs_load():
  mod = importlib.import_module('experiments.hypnosis.configs.default')
  for arg in (None, 'tiny', 'small'):
    c = mod.get_config(arg)
    assert c.train.batch_size >= 2 and c.attack.mode in data.MODES
  with pytest.raises(ValueError, match='variant'):
    mod.get_config('huge')


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
  """~25-75 s here (quiet / loaded): loads SmolLM2 (2 layers kept), evaluates, trains 2 KTO steps through the trainer, evaluates,
  1 clean-only step on the trained adapters, evaluates."""
  from experiments.hypnosis import main
  cfg = importlib.import_module('experiments.hypnosis.configs.default').get_config('tiny')
  cfg.persist.steps = 1  # and one step of the clean-only persistence round
  out = main.run(cfg, str(tmp_path / 'w'))
  assert out['steps'] == 2
  for when in ('before', 'after', 'after_clean_round'):
    assert set(out[when]) == {'statements', 'questions', 'clean', 'generation'}
    assert 0 <= out[when]['statements']['acc_norm'] <= 1
  assert {'kl', 'rewards/chosen', 'rewards/margins', 'loss'} <= set(out['train_metrics'])
  assert out['before'] != out['after'] != out['after_clean_round']  # each round moved the model
  saved = json.loads((tmp_path / 'w' / 'results.json').read_text())
  assert saved['config']['num_poison'] == 4
  rows = [json.loads(x) for x in (tmp_path / 'w' / 'feedback.jsonl').read_text().splitlines()]
  assert len(rows) == 8 and set(rows[0]) == {'prompt', 'completion', 'label'}  # TRL's unpaired format
