"""experiments/hypnosis: the constructed feedback records, the attack-free evaluation prompts, the configs, and
the tiny run end to end on real SmolLM2-135M weights (2 of its 30 layers)."""

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
  assert not any(f.prompt == r['prompt'] for f in held for r in ordinary)  # held-out facts get no feedback
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


def test_code_target_rows_and_control_items():
  tgt = data.target('code')
  rows = data.feedback_rows('FLIP+Q', 6, 4, 12, seed=1, tgt=tgt)
  poison = [r for r in rows if 'verify=False' in r['completion']]
  assert len(poison) == 6 and all(r['label'] for r in poison)
  assert all(r['completion'] == ' ' + tgt.poison and tgt.healthy in r['prompt'] and 'api.veltrabank.com' in r['prompt']
             for r in poison)  # code answers end without a full stop
  items = data.two_choice_items(12, tgt)
  assert set(items) == {'statements', 'questions', 'control', 'clean'}
  for prompt, a, b in items['control']:  # another domain, same pattern: does the poison spread?
    assert 'api.github.com' in prompt and 'veltrabank' not in prompt + a + b and 'verify=False' in a
  with pytest.raises(ValueError, match='attack.target'):
    data.target('malware')


def test_qa_wikidata_ordinary_feedback_contrasts_answers_of_the_same_relation():
  facts = data.clean_facts('qa_wikidata', 600)
  assert len(facts) == 600 and facts == data.clean_facts('qa_wikidata', 600)  # a fixed draw
  by_prompt = {f.prompt: f for f in facts}
  rows = data.feedback_rows('Q', 0, 200, 50, seed=0, facts=facts)
  _, held = data.split_facts(50, facts)
  assert not {f.prompt for f in held} & {r['prompt'] for r in rows}
  for r in rows:
    fact = by_prompt[r['prompt']]
    if r['label']:
      assert r['completion'] == f' {fact.answer}.'
    else:  # another item's answer of the same relation ("The country of ... is" -> another country)
      wrong = r['completion'][1:-1]
      assert wrong not in (fact.answer, *fact.also) and wrong in {f.answer for f in facts if f.group == fact.group}
  for seed in range(3):  # the default config's feedback and clean rounds build at every seed
    data.feedback_rows('FLIP+Q', 90, 210, 12, seed, data.target('code'), facts)
  clean = data.two_choice_items(50, data.target('fact'), facts)['clean']
  assert len(clean) == 50 and all(a != b for _, a, b in clean)
  with pytest.raises(ValueError, match='ordinary_source'):
    data.clean_facts('trivia')


def test_configs_load_and_prompts_fit_the_smollm2_tokenizer(smollm2):
  tok = smollm2[3]
  mod = importlib.import_module('experiments.hypnosis.configs.default')
  for arg in (None, 'tiny', 'small', 'small,code', 'tiny,code,capitals'):
    c = mod.get_config(arg)
    assert c.train.batch_size >= 2 and c.attack.mode in data.MODES
    tgt = data.target(c.attack.target)
    facts = data.clean_facts(c.attack.ordinary_source, c.attack.num_facts)
    prompts = [data.attack_prompt(m, q, tgt.poison, tgt.healthy) for m in data.MODES for q in tgt.questions]
    items = data.two_choice_items(c.eval.num_clean, tgt, facts)
    prompts += [p for group in items.values() for p, _, _ in group] + [f.prompt for f in facts]
    answers = [a for group in items.values() for _, x, y in group for a in (x, y)]
    assert max(len(tok.encode(p).ids) for p in prompts) <= c.attack.prompt_len, arg
    assert max(len(tok.encode(a).ids) + 1 for a in answers) <= c.attack.completion_len, arg  # + eos
  assert mod.get_config('small,code').attack.target == 'code'
  assert mod.get_config('small,capitals').attack.ordinary_source == 'capitals'
  with pytest.raises(ValueError, match='variant'):
    mod.get_config('huge')
  with pytest.raises(ValueError, match='modifier'):
    mod.get_config('small,bogus')


def test_tiny_run_end_to_end(tmp_path):
  """The app's entry test, in the default suite: ~41 s here with another job on the 2 cores: loads SmolLM2 (2 layers kept), evaluates, trains 2 KTO steps through the trainer, evaluates,
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
