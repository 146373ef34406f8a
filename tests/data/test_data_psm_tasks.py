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


@pytest.mark.parametrize('group', sorted(psm_tasks.GROUPS))
def test_every_group_table_is_a_group(group):
  table = psm_tasks.group_table(group)
  g = psm_tasks.GROUPS[group]
  assert table.shape == (g, g)
  assert (table[0] == np.arange(g)).all() and (table[:, 0] == np.arange(g)).all()  # Identity 0.
  assert all(sorted(row) == list(range(g)) for row in table)                    # Latin square.
  a, b, c = np.meshgrid(*(np.arange(min(g, 12)),) * 3, indexing='ij')
  np.testing.assert_array_equal(table[a, table[b, c]], table[table[a, b], c])   # Associative.
  if group in ('a4', 'a5'):  # Even permutations only.
    perms, _ = psm_tasks.permutation_table(int(group[1]), even_only=True)
    assert all(np.linalg.det(np.eye(len(p))[p]) > 0 for p in perms)


def test_word_problem_stream_is_reproducible_with_a_length_curriculum():
  s = psm_tasks.WordProblemStream('s3', 2, 10, seed=3, curriculum_examples=100)
  assert [s.longest(i) for i in (0, 50, 99, 100, 10 ** 9)] == [2, 6, 9, 10, 10]
  for i in (0, 57, 10 ** 6):
    rec = s[i]
    n = int(rec['mask'].sum())
    assert 2 <= n <= s.longest(i) and rec['tokens'].shape == (10,)
    state = rec['tokens'][0]
    for t in range(1, n):
      state = s.table[rec['tokens'][t], state]
      assert rec['labels'][t] == state
    np.testing.assert_array_equal(s[i]['tokens'], rec['tokens'])
  with pytest.raises(ValueError, match='curriculum'):
    psm_tasks.WordProblemStream('s3', 2, 10, 0, curriculum_examples=-1)
