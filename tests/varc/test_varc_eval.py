"""Voting and pass@k on hand-made predictions; a failing task does not stop the others."""

import numpy as np
import pytest

from jaxlab.evals import arc as arc_eval

A = np.array([[1, 2]])
B = np.array([[2, 1]])
C = np.array([[1], [2]])   # same values as A, different shape: a different grid.


def test_vote_ranks_by_count_then_first_seen():
  ranked = arc_eval.vote([B, A, None, C, A, C, B, A])
  assert [n for _, n in ranked] == [3, 2, 2]
  np.testing.assert_array_equal(ranked[0][0], A)
  np.testing.assert_array_equal(ranked[1][0], B)   # B and C tie at 2; B was seen first.
  np.testing.assert_array_equal(ranked[2][0], C)
  assert arc_eval.vote([None, None]) == []


def test_pass_at_k_hand_computed():
  # Task 1: two test inputs. Test 0 truth C: ranked [A, B, C] -> pass@2 no. Test 1 truth B: ranked [A, B] -> yes.
  r0 = [g for g, _ in arc_eval.vote([B, A, C, A, C, B, A])]
  r1 = [g for g, _ in arc_eval.vote([A, A, B])]
  s1_2 = arc_eval.task_score([r0, r1], [C, B], k=2)
  s1_1 = arc_eval.task_score([r0, r1], [C, B], k=1)
  assert s1_2 == 0.5 and s1_1 == 0.0
  # Task 2: one test, truth A ranked first.
  s2 = arc_eval.task_score([[A, B]], [A], k=1)
  assert s2 == 1.0
  assert arc_eval.accuracy({'t1': s1_2, 't2': arc_eval.task_score([[A, B]], [A], k=2)}) == pytest.approx(0.75)
  assert arc_eval.accuracy({'t1': s1_1, 't2': s2}) == pytest.approx(0.5)
  assert not arc_eval.is_correct([A, B], C, k=2)   # shape matters


def test_failing_task_does_not_stop_others():
  def run(tid):
    if tid == 'bad':
      raise ValueError('broken task file')
    return arc_eval.TaskResult(tid, {'pass@1': 1.0, 'pass@2': 1.0})
  results = arc_eval.evaluate_tasks(['a', 'bad', 'c'], run)
  assert [r.task_id for r in results] == ['a', 'bad', 'c']
  assert results[1].error == 'ValueError: broken task file' and results[1].scores['pass@2'] == 0.0
  summary = arc_eval.summarize(results)
  assert summary['pass@2'] == pytest.approx(2 / 3) and summary['num_failed'] == 1
