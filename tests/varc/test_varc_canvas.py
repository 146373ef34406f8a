"""Transforms, colour maps and the canvas round trip are exact; bad inputs give clear errors."""

import json

import numpy as np
import pytest

from jaxlab.data import arc as arc_lib
from jaxlab.data import arc_canvas as cv


@pytest.mark.parametrize('t', range(cv.NUM_GEOMETRIC))
def test_geometric_inverse_is_identity_for_every_size(t):
  rng = np.random.default_rng(t)
  for h in range(1, 31):
    for w in range(1, 31):
      g = rng.integers(0, 10, size=(h, w)).astype(np.uint8)
      out = cv.apply_geometric(g, t)
      assert out.shape == ((w, h) if t % 2 else (h, w))
      np.testing.assert_array_equal(cv.invert_geometric(out, t), g)


def test_named_transforms():
  g = np.arange(6).reshape(2, 3)
  np.testing.assert_array_equal(cv.apply_geometric(g, 4), np.fliplr(g))
  np.testing.assert_array_equal(cv.apply_geometric(g, 6), np.flipud(g))
  np.testing.assert_array_equal(cv.apply_geometric(g, 1), np.rot90(g))
  assert len({cv.apply_geometric(g, t).tobytes() + bytes(cv.apply_geometric(g, t).shape)
              for t in range(8)}) == 8


def test_colour_perm_fixes_zero_bg_bd_and_inverts():
  rng = np.random.default_rng(0)
  for _ in range(50):
    perm = cv.random_colour_perm(rng)
    assert perm[0] == 0 and perm[cv.BG] == cv.BG and perm[cv.BD] == cv.BD
    assert sorted(perm[1:10]) == list(range(1, 10))
    g = rng.integers(0, 10, size=(7, 5)).astype(np.uint8)
    np.testing.assert_array_equal(cv.apply_colours(cv.apply_colours(g, perm), cv.invert_colour_perm(perm)), g)


def test_views_invert_exactly():
  rng = np.random.default_rng(1)
  views = cv.pseudo_task_views(51, seed=3)
  assert len(views) == 51 and views[0].geometric == 0
  assert len({(v.geometric, v.colours) for v in views}) == 51
  for v in views:
    g = rng.integers(0, 10, size=(rng.integers(1, 31), rng.integers(1, 31))).astype(np.uint8)
    np.testing.assert_array_equal(v.invert(v.apply(g)), g)


@pytest.mark.parametrize('canvas', [32, 64])
def test_canvas_round_trip_every_legal_scale(canvas):
  rng = np.random.default_rng(canvas)
  for side in (1, 2, 3, 5, 7, 10, 15, 20, 30):
    if cv.max_scale(side, canvas) < 1:
      continue
    for scale in range(1, cv.max_scale(side, canvas) + 1):
      h, w = side, int(rng.integers(1, side + 1))
      g = rng.integers(0, 10, size=(h, w)).astype(np.uint8)
      oy = int(rng.integers(0, canvas - 1 - scale * h + 1))
      ox = int(rng.integers(0, canvas - 1 - scale * w + 1))
      out = cv.place(g, scale, (oy, ox), canvas, border=True)
      got = cv.decode(out, scale, (oy, ox))
      np.testing.assert_array_equal(got, g)


def test_sampled_placements_fit_and_round_trip():
  rng = np.random.default_rng(0)
  for _ in range(300):
    x = rng.integers(0, 10, size=tuple(rng.integers(1, 16, size=2))).astype(np.uint8)
    y = rng.integers(0, 10, size=tuple(rng.integers(1, 16, size=2))).astype(np.uint8)
    scale, off = cv.sample_placement([x.shape, y.shape], 32, rng)
    ex = cv.make_example(x, y, scale, off, 32, 2)
    np.testing.assert_array_equal(cv.decode(ex['targets'], scale, off), y)
    np.testing.assert_array_equal(cv.downsample(cv.place(x, scale, off, 32)[off[0]:off[0] + scale * x.shape[0],
                                                                          off[1]:off[1] + scale * x.shape[1]],
                                                  scale), x)


def test_example_masks():
  x = np.array([[1, 2], [3, 4]], np.uint8)
  y = np.array([[5, 6, 7]], np.uint8)
  ex = cv.make_example(x, y, 2, (1, 3), 16, 2, task_id=7)
  # Output region 2x6 plus its border: right column (3 rows) and bottom row (7 cols), corner shared.
  assert ex['loss_mask'].sum() == 2 * 6 + 3 + 7 - 1
  assert (ex['targets'][ex['loss_mask'] == 0] == cv.BG).all()
  assert ex['targets'][3, 3:10].tolist() == [cv.BD] * 7 and ex['targets'][1:4, 9].tolist() == [cv.BD] * 3
  km = ex['key_mask'].reshape(8, 8)
  # Input occupies rows 1..4, cols 3..6 -> patch rows 0..2, patch cols 1..3.
  expected = np.zeros((8, 8), bool)
  expected[0:3, 1:4] = True
  np.testing.assert_array_equal(km, expected)
  assert ex['task_id'] == 7


def test_downsample_majority_and_undecodable():
  region = np.array([[1, 1, 2, 2], [1, 3, 2, 2]])
  np.testing.assert_array_equal(cv.downsample(region, 2), [[1, 2]])
  assert cv.downsample(np.full((2, 2), cv.BG), 2) is None
  assert cv.crop_at_border(np.full((8, 8), 3), (0, 0)) is None


def test_grid_too_large_for_canvas():
  with pytest.raises(cv.CanvasError, match='does not fit'):
    cv.check_fits(31, 32)
  with pytest.raises(cv.CanvasError, match='does not fit'):
    cv.place(np.zeros((30, 30), np.uint8), 2, (0, 0), 32)
  with pytest.raises(cv.CanvasError):
    cv.sample_placement([(31, 20)], 32, np.random.default_rng(0))


def _task(inp, out):
  return {'train': [{'input': inp, 'output': out}], 'test': [{'input': inp, 'output': out}]}


def test_bad_colours_and_shapes(tmp_path):
  with pytest.raises(arc_lib.ArcFormatError, match=r'colours must be in 0..9, found \[12\]'):
    arc_lib.task_from_json('t', _task([[1, 12]], [[1]]))
  with pytest.raises(arc_lib.ArcFormatError, match='colours'):
    arc_lib.task_from_json('t', _task([[-1]], [[1]]))
  with pytest.raises(arc_lib.ArcFormatError, match='different lengths'):
    arc_lib.task_from_json('t', _task([[1, 2], [3]], [[1]]))
  with pytest.raises(arc_lib.ArcFormatError, match='exceeds'):
    arc_lib.task_from_json('t', _task(np.zeros((31, 2), int).tolist(), [[1]]))
  with pytest.raises(arc_lib.ArcFormatError, match="'train' and 'test'"):
    arc_lib.task_from_json('t', {'train': []})
  with pytest.raises(arc_lib.ArcFormatError, match="needs 'input' and 'output'"):
    arc_lib.task_from_json('t', {'train': [{'input': [[1]]}], 'test': [{'input': [[1]]}]})


def test_malformed_file_and_folder(tmp_path):
  (tmp_path / 'good.json').write_text(json.dumps(_task([[1, 2]], [[2, 1]])))
  tasks = arc_lib.load_folder(tmp_path)
  assert list(tasks) == ['good'] and tasks['good'].train[0][1].tolist() == [[2, 1]]
  (tmp_path / 'bad.json').write_text('{"train": [')
  with pytest.raises(arc_lib.ArcFormatError, match='bad.json: not valid JSON'):
    arc_lib.load_folder(tmp_path)
  with pytest.raises(FileNotFoundError):
    arc_lib.load_folder(tmp_path / 'empty')


def test_arc1_asset_loads():
  try:
    tasks = arc_lib.load_arc1('eval')
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f'arc asset unavailable offline: {e}')
  assert len(tasks) == 400
  assert len(arc_lib.load_arc1('train')) == 400
  assert all(t.max_side <= 30 for t in tasks.values())
