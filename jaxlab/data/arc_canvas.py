"""VARC canvas: ARC grids as images, with the augmentations and their exact inverses.

Classes: colours 0-9, `BG` = 10 (background / ignore), `BD` = 11 (border). A pair (input, output) is
drawn on two `canvas`×`canvas` images filled with BG, both magnified by the same integer `scale`
(nearest-neighbour repeat) and placed at the same (row, col) `offset`. The output image also gets BD
along its right column and bottom row (corner included), so a prediction encodes its own shape.

    scale ∈ 1..max_scale(side, canvas) with max_scale = (canvas - 2) // side   (paper: 62 // side at 64)
    offset_y ∈ 0..canvas - 1 - scale·H, offset_x ∈ 0..canvas - 1 - scale·W, with H, W the largest height
    and width of the two grids, so both grids and the border fit.

The loss covers the output region plus its border (`loss_mask`); every other target pixel is BG and
ignored. Attention keys of patches containing no input pixel are masked (`key_mask`).

Decoding a predicted canvas: `crop_at_border` (from the offset to the first BD along the first row and
column), `downsample` (per-block majority vote), then undo the colour map and the geometric transform.

Geometric transforms are the 8 elements of the dihedral group, indexed t = 4·flip + k: forward
`rot90(fliplr(g) if flip else g, k)`. t=0 identity, 1/2/3 rot90/180/270, 4 fliplr, 6 flipud.
Colour permutations are length-12 arrays fixing 0, BG and BD.
"""

from __future__ import annotations

import dataclasses

import numpy as np

BG = 10
BD = 11
NUM_CLASSES = 12
NUM_GEOMETRIC = 8
# The paper's TTT variants besides the identity: rot90, rot180, rot270, flipud, fliplr.
TTT_GEOMETRIC = (1, 2, 3, 6, 4)


class CanvasError(ValueError):
  """A grid that does not fit on the canvas, or an illegal scale/offset."""


# ------------------------------------------------------------------------------------------------
# Geometric transforms and colour permutations.
# ------------------------------------------------------------------------------------------------

def _check_t(t: int) -> None:
  if not 0 <= int(t) < NUM_GEOMETRIC:
    raise ValueError(f'geometric transform index must be in 0..7, got {t}.')


def apply_geometric(grid: np.ndarray, t: int) -> np.ndarray:
  """[h, w] -> transformed grid ([h, w] or [w, h]) for dihedral element t (see module doc)."""
  _check_t(t)
  flip, k = divmod(int(t), 4)
  g = np.fliplr(grid) if flip else grid
  return np.ascontiguousarray(np.rot90(g, k))


def invert_geometric(grid: np.ndarray, t: int) -> np.ndarray:
  """Exact inverse of `apply_geometric(., t)`."""
  _check_t(t)
  flip, k = divmod(int(t), 4)
  g = np.rot90(grid, -k)
  return np.ascontiguousarray(np.fliplr(g) if flip else g)


def identity_colour_perm() -> np.ndarray:
  return np.arange(NUM_CLASSES, dtype=np.int64)


def random_colour_perm(rng: np.random.Generator) -> np.ndarray:
  """A length-12 permutation that fixes colour 0, BG and BD and shuffles colours 1-9."""
  perm = identity_colour_perm()
  perm[1:10] = 1 + rng.permutation(9)
  return perm


def apply_colours(grid: np.ndarray, perm: np.ndarray) -> np.ndarray:
  return perm[np.asarray(grid, np.int64)].astype(grid.dtype)


def invert_colour_perm(perm: np.ndarray) -> np.ndarray:
  return np.argsort(perm)


@dataclasses.dataclass(frozen=True)
class View:
  """One (pseudo-)task variant: a geometric transform and a colour permutation."""
  geometric: int
  colours: tuple[int, ...]

  def apply(self, grid: np.ndarray) -> np.ndarray:
    return apply_geometric(apply_colours(grid, np.asarray(self.colours)), self.geometric)

  def invert(self, grid: np.ndarray) -> np.ndarray:
    inv = invert_colour_perm(np.asarray(self.colours))
    return apply_colours(invert_geometric(grid, self.geometric), inv)


def pseudo_task_views(num: int, seed: int) -> list[View]:
  """The paper's TTT variants, in an order that keeps small `num` diverse.

  The full set (num=51) is the original task plus, for each of the 5 geometric transforms in
  `TTT_GEOMETRIC`, the identity colour map and 9 seeded random colour permutations. Order: the
  original, the 5 transforms with identity colours, then the colour-permuted ones round-robin over
  the transforms. `num` > 51 keeps drawing colour permutations.
  """
  if num < 1:
    raise ValueError(f'need at least one pseudo-task, got {num}.')
  rng = np.random.default_rng(seed)
  ident = tuple(int(c) for c in identity_colour_perm())
  views = [View(0, ident)] + [View(t, ident) for t in TTT_GEOMETRIC]
  i = 0
  while len(views) < num:
    t = TTT_GEOMETRIC[i % len(TTT_GEOMETRIC)]
    views.append(View(t, tuple(int(c) for c in random_colour_perm(rng))))
    i += 1
  return views[:num]


# ------------------------------------------------------------------------------------------------
# Canvas placement and decoding.
# ------------------------------------------------------------------------------------------------

def max_scale(side: int, canvas: int) -> int:
  """Largest legal integer scale for grids whose largest side is `side` (0 if none fits)."""
  return (canvas - 2) // side


def check_fits(side: int, canvas: int) -> None:
  """Raises CanvasError if a grid with largest side `side` cannot be placed even at scale 1."""
  if max_scale(side, canvas) < 1:
    raise CanvasError(f'grid side {side} does not fit on a {canvas}x{canvas} canvas at scale 1 '
                      f'(the largest side allowed is {canvas - 2}).')


def sample_placement(shapes: list[tuple[int, int]], canvas: int, rng: np.random.Generator | None,
                     augment: bool = True, side: int | None = None) -> tuple[int, tuple[int, int]]:
  """Draws (scale, (offset_y, offset_x)) shared by grids of the given shapes.

  Args:
    shapes: [(h, w), ...] of every grid that must fit (input and output; at test time the output is
      unknown, so pass the task's other grids or use `side`).
    canvas: canvas side.
    rng: random generator (unused when augment is False).
    augment: False gives scale 1 at offset (0, 0).
    side: optional largest side to plan for (defaults to the max over `shapes`).
  """
  side = side or max(max(s) for s in shapes)
  check_fits(side, canvas)
  if not augment:
    return 1, (0, 0)
  scale = int(rng.integers(1, max_scale(side, canvas) + 1))
  h = max(s[0] for s in shapes)
  w = max(s[1] for s in shapes)
  oy = int(rng.integers(0, canvas - 1 - scale * h + 1))
  ox = int(rng.integers(0, canvas - 1 - scale * w + 1))
  return scale, (oy, ox)


def place(grid: np.ndarray, scale: int, offset: tuple[int, int], canvas: int,
          border: bool = False) -> np.ndarray:
  """Draws `grid` [h, w] magnified by `scale` at `offset` on a BG canvas; optional BD border.

  Returns:
    [canvas, canvas] int32.

  Raises:
    CanvasError: the magnified grid (plus border) does not fit at this offset.
  """
  h, w = grid.shape
  oy, ox = offset
  hs, ws = h * scale, w * scale
  if scale < 1 or oy < 0 or ox < 0 or oy + hs + int(border) > canvas or ox + ws + int(border) > canvas:
    raise CanvasError(f'grid {grid.shape} at scale {scale}, offset {offset} (border={border}) does not fit '
                      f'on a {canvas}x{canvas} canvas.')
  out = np.full((canvas, canvas), BG, np.int32)
  out[oy:oy + hs, ox:ox + ws] = np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)
  if border:
    out[oy:oy + hs + 1, ox + ws] = BD
    out[oy + hs, ox:ox + ws + 1] = BD
  return out


def crop_at_border(pred: np.ndarray, offset: tuple[int, int]) -> np.ndarray | None:
  """The region from `offset` to the first BD along its row and its column (None if no border)."""
  oy, ox = offset
  row = np.nonzero(pred[oy, ox:] == BD)[0]
  col = np.nonzero(pred[oy:, ox] == BD)[0]
  if not len(row) or not len(col) or row[0] == 0 or col[0] == 0:
    return None
  return pred[oy:oy + col[0], ox:ox + row[0]]


def downsample(region: np.ndarray, scale: int) -> np.ndarray | None:
  """Per-block majority vote over scale×scale blocks; None if any block's winner is not a colour.

  A region whose sides are not multiples of `scale` is cut down to the largest multiple (None if
  that leaves nothing). Ties go to the smallest class id.
  """
  h, w = region.shape[0] // scale, region.shape[1] // scale
  if h == 0 or w == 0:
    return None
  blocks = region[:h * scale, :w * scale].reshape(h, scale, w, scale).transpose(0, 2, 1, 3)
  blocks = blocks.reshape(h, w, scale * scale)
  counts = (blocks[..., None] == np.arange(NUM_CLASSES)).sum(axis=2)   # [h, w, classes]
  out = counts.argmax(axis=-1)
  if out.max() >= BG:
    return None
  return out.astype(np.uint8)


def decode(pred: np.ndarray, scale: int, offset: tuple[int, int], view: View | None = None
           ) -> np.ndarray | None:
  """Predicted canvas [canvas, canvas] of class ids -> grid in the original frame (or None)."""
  region = crop_at_border(pred, offset)
  if region is None:
    return None
  grid = downsample(region, scale)
  if grid is None:
    return None
  return grid if view is None else view.invert(grid)


def patch_key_mask(inputs: np.ndarray, patch: int) -> np.ndarray:
  """True for patches containing at least one input pixel (not BG).

  Args:
    inputs: [canvas, canvas] class ids.
    patch: patch side.

  Returns:
    [(canvas // patch) ** 2] bool, row-major over patches.
  """
  c = inputs.shape[0]
  n = c // patch
  blocks = (inputs != BG).reshape(n, patch, n, patch).any(axis=(1, 3))
  return blocks.reshape(-1)


def make_example(inp: np.ndarray, out: np.ndarray | None, scale: int, offset: tuple[int, int],
                 canvas: int, patch: int, task_id: int = 0) -> dict[str, np.ndarray]:
  """One model example.

  Returns:
    inputs [canvas, canvas] int32, targets [canvas, canvas] int32 (BG = ignored), loss_mask
    [canvas, canvas] float32 (output region + border), key_mask [num_patches] bool, task_id int32.
    Without `out` (test time) targets are all BG and loss_mask all zero.
  """
  if canvas % patch:
    raise CanvasError(f'canvas {canvas} is not a multiple of the patch size {patch}.')
  inputs = place(inp, scale, offset, canvas)
  if out is None:
    targets = np.full_like(inputs, BG)
  else:
    targets = place(out, scale, offset, canvas, border=True)
  return dict(inputs=inputs, targets=targets, loss_mask=(targets != BG).astype(np.float32),
              key_mask=patch_key_mask(inputs, patch), task_id=np.int32(task_id))
