"""The student simulator: deterministic per seed, serialisation, variants, traits move statistics as intended."""

import dataclasses
import re

import numpy as np

from jaxlab.data import student_sim as S
from jaxlab.data import turtle as T
from jaxlab.evals import traces as M

ASSIGN = (T.ASSIGNMENT_BY_NAME['house'], T.ASSIGNMENT_BY_NAME['squares'], T.ASSIGNMENT_BY_NAME['plus'])


def with_traits(**kw):
  base = S.Traits(skill=0.7, comment_rate=0.3, backtrack=0.2, chunk=4.0, tinker=0.2, colorful=0.5,
                  round_numbers=1.0, loops=0.5, functions=0.1, left_turns=0.0)
  return [S.Student(f'u{i}', dataclasses.replace(base, **kw), ('red', 'blue', 'green')) for i in range(5)]


def stats(students, key, seed=0):
  vals = [M.trace_stats(S.simulate_trace(s, a, seed).programs)[key] for s in students for a in ASSIGN]
  return float(np.mean(vals))


def test_deterministic_per_seed_and_differs_across_seeds():
  s = S.sample_student(3, seed=1)
  assert s == S.sample_student(3, seed=1) and s != S.sample_student(3, seed=2)
  a = S.simulate_trace(s, ASSIGN[0], seed=5)
  assert S.serialize(a) == S.serialize(S.simulate_trace(s, ASSIGN[0], seed=5))
  others = {S.serialize(S.simulate_trace(S.sample_student(i, 1), ASSIGN[0], seed=5)) for i in range(6)}
  assert len(others) == 6


def test_serialisation_format_and_variants():
  s = with_traits(chunk=2.0)[0]
  tr = S.simulate_trace(s, ASSIGN[0], 0)
  text = S.serialize(tr)
  assert text.startswith('house\nCODE 1 (') and text.endswith(S.EOT)
  blocks = re.findall(r'CODE (\d+) \((\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\):\n', text)
  assert [int(b[0]) for b in blocks] == list(range(1, len(tr.programs) + 1)) and len(blocks) > 3
  assert tr.dates == sorted(tr.dates)
  assert all(a != b for a, b in zip(tr.programs, tr.programs[1:]))  # consecutive duplicates dropped
  last = S.last_variant(tr)
  assert last.programs == [tr.final]
  syn = S.synthetic_variant(tr)
  assert syn.programs[-1] == tr.final and len(syn.programs) == min(len(tr.programs), len(tr.final.split('\n')))
  assert all(b.startswith(a) for a, b in zip(syn.programs, syn.programs[1:]))


def test_skilled_students_solve_and_final_programs_run():
  _, traces = S.simulate_class(12, ASSIGN, per_student=2, seed=0)
  assert np.mean([t.solved for t in traces]) > 0.7
  for t in traces:
    if t.solved:
      assert T.run_program(t.final).ok


def test_traits_move_statistics_in_the_intended_direction():
  assert stats(with_traits(comment_rate=0.9), 'comments') > stats(with_traits(comment_rate=0.0), 'comments') + 1
  assert (stats(with_traits(backtrack=0.9), 'backtracking_ratio')
          > stats(with_traits(backtrack=0.0), 'backtracking_ratio') + 0.05)
  assert stats(with_traits(chunk=1.0), 'trace_length') > stats(with_traits(chunk=100.0), 'trace_length') + 5
  assert stats(with_traits(chunk=100.0, backtrack=0.0, tinker=0.0, skill=1.0), 'trace_length') == 1.0
  assert stats(with_traits(loops=1.0), 'loops') > stats(with_traits(loops=0.0), 'loops') + 1
  assert stats(with_traits(loops=1.0), 'final_lines') < stats(with_traits(loops=0.0), 'final_lines')
  assert stats(with_traits(functions=1.0), 'functions') > stats(with_traits(functions=0.0), 'functions') + 1
  assert stats(with_traits(colorful=1.0), 'colors') > stats(with_traits(colorful=0.0), 'colors')
  low = [S.simulate_trace(s, a, 0) for s in with_traits(skill=0.0, chunk=3.0) for a in ASSIGN]
  high = [S.simulate_trace(s, a, 0) for s in with_traits(skill=1.0, chunk=3.0) for a in ASSIGN]
  errors = lambda trs: np.mean([sum(not T.run_program(p).ok for p in t.programs) for t in trs])  # noqa: E731
  assert errors(low) > errors(high)
  assert 'lt ' in S.simulate_trace(with_traits(left_turns=1.0)[0], ASSIGN[0], 0).final
