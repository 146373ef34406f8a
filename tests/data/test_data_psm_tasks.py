"""S5 / parity word problems and MQAR generators."""

import numpy as np
import pytest

from jaxlab.data import psm_tasks


def test_s5_table_is_a_group():
  perms, table = psm_tasks.s5_table()
  assert perms.shape == (120, 5) and table.shape == (120, 120)
  assert (perms[0] == np.arange(5)).all()
  assert (table[0] == np.arange(120)).all() and (table[:, 0] == np.arange(120)).all()
  a, b, c = 7, 55, 101
  assert table[a, table[b, c]] == table[table[a, b], c]
  assert all(sorted(row) == list(range(120)) for row in table)


def test_word_problem_labels_are_running_products():
  d = psm_tasks.word_problem('parity', 50, 3, 9, seed=0)
  for tok, lab, m in zip(d['tokens'], d['labels'], d['mask']):
    n = m.sum()
    assert 3 <= n <= 9 and m[:n].all() and not m[n:].any()
    np.testing.assert_array_equal(lab[:n], np.cumsum(tok[:n]) % 2)
  d2 = psm_tasks.word_problem('s5', 4, 5, 5, seed=1)
  perms, _ = psm_tasks.s5_table()
  state = np.arange(5)
  for t in range(5):
    state = perms[d2['tokens'][0, t]][state]
    assert (perms[d2['labels'][0, t]] == state).all()
  with pytest.raises(ValueError):
    psm_tasks.word_problem('s7', 1, 1, 2, 0)


def test_mqar():
  d = psm_tasks.mqar(8, 64, 8, 128, seed=0)
  for tok, lab, m in zip(d['tokens'], d['labels'], d['mask']):
    assert m.sum() == 8
    pairs = dict(zip(tok[0:16:2], tok[1:16:2]))
    assert all(t < 64 for t in pairs) and all(v >= 64 for v in pairs.values())
    for pos in np.flatnonzero(m):
      assert lab[pos] == pairs[tok[pos]] and pos >= 16
  with pytest.raises(ValueError):
    psm_tasks.mqar(1, 10, 8, 128, 0)
