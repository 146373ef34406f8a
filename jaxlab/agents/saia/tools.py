"""SAIA's tools, as an LLM agent would call them: score, generate (text → image), edit, exemplars, describe.

* `generate(prompt, n)`: a structured-prompt renderer standing in for text-to-image: the prompt's phrases
  (`PHRASES`: 'a tilted red star on a navy background with a dot') fix those factors, every factor the
  prompt does not name is drawn uniformly (as a text-to-image model fills in what a prompt leaves open).
* `edit(images, change)`: the same scenes re-rendered with the same seeds and one or more factors changed
  (the stand-in for instruction-based image editing).
* `exemplars(k)`: the k top-scoring images of a fixed pool of random scenes (the paper's dataset exemplars).
* `describe(images)`: captions (jaxlab.data.scenes.caption), which name only the original 7 factors, so
  rotation, outline, brightness, noise, blur and the co-occurring object are invisible to the describer:
  an agent must find them by experiment.
* `score(images)`: the model under study, on images that carry their scenes (the wired models read the
  attribute from the scene).

Every call is counted (`calls`), so experiments can report how many images an agent used.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import numpy as np

from jaxlab.agents.saia.benchmark import ScoreFn
from jaxlab.data import scenes as S

COUNT_PHRASES = {1: 'one', 2: 'two', 3: 'three'}
_VALUE_PHRASES = {
    'size': {v: v for v in S.SIZES}, 'texture': {'solid': 'solid', 'striped': 'striped'},
    'rotation': {'upright': 'upright', 'tilted': 'tilted'}, 'outline': {'none': 'borderless', 'outlined': 'outlined'},
    'brightness': {'normal': 'normally lit', 'dark': 'dark', 'bright': 'bright'},
    'noise': {'clean': 'clean', 'noisy': 'noisy'}, 'blur': {'sharp': 'sharp', 'blurred': 'blurred'},
    'co_object': {'none': 'alone', 'dot': 'with a dot', 'bar': 'with a bar'},
    'position': {p: f'at the {p}' for p in S.POSITIONS}, 'count': COUNT_PHRASES,
    'background': {b: f'{b} background' for b in S.ALL_BACKGROUNDS}, 'colour': {c: c for c in S.COLOURS},
    'shape': {s: s for s in S.SHAPES},
}
PHRASES: dict[str, dict] = _VALUE_PHRASES   # factor -> value -> the phrase that names it in a prompt
_ORDER = ('count', 'size', 'brightness', 'noise', 'blur', 'rotation', 'outline', 'texture', 'colour', 'shape',
          'position', 'background', 'co_object')


def prompt_for(values: Mapping[str, object]) -> str:
  """A prompt naming exactly the given factors, e.g. {'shape': 'star', 'noise': 'noisy'} -> 'noisy star'."""
  unknown = sorted(set(values) - set(PHRASES))
  if unknown:
    raise ValueError(f'prompt_for: unknown factors {unknown}')
  parts = []
  for k in _ORDER:
    if k in values:
      if k == 'background':
        parts.append('on a ' + PHRASES[k][values[k]])
      else:
        parts.append(PHRASES[k][values[k]])
  return ' '.join(parts)


def parse_prompt(prompt: str) -> dict[str, object]:
  """The factors a prompt names (longest phrases first; plurals of shapes accepted); a factor named twice
  with different values is a ValueError naming both."""
  text = ' ' + re.sub(r'[^a-z ]', ' ', prompt.lower()) + ' '
  text = re.sub(r'(cross|circle|square|triangle|diamond|star|hexagon|ring)(es|s) ', r'\1 ', text)
  text = text.replace(' on a ', ' on ')
  found: dict[str, object] = {}
  phrases = [(p, k, v) for k, d in PHRASES.items() for v, p in d.items()] + [('with stripes', 'texture', 'striped')]
  phrases = sorted(phrases, key=lambda t: -len(t[0]))
  for phrase, k, v in phrases:
    pat = f' {phrase} '
    while pat in text:
      if k in found and found[k] != v:
        raise ValueError(f'parse_prompt: {prompt!r} names {k} twice ({found[k]!r} and {v!r})')
      found[k] = v
      text = text.replace(pat, ' | ', 1)
  if 'count' not in found and re.search(r' (a|an) ', text):
    found['count'] = 1
  return found


@dataclasses.dataclass(frozen=True)
class Images:
  """A batch of rendered images with their scenes and render seeds: pixels [n, H, W, 3] float32 in [0, 1]."""
  pixels: np.ndarray
  scenes: tuple[S.Scene, ...]
  seeds: tuple[int, ...]

  def __len__(self) -> int:
    return len(self.scenes)

  def take(self, idx: Sequence[int]) -> 'Images':
    idx = list(idx)
    return Images(self.pixels[idx], tuple(self.scenes[i] for i in idx), tuple(self.seeds[i] for i in idx))


def render(scenes: Sequence[S.Scene], seeds: Sequence[int], image_size: int) -> Images:
  px = np.stack([S.render(s, image_size, seed=int(k)) for s, k in zip(scenes, seeds)]).astype(np.float32) / 255.0
  return Images(px, tuple(scenes), tuple(int(k) for k in seeds))


class Toolbox:
  """The tools over one model (see module docstring). Deterministic in `seed`: the k-th generate call draws
  its unnamed factors and render seeds from (seed, k)."""

  def __init__(self, score_fn: ScoreFn, image_size: int, *, pool_size: int = 1000, seed: int = 0,
               pool: Images | None = None, pool_scores: np.ndarray | None = None):
    self._score_fn, self.image_size, self.seed = score_fn, int(image_size), int(seed)
    self.calls = {'score': 0, 'generate': 0, 'edit': 0, 'exemplars': 0, 'describe': 0}
    self.images_scored = 0
    self._generated = 0
    if pool is None:
      sc = S.sample_extended_scenes(pool_size, seed=self.seed + 7919)
      pool = render(sc, [self.seed * 100003 + i for i in range(len(sc))], self.image_size)
    self.pool = pool
    self._pool_scores = None if pool_scores is None else np.asarray(pool_scores, np.float64)  # precomputed

  def score(self, images: Images) -> np.ndarray:
    self.calls['score'] += 1
    self.images_scored += len(images)
    if not len(images):
      return np.zeros((0,))
    return np.asarray(self._score_fn(images.pixels, images.scenes), np.float64)

  def generate(self, prompt: str, n: int = 1) -> Images:
    self.calls['generate'] += 1
    fixed = parse_prompt(prompt)
    k = self._generated
    self._generated += 1
    shapes = (fixed.pop('shape'),) if 'shape' in fixed else S.SHAPES
    scenes = S.sample_extended_scenes(n, seed=int(np.random.SeedSequence([self.seed, k]).generate_state(1)[0]),
                                      shapes=shapes, **fixed)
    if 'position' in fixed and 'count' not in fixed:   # a named position implies a single object
      scenes = [dataclasses.replace(s, count=1) for s in scenes]
    seeds = [int(np.random.SeedSequence([self.seed, k, i, 1]).generate_state(1)[0]) for i in range(n)]
    return render(scenes, seeds, self.image_size)

  def edit(self, images: Images, change: Mapping[str, object]) -> Images:
    self.calls['edit'] += 1
    bad = sorted(set(change) - set(S.EXTENDED_FACTORS))
    if bad:
      raise ValueError(f'edit: unknown factors {bad}; the factors are {list(S.EXTENDED_FACTORS)}')
    scenes = [dataclasses.replace(s, **change) for s in images.scenes]
    if 'position' in change:
      scenes = [dataclasses.replace(s, count=1) for s in scenes]
    return render(scenes, images.seeds, self.image_size)

  def exemplars(self, k: int = 15) -> tuple[Images, np.ndarray]:
    """The top-k pool images by score and their scores (best first)."""
    self.calls['exemplars'] += 1
    if self._pool_scores is None:
      self._pool_scores = np.asarray(self._score_fn(self.pool.pixels, self.pool.scenes), np.float64)
    order = np.argsort(-self._pool_scores, kind='stable')[:k]
    return self.pool.take(order), self._pool_scores[order]

  def describe(self, images: Images) -> list[str]:
    self.calls['describe'] += 1
    return [S.caption(s) for s in images.scenes]
