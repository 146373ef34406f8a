"""The outcome-table pieces that need no model: task families and their checkers, answer extraction,
majority vote, FLOPs accounting, the specialist's expression reader and data."""

import numpy as np
import pytest

from jaxlab.nn.lm.transformer import TransformerConfig
from jaxlab.routing import outcomes, specialist, tasks
from jaxlab.train import flops


def test_families_draw_checked_tasks():
  ts = tasks.make_tasks(['chain_sum', 'spell_backward'], 3, seed=0)
  assert [t.id for t in ts] == ['chain_sum/0', 'chain_sum/1', 'chain_sum/2', 'spell_backward/0',
                                'spell_backward/1', 'spell_backward/2']
  assert all(t.correct(t.answer) for t in ts)
  assert not any(t.correct(t.answer + '1') for t in ts)   # reasoning-gym's partial credit is not counted
  assert not ts[0].correct(None)
  assert tasks.make_tasks(['chain_sum'], 3, seed=0)[0].question == ts[0].question  # seeded
  with pytest.raises(ValueError, match='unknown task family'):
    tasks.make_tasks(['nope'], 1, 0)


def test_extract_answer_and_majority():
  assert outcomes.extract_answer('12 + 3 = 15. Answer: 15.', 'chain_sum', 'cot') == '15'
  assert outcomes.extract_answer('First 4, then 9', 'chain_sum', 'cot') == '9'
  assert outcomes.extract_answer('7\nbecause 3 + 4', 'chain_sum', 'direct') == '7'
  assert outcomes.extract_answer('1,234', 'products', 'direct') == '1234'
  assert outcomes.extract_answer('So... Answer: "noen".', 'spell_backward', 'cot') == 'noen'
  assert outcomes.extract_answer('noen\nmore', 'spell_backward', 'direct') == 'noen'
  assert outcomes.extract_answer('no digits here', 'gcd', 'cot') == ''
  assert outcomes.majority(['3', '4', '4', '3']) == '3'   # tie: the first seen
  assert outcomes.majority(['', '5', '', '']) == '5'
  assert outcomes.majority(['', '']) == ''


def test_sequence_flops_counts_prefill_and_decode():
  cfg = TransformerConfig(vocab_size=100, num_layers=2, embed_dim=16, num_heads=2, max_len=64)
  want = 10 * flops.lm_forward_flops_per_token(cfg, 10) + 5 * flops.lm_forward_flops_per_token(cfg, 15)
  assert outcomes.sequence_flops(cfg, 10, 5) == pytest.approx(want)
  assert outcomes.sequence_flops(cfg, 10, 0) < outcomes.sequence_flops(cfg, 10, 1)


def test_specialist_reads_expressions_and_writes_reversed_answers():
  assert specialist.expression('Calculate 13 - 92.') == '13-92'
  assert specialist.expression('State the final answer to the following arithmetic problem: 4 + 3 - 2 =') == '4+3-2'
  assert specialist.expression('Solve the following multiplication: 4 * 12. Give only the result') == '4*12'
  assert specialist.expression('how many legs do 3 cats have?') is None
  row = specialist.SpecialistData(seed=0)[5]
  text = ''.join(specialist.CHARS[t] for t in row['tokens']).rstrip('_')
  expr, ans = text.split('=')
  assert ans.endswith('$') and str(eval(expr)) == ans[:-1][::-1]  # noqa: S307  digits and + - * only
  # the loss reads exactly the answer characters (position t predicts t + 1)
  assert row['mask'].sum() == len(ans) and row['mask'][len(expr)] == 1
  assert np.array_equal(specialist.SpecialistData(seed=0)[5]['tokens'], row['tokens'])
