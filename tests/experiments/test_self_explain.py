"""experiments/self_explain: the fact table on the real SmolLM2 tokenizer (single-token subjects at one
position), the explainer prompt fits the row length, class balancing, the configs, and (slow) the tiny run end
to end on 2 of SmolLM2's 30 layers, rerun without work."""

import importlib
import json

import numpy as np
import pytest

from experiments.self_explain import data


@pytest.fixture(scope='module')
def tok(smollm2):
  return smollm2[3]


def test_fact_prompts_align_subjects(tok):
  enc = lambda s: tok.encode(s).ids  # noqa: E731
  for template in data.TEMPLATES:
    lengths = set()
    for c in data.COUNTRIES:
      ids, pos = data.split_prompt(template, c, enc)
      assert ids[pos] == enc(' ' + c)[0]
      lengths.add((len(ids), pos))
    assert len(lengths) == 1, template           # every swap keeps the length and the subject position
  with pytest.raises(ValueError, match='single-token'):
    data.split_prompt(data.TEMPLATES[0], 'Kyrgyzstan', enc)


def test_explainer_prompt_fits_the_default_length(tok):
  cfg = importlib.import_module('experiments.self_explain.configs.default').get_config()
  longest = max(data.TEMPLATES, key=len).format('Netherlands')
  text = data.EXPLAIN_PROMPT.format(feat='', layers='16-23', tok=' Netherlands', text=longest)
  answer = 'The most likely output would change to <<< Amsterdam>>>.'
  assert len(tok.encode(text).ids) + 3 + len(tok.encode(answer).ids) + 1 <= cfg.explainer.length


def test_pairs_and_balance():
  pairs = data.subject_pairs(3, seed=0, countries=data.COUNTRIES[:5])
  assert len(pairs) == len(data.TEMPLATES) * 5 * 3 and all(x != y for _, x, y in pairs)
  rows = [{'changed': i % 4 == 0, 'i': i} for i in range(40)]
  bal = data.balance(rows, seed=0)
  assert len(bal) == 20 and sum(r['changed'] for r in bal) == 10


def test_configs():
  mod = importlib.import_module('experiments.self_explain.configs.default')
  assert mod.get_config().lora.alpha == 16 and mod.get_config('tiny').num_layers == 2
  with pytest.raises(ValueError, match='variant'):
    mod.get_config('huge')


@pytest.mark.slow
def test_tiny_run_end_to_end_and_rerun(tmp_path, capsys):
  from experiments.self_explain import main as M
  cfg = importlib.import_module('experiments.self_explain.configs.default').get_config('tiny')
  out = M.run(cfg, str(tmp_path))
  assert set(out['table']) == {'self', 'zero', 'rot'}
  for r in out['runs']:
    assert 0 <= r['metrics']['exact_match'] <= 1 and r['steps'] == 2
  rows = json.loads((tmp_path / 'labels' / 'rows.json').read_text())
  vecs = np.load(tmp_path / 'labels' / 'vectors.npy')
  assert vecs.shape[1] == 576 and all(r['label'].startswith('The ') for r in rows)
  same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731 (NaN == NaN)
  assert same(json.loads((tmp_path / 'results.json').read_text())['table'], out['table'])
  again = M.run(cfg, str(tmp_path))
  assert 'nothing to do' in capsys.readouterr().out and same(again['table'], out['table'])
