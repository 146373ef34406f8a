"""Procedural scenes with known factors, rendered with PIL, and templated captions.

A `Scene` fixes every factor: shape, colour, size, position, background, texture and count (count copies of
one object). `render(scene, image_size, seed)` draws it at 4× resolution and downsamples (antialiased), with
a small seed-determined jitter of each object's place, so equal scenes give different images for different
seeds and identical images for equal seeds. `caption(scene)` is one templated sentence naming every factor
("two small red circles with stripes on a black background, at the left.").

Factor values are plain English words (single SmolLM2 tokens where possible) so that captions and questions
about them are natural text. `sample_scenes` draws scenes uniformly, optionally restricted to / excluding
shape × colour combinations (held-out combinations for generalisation tests); `labels` maps a scene to an
integer per factor (classification targets for encoder pretraining and probes).

Extended factors (SAIA's benchmark, experiments/saia): rotation, outline, brightness, noise, blur, a
co-occurring object and one more background colour. Each has a default (upright, none, normal, clean, sharp,
none) under which the image is exactly the 7-factor render, so the original outputs are bit-identical;
`EXTENDED_FACTORS` lists the 13 factors (the shape plus 12 attribute categories), `sample_extended_scenes`
draws them uniformly. `caption` names only the original 7 factors (the extended ones are invisible to it).

Used by experiments/multimodal_saes and experiments/saia, and meant for any experiment that needs images with
ground-truth attributes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ('circle', 'square', 'triangle', 'diamond', 'cross', 'star', 'hexagon', 'ring')
COLOURS = {'red': (220, 40, 40), 'green': (40, 170, 60), 'blue': (40, 80, 220), 'yellow': (235, 210, 40),
           'purple': (140, 60, 180), 'orange': (245, 140, 30), 'pink': (240, 120, 190), 'brown': (130, 80, 40)}
BACKGROUNDS = {'black': (10, 10, 10), 'white': (245, 245, 245), 'gray': (128, 128, 128)}
SIZES = {'small': 0.22, 'large': 0.42}          # object side as a fraction of the image side
POSITIONS = {'left': (0.28, 0.5), 'right': (0.72, 0.5), 'top': (0.5, 0.28), 'bottom': (0.5, 0.72),
             'center': (0.5, 0.5)}              # (x, y) centre of a single object
TEXTURES = ('solid', 'striped')
COUNTS = (1, 2, 3)
COUNT_WORDS = {1: 'a', 2: 'two', 3: 'three'}
FACTORS = {'shape': SHAPES, 'colour': tuple(COLOURS), 'size': tuple(SIZES), 'position': tuple(POSITIONS),
           'background': tuple(BACKGROUNDS), 'texture': TEXTURES, 'count': COUNTS}
_SUPERSAMPLE = 4

# Extended factors (defaults first: a scene at every default renders exactly as the 7-factor renderer did).
EXTRA_BACKGROUNDS = {'navy': (20, 30, 100)}
ALL_BACKGROUNDS = {**BACKGROUNDS, **EXTRA_BACKGROUNDS}
ROTATIONS = {'upright': 0.0, 'tilted': 30.0}     # degrees, counter-clockwise (circle and ring look the same)
OUTLINES = ('none', 'outlined')                   # a contrasting rim (white on dark, black on light backgrounds)
BRIGHTNESS = ('normal', 'dark', 'bright')         # whole image × 0.5, or 60 % image + 40 % white
NOISES = ('clean', 'noisy')                       # iid Gaussian pixel noise, σ = 20 / 255
BLURS = ('sharp', 'blurred')                      # Gaussian blur, radius 1 output pixel
CO_OBJECTS = ('none', 'dot', 'bar')               # a small cyan dot / bar in the top-left corner
CO_OBJECT_COLOUR = (0, 200, 200)
EXTENDED_FACTORS = {**FACTORS, 'background': tuple(ALL_BACKGROUNDS), 'rotation': tuple(ROTATIONS),
                    'outline': OUTLINES, 'brightness': BRIGHTNESS, 'noise': NOISES, 'blur': BLURS,
                    'co_object': CO_OBJECTS}
DEFAULTS = {'rotation': 'upright', 'outline': 'none', 'brightness': 'normal', 'noise': 'clean', 'blur': 'sharp',
            'co_object': 'none'}


@dataclasses.dataclass(frozen=True)
class Scene:
  """One scene: `count` copies of one object (count > 1 ignores `position`: objects are spread out)."""
  shape: str = 'circle'
  colour: str = 'red'
  size: str = 'large'
  position: str = 'center'
  background: str = 'black'
  texture: str = 'solid'
  count: int = 1
  rotation: str = 'upright'
  outline: str = 'none'
  brightness: str = 'normal'
  noise: str = 'clean'
  blur: str = 'sharp'
  co_object: str = 'none'

  def __post_init__(self):
    for name, values in EXTENDED_FACTORS.items():
      if getattr(self, name) not in values:
        raise ValueError(f'Scene.{name}={getattr(self, name)!r} is not one of {values}.')


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
  def ring(n, rad, phase):
    return [(cx + rad * math.cos(phase + 2 * math.pi * k / n), cy + rad * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]
  if shape == 'square':
    return ring(4, r * math.sqrt(2) * 0.85, math.pi / 4)
  if shape == 'triangle':
    return ring(3, r, -math.pi / 2)
  if shape == 'diamond':
    return ring(4, r, -math.pi / 2)
  if shape == 'hexagon':
    return ring(6, r, 0.0)
  if shape == 'star':
    outer, inner = ring(5, r, -math.pi / 2), ring(5, r * 0.42, -math.pi / 2 + math.pi / 5)
    return [p for pair in zip(outer, inner) for p in pair]
  if shape == 'cross':
    a, b = r, r * 0.35
    return [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx + b, cy + b),
            (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b), (cx - a, cy - b), (cx - b, cy - b)]
  raise ValueError(shape)


def _rotated(points: list[tuple[float, float]], cx: float, cy: float, degrees: float):
  if not degrees:
    return points
  a = math.radians(-degrees)   # image y points down: a negative angle turns the shape counter-clockwise
  c, s = math.cos(a), math.sin(a)
  return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def _draw_object(draw: ImageDraw.ImageDraw, scene: Scene, cx: float, cy: float, r: float, fill, bg,
                 outline=None, width: int = 0) -> None:
  """Fills the object (outline=None) or, given an outline colour, draws only its rim `width` pixels wide."""
  box = (cx - r, cy - r, cx + r, cy + r)
  if outline is not None:
    if scene.shape in ('circle', 'ring'):
      draw.ellipse(box, outline=outline, width=width)
    else:
      pts = _rotated(_polygon(scene.shape, cx, cy, r), cx, cy, ROTATIONS[scene.rotation])
      draw.line(pts + pts[:1], fill=outline, width=width, joint='curve')
    return
  if scene.shape == 'circle':
    draw.ellipse(box, fill=fill)
  elif scene.shape == 'ring':
    draw.ellipse(box, fill=fill)
    s = r * 0.55
    draw.ellipse((cx - s, cy - s, cx + s, cy + s), fill=bg)
  else:
    draw.polygon(_rotated(_polygon(scene.shape, cx, cy, r), cx, cy, ROTATIONS[scene.rotation]), fill=fill)


def _centres(scene: Scene, side: float, rng: np.random.Generator) -> list[tuple[float, float]]:
  jitter = lambda: rng.uniform(-0.05, 0.05) * side  # noqa: E731
  if scene.count == 1:
    x, y = POSITIONS[scene.position]
    return [(x * side + jitter(), y * side + jitter())]
  # count > 1: distinct random quadrant centres (large objects are drawn smaller in `render` to stay apart)
  slots = [(0.27, 0.27), (0.73, 0.73), (0.27, 0.73), (0.73, 0.27)]
  order = rng.permutation(len(slots))[:scene.count]
  return [(slots[i][0] * side + jitter() * 0.5, slots[i][1] * side + jitter() * 0.5) for i in order]


def render(scene: Scene, image_size: int = 32, seed: int = 0) -> np.ndarray:
  """uint8 [image_size, image_size, 3] image of the scene (deterministic in (scene, image_size, seed))."""
  rng = np.random.default_rng(seed)
  side = image_size * _SUPERSAMPLE
  bg = ALL_BACKGROUNDS[scene.background]
  img = Image.new('RGB', (side, side), bg)
  draw = ImageDraw.Draw(img)
  fill = COLOURS[scene.colour]
  r = SIZES[scene.size] * side / 2
  if scene.count > 1 and scene.size == 'large':
    r *= 0.55          # large copies in quadrants: keep them from overlapping
  for cx, cy in _centres(scene, side, rng):
    _draw_object(draw, scene, cx, cy, r, fill, bg)
    if scene.texture == 'striped':   # background-coloured horizontal stripes across the object
      obj = Image.new('L', (side, side), 0)
      _draw_object(ImageDraw.Draw(obj), scene, cx, cy, r, 255, 0)
      stripes = Image.new('L', (side, side), 0)
      sd = ImageDraw.Draw(stripes)
      period = max(8, int(r * 0.6))   # 5-6 stripes across any object
      for y0 in range(int(cy - r), int(cy + r) + 1, period):
        sd.rectangle((cx - r, y0, cx + r, y0 + period // 2 - 1), fill=255)
      mask = Image.fromarray(np.minimum(np.asarray(obj), np.asarray(stripes)))
      img.paste(Image.new('RGB', (side, side), bg), (0, 0), mask)
    if scene.outline == 'outlined':
      rim = (245, 245, 245) if sum(bg) < 3 * 128 else (10, 10, 10)
      _draw_object(draw, scene, cx, cy, r, fill, bg, outline=rim, width=max(2, int(side * 0.03)))
  if scene.co_object != 'none':
    x, y, q = 0.09 * side, 0.09 * side, 0.06 * side
    if scene.co_object == 'dot':
      draw.ellipse((x - q, y - q, x + q, y + q), fill=CO_OBJECT_COLOUR)
    else:
      draw.rectangle((x - q, y - q * 0.35, x + q * 1.6, y + q * 0.35), fill=CO_OBJECT_COLOUR)
  if scene.blur == 'blurred':
    img = img.filter(ImageFilter.GaussianBlur(radius=_SUPERSAMPLE * 1.0))
  out = np.asarray(img.resize((image_size, image_size), Image.Resampling.LANCZOS), np.uint8)
  if scene.brightness == 'normal' and scene.noise == 'clean':
    return out
  x = out.astype(np.float32)
  if scene.brightness == 'dark':
    x = x * 0.5
  elif scene.brightness == 'bright':
    x = x * 0.6 + 255.0 * 0.4
  if scene.noise == 'noisy':   # its own stream: the object jitter above is unchanged by the noise factor
    x = x + np.random.default_rng([seed, 11]).normal(0.0, 20.0, x.shape)
  return np.clip(np.round(x), 0, 255).astype(np.uint8)


def caption(scene: Scene) -> str:
  """One sentence naming every factor, e.g. 'two small red circles with stripes on a black background.'"""
  noun = scene.shape + ('es' if scene.shape.endswith('s') else 's') if scene.count > 1 else scene.shape
  texture = ' with stripes' if scene.texture == 'striped' else ''
  where = f', at the {scene.position}' if scene.count == 1 else ''
  return (f'{COUNT_WORDS[scene.count]} {scene.size} {scene.colour} {noun}{texture} on a {scene.background} '
          f'background{where}.')


def labels(scene: Scene) -> dict[str, int]:
  """Index of every factor value (the classification target of each factor)."""
  return {name: list(values).index(getattr(scene, name)) for name, values in FACTORS.items()}


def sample_scenes(n: int, seed: int, *, include: Iterable[tuple[str, str]] | None = None,
                  exclude: Iterable[tuple[str, str]] = (), shapes: Sequence[str] = SHAPES,
                  colours: Sequence[str] = tuple(COLOURS), textures: Sequence[str] = TEXTURES,
                  max_count: int = 3) -> list[Scene]:
  """n scenes, each factor uniform over its values (shapes, colours, textures and counts restricted as
  given); (shape, colour) drawn from `include` if given, never from `exclude`."""
  rng = np.random.default_rng(seed)
  excluded = set(exclude)
  combos = list(include) if include is not None else [(s, c) for s in shapes for c in colours]
  combos = [sc for sc in combos if sc not in excluded]
  if not combos:
    raise ValueError('sample_scenes: no (shape, colour) combination is left after include/exclude.')
  if not 1 <= max_count <= max(COUNTS):
    raise ValueError(f'sample_scenes: max_count={max_count} must be in 1..{max(COUNTS)}.')
  out = []
  for _ in range(n):
    shape, colour = combos[rng.integers(len(combos))]
    out.append(Scene(shape=shape, colour=colour, size=str(rng.choice(list(SIZES))),
                     position=str(rng.choice(list(POSITIONS))), background=str(rng.choice(list(BACKGROUNDS))),
                     texture=str(rng.choice(list(textures))), count=int(rng.integers(1, max_count + 1))))
  return out


def sample_extended_scenes(n: int, seed: int, *, shapes: Sequence[str] = SHAPES, **fixed) -> list[Scene]:
  """n scenes with every one of the 13 extended factors uniform over its values, except those in `fixed`
  (factor=value)."""
  unknown = sorted(set(fixed) - set(EXTENDED_FACTORS))
  if unknown:
    raise ValueError(f'sample_extended_scenes: unknown factors {unknown}; the factors are {list(EXTENDED_FACTORS)}.')
  rng = np.random.default_rng(seed)
  values = {**EXTENDED_FACTORS, 'shape': tuple(shapes)}
  out = []
  for _ in range(n):
    kw = {k: v[int(rng.integers(len(v)))] for k, v in values.items()}
    kw.update(fixed)
    out.append(Scene(**{k: int(v) if k == 'count' else str(v) for k, v in kw.items()}))
  return out


def held_out_combinations(num: int, seed: int, shapes: Sequence[str] = SHAPES,
                          colours: Sequence[str] = tuple(COLOURS)) -> list[tuple[str, str]]:
  """`num` (shape, colour) pairs to hold out, such that every shape and colour keeps training examples:
  a Latin-square-like choice (pair i = (shape i, colour (i·k + offset) mod C))."""
  rng = np.random.default_rng(seed)
  if num > len(shapes):
    raise ValueError(f'held_out_combinations: num={num} exceeds the {len(shapes)} shapes.')
  offset = int(rng.integers(len(colours)))
  picked = rng.permutation(len(shapes))[:num]
  return [(shapes[i], colours[(i * 3 + offset) % len(colours)]) for i in sorted(picked)]


def render_batch(scenes: Sequence[Scene], image_size: int, seed: int) -> np.ndarray:
  """float32 [n, image_size, image_size, 3] in [0, 1]; scene i uses seed (seed, i)."""
  seeds = [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(len(scenes))]
  return np.stack([render(s, image_size, seed=k) for s, k in zip(scenes, seeds)]).astype(np.float32) / 255.0
