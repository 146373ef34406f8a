"""The turtle language: hand programs through the parser, interpreter and rasteriser, each error type."""

import numpy as np
import pytest

from jaxlab.data import turtle as T


def ink(src):
  r = T.run_program(src)
  assert r.ok, r.error
  return r.ink


def test_square_outline_pixels():
  img = ink('jumpto -100, -100\nfor [1..4]\n  fd 200\n  rt 90')
  # the outline of a square spanning the middle half of the canvas: edges inked, centre empty
  q = T.CANVAS // 4
  assert img[T.CANVAS // 2, q] and img[T.CANVAS // 2, 3 * q - 1] and img[q, T.CANVAS // 2]
  assert not img[T.CANVAS // 2, T.CANVAS // 2]
  assert not img[2, 2]


def test_loop_equals_unrolled_and_function_and_left_turns_mirror():
  loop = ink('for [1..3]\n  fd 80\n  rt 120')
  unrolled = ink('fd 80\nrt 120\nfd 80\nrt 120\nfd 80\nrt 120')
  func = ink('tri = ->\n  for [1..3]\n    fd 80\n    rt 120\ntri()')
  left = ink('for [1..3]\n  fd 80\n  lt 120')
  np.testing.assert_array_equal(loop, unrolled)
  np.testing.assert_array_equal(loop, func)
  assert not np.array_equal(loop, left)
  np.testing.assert_array_equal(loop, left[:, ::-1])  # mirror image about x = 0
  assert T.iou(left, loop) == 1.0


def test_pen_up_dot_box_fill_colours_comments():
  r = T.run_program('# comment\npen red, 3  # trailing\npu\nfd 100\npd\ndot blue, 40\nbox green, 20\nlabel \'hi # x\'')
  assert r.ok, r.error
  assert (r.image == T.COLOR_INDEX['blue']).sum() > 0 and (r.image == T.COLOR_INDEX['green']).sum() > 0
  assert (r.image == T.COLOR_INDEX['red']).sum() > 0  # the label mark in the pen colour
  assert not r.ink[T.CANVAS // 2 + 4, T.CANVAS // 2]  # pen was up on the way: no line at the origin's row
  filled = T.run_program('for [1..4]\n  fd 100\n  rt 90\nfill orange')
  assert (filled.image == T.COLOR_INDEX['orange']).sum() > 100


@pytest.mark.parametrize('src, cls, line', [
    ('fd 100\nfd 100)', T.TurtleSyntaxError, 2),
    ('for 4\n  fd 10', T.TurtleSyntaxError, 1),
    ('for [1..x]\n  fd 10', T.TurtleSyntaxError, 1),
    ('fd 10\n   rt 90', T.TurtleIndentError, 2),
    ('fd 10\n  rt 90', T.TurtleIndentError, 2),
    ('for [1..4]\nfd 10', T.TurtleIndentError, 1),
    ('fw 100', T.UnknownCommandError, 1),
    ('fd', T.ArgumentError, 1),
    ('fd red', T.ArgumentError, 1),
    ('jumpto 1', T.ArgumentError, 1),
    ('pen purpl', T.UnknownColorError, 1),
    ('fd 10\nsquare()', T.UndefinedNameError, 2),
    ('for [1..1000]\n  for [1..1000]\n    fd 1', T.StepLimitError, 3),
    ('for [1..5000]\n  fd 1', T.StepLimitError, 1),
])
def test_each_error_type(src, cls, line):
  r = T.run_program(src)
  assert isinstance(r.error, cls) and r.error.kind == cls.kind and r.error.line == line, r.error
  assert not r.ok


def test_error_kinds_are_distinct():
  assert len(set(T.ERROR_KINDS)) == len(T.ERROR_KINDS) == 7


def test_runtime_error_keeps_what_was_drawn():
  r = T.run_program('fd 100\nnope()')
  assert r.error.kind == 'name' and r.ink.sum() > 0


def test_assignments_solve_their_targets_and_not_each_other():
  assert len(T.ASSIGNMENTS) == 12 and len({a.name for a in T.ASSIGNMENTS}) == 12
  for a in T.ASSIGNMENTS:
    r = T.run_program(a.canonical())
    assert r.ok and T.solved(r.image, a.target), a.name
    assert not T.solved(np.zeros_like(a.target), a.target)
  for a, b in zip(T.ASSIGNMENTS, T.ASSIGNMENTS[1:]):
    assert not T.solved(a.target, b.target), (a.name, b.name)
  half = T.run_program('\n'.join(T.ASSIGNMENT_BY_NAME['house'].canonical().splitlines()[:5]))
  assert not T.solved(half.image, T.ASSIGNMENT_BY_NAME['house'].target)


def test_scaled_family_changes_target():
  big = T.make_assignments(1.2)[0]
  assert not np.array_equal(big.target, T.ASSIGNMENTS[0].target)
