"""Calibration tasks: exact posteriors, the word tokenizer, SFT format targets, GSM8K parsing, reasoning-gym."""

import re

import numpy as np
import pytest

from jaxlab.data import rl_tasks
from jaxlab.rl import rewards


def test_noisy_sum_posterior_is_exact():
  # Monte Carlo over the generator: P(gold == the posterior's mode | noise k) matches 1 - 0.9 k / 10.
  items = rl_tasks.noisy_sums(20000, seed=3, variant="id")
  for k in (0, 5, 9):
    sel = [i for i in items if i.group == f"k{k}"]
    hit = np.mean([i.labels[int(np.argmax(i.posterior))] == i.answer for i in sel])
    assert abs(hit - (1 - 0.09 * k)) < 0.04, (k, hit)
    assert all(np.isclose(i.posterior.sum(), 1) and np.isclose(i.bayes_acc, 1 - 0.09 * k) for i in sel)
  hidden = [i for i in items if i.group == "hidden"]
  assert 0.15 < len(hidden) / len(items) < 0.25 and all(np.allclose(i.posterior, 0.1) for i in hidden)
  assert all("?" in i.prompt and i.analysis == "?" for i in hidden)
  three = rl_tasks.noisy_sums(5, seed=0, variant="shift_3op")
  assert all(i.prompt.count("+") == 2 for i in three)
  with pytest.raises(ValueError, match="unknown noisy-sum variant"):
    rl_tasks.noisy_sums(1, 0, "nope")


def test_diagnosis_posterior_matches_sampling():
  model = rl_tasks.DiagnosisModel.make()
  items = rl_tasks.diagnoses(6000, seed=1, model=model)
  one = [i for i in items if i.prompt == items[0].prompt]  # same symptom bag, gold drawn from the posterior
  post = items[0].posterior
  assert np.isclose(post.sum(), 1) and len(post) == 8
  # Calibration of the posterior over all items: mean posterior of the gold equals mean squared posterior mass.
  p_gold = np.mean([i.posterior[i.labels.index(i.answer)] for i in items])
  assert abs(p_gold - np.mean([np.sum(i.posterior ** 2) for i in items])) < 0.02
  assert len(one) >= 1


def test_tokenizer_and_targets_round_trip():
  items = rl_tasks.noisy_sums(4, seed=0)
  tok = rl_tasks.WordTokenizer(rl_tasks.sum_vocabulary())
  assert tok.vocab_size % 8 == 0
  for item, target in zip(items, rl_tasks.format_targets(items, 0, mode="single")):
    assert tok.decode(tok.encode(target)) == target
    assert rewards.single_format_ok(target, "abc")
    assert rewards.rlcr(target, {"answer": item.answer}, fmt="abc")["accuracy"] == 1.0
  with pytest.raises(ValueError, match="not in the task vocabulary"):
    tok.encode("hello")
  dmodel = rl_tasks.DiagnosisModel.make()
  dtok = rl_tasks.WordTokenizer(rl_tasks.diagnosis_vocabulary(dmodel))
  ditems = rl_tasks.diagnoses(20, seed=0, model=dmodel)
  for item, target in zip(ditems, rl_tasks.format_targets(ditems, 0, mode="multi")):
    assert dtok.decode(dtok.encode(target)) == target
    comps = rewards.multi_rlcr(target, {"answer": item.answer}, k=3, reasoning_tags=False)
    assert comps["format"] == 1.0 and comps["accuracy"] == 1.0  # distinct, Σp ≤ 1, gold first


def test_gsm8k_parsing(tmp_path):
  path = tmp_path / "g.jsonl"
  path.write_text('{"question": "q1", "answer": "work\\n#### 1,234"}\n{"question": "q2", "answer": "x #### -5"}\n')
  rows = rl_tasks.gsm8k_test(str(path))
  assert [r["answer"] for r in rows] == ["1234", "-5"]
  path.write_text('{"question": "q", "answer": "no marker"}\n')
  with pytest.raises(ValueError, match="no '#### N' line"):
    rl_tasks.gsm8k_test(str(path))


def test_basic_arithmetic_from_reasoning_gym():
  """The reasoning-gym generator (from the asset, without its 106-generator package import): seeded items whose
  gold answer is the value of the printed expression."""
  cfg = dict(min_terms=2, max_terms=2, min_digits=1, max_digits=2, operators=["+", "-"], allow_parentheses=False,
             allow_negation=False)
  rows = rl_tasks.basic_arithmetic(20, 3, **cfg)
  assert rows == rl_tasks.basic_arithmetic(20, 3, **cfg) and rows != rl_tasks.basic_arithmetic(20, 4, **cfg)
  for r in rows:
    expr = re.fullmatch(r"Calculate (\d+ [+-] \d+)\.", r["question"]).group(1)
    a, op, b = expr.split()
    assert int(r["answer"]) == (int(a) + int(b) if op == "+" else int(a) - int(b))
  with pytest.raises(ValueError, match="unknown basic_arithmetic config keys"):
    rl_tasks.basic_arithmetic(2, 0, digits=3)
