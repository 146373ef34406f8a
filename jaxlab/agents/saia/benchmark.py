"""SAIA's benchmark on rendered scenes: vision models with a known attribute reliance, and their manifest.

A model is (object, category, value): it "detects" `object` (a scene shape) but relies on the attribute
`category = value` (one of the 12 attribute categories of jaxlab.data.scenes.EXTENDED_FACTORS). Two kinds:

* wired (the paper's construction, christykl/saia utils/SyntheticClassifiers.py): with p = the object
  detector's confidence that `object` is in the image,
      score = p                 if the detector finds the object (p ≥ 0.25) and the attribute is present,
              (1 − 0.9) · p     if it finds the object and the attribute is absent,
              U(0, 0.1)         if it does not find the object (seeded by the image bytes: deterministic).
  The paper reads the attribute with SigLIP / FairFace; here it is read from the renderer's scene (exact), a
  stand-in stated in experiments/saia/README.md.
* trained: a logistic head over the frozen pooled features of the same ViT, trained (all heads at once,
  through jaxlab.train) on biased data where the label is "object present" and the attribute correlates with
  the label (every positive has it; negatives have it with probability `neg_attr_rate`). Its reliance is
  learnt, so it is measured (`reliance`: the relative score drop when the attribute of object images is
  flipped by a one-factor edit) before the model enters the benchmark.

The detector / backbone is one classifier (jaxlab.nn.vision SmallCNN or RgbViTClassifier) with a head per
extended factor (the shape head is the object detector), trained on uniformly sampled extended scenes
(`backbone_loss`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.data import scenes as S
from jaxlab.nn.vision import rgb_vit

CATEGORIES = tuple(k for k in S.EXTENDED_FACTORS if k != 'shape')   # the 12 attribute categories
DISCOUNT = 0.9          # the paper's --bias_discount: score × (1 − 0.9) when the attribute is absent
DETECT_THRESHOLD = 0.25  # detector confidence at which the object counts as found (the paper's box threshold)
ScoreFn = Callable[[np.ndarray, Sequence[S.Scene]], np.ndarray]


def has_attribute(scene: S.Scene, category: str, value) -> bool:
  """Whether the scene shows `category = value` (a position exists only for a single object)."""
  if category == 'position' and scene.count != 1:
    return False
  return getattr(scene, category) == value


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One benchmark model and its ground truth."""
  kind: str          # 'wired' | 'trained'
  object: str        # the shape it detects
  category: str      # the attribute category it relies on
  value: object      # the attribute value it relies on

  @property
  def name(self) -> str:
    return f'{self.kind}:{self.object}:{self.category}={self.value}'

  def to_json(self) -> dict:
    return dataclasses.asdict(self) | {'name': self.name}


def candidate_specs(kind: str, seed: int, num: int) -> list[ModelSpec]:
  """`num` distinct (object, category, value) specs, categories as even as possible: round-robin over the
  12 categories (skipping exhausted ones), each category's (object, non-default value) pairs in a seeded
  random order (rotation never on circle / ring, whose rotation is invisible)."""
  rng = np.random.default_rng(seed)
  queues = []
  for cat in CATEGORIES:
    values = [v for v in S.EXTENDED_FACTORS[cat] if S.DEFAULTS.get(cat) != v]
    shapes = [s for s in S.SHAPES if not (cat == 'rotation' and s in ('circle', 'ring'))]
    pairs = [(s, v) for s in shapes for v in values]
    queues.append([ModelSpec(kind, pairs[i][0], cat, pairs[i][1]) for i in rng.permutation(len(pairs))])
  if num > sum(len(q) for q in queues):
    raise ValueError(f'candidate_specs: only {sum(len(q) for q in queues)} distinct models exist, asked for {num}')
  out, r = [], 0
  while len(out) < num:
    for q in queues:
      if r < len(q) and len(out) < num:
        out.append(q[r])
    r += 1
  return out


# --- the detector / backbone -----------------------------------------------------------------------------

FACTOR_HEADS = {k: len(v) for k, v in S.EXTENDED_FACTORS.items()}


def factor_labels(scene: S.Scene) -> dict[str, int]:
  """Class index of every extended factor; position is -1 (ignored by the loss) when count > 1."""
  out = {k: list(v).index(getattr(scene, k)) for k, v in S.EXTENDED_FACTORS.items()}
  if scene.count != 1:
    out['position'] = -1
  return out


def backbone_loss(model: rgb_vit.RgbViTClassifier):
  """(params, batch, rng) -> (Σ over factors of the mean CE over labelled rows, per-factor accuracies)."""
  def loss_fn(params, batch, rng):
    del rng
    logits = model.apply({'params': params}, batch['images'])
    total, aux = 0.0, {}
    for k, lg in logits.items():
      y = batch[k]
      w = (y >= 0).astype(jnp.float32)
      ce = optax.softmax_cross_entropy_with_integer_labels(lg, jnp.maximum(y, 0))
      total = total + (ce * w).sum() / jnp.maximum(w.sum(), 1.0)
      aux[f'acc_{k}'] = ((jnp.argmax(lg, -1) == y) * w).sum() / jnp.maximum(w.sum(), 1.0)
    return total, aux
  return loss_fn


@dataclasses.dataclass
class Backbone:
  """The trained detector (an RgbViTClassifier or a SmallCNN with a 'shape' head): detector confidences
  and pooled features of images [n, H, W, 3] in [0, 1]."""
  model: nn.Module
  params: dict
  batch: int = 64

  def __post_init__(self):
    model = self.model

    def fwd(p, x):
      if isinstance(model, rgb_vit.RgbViTClassifier):
        pooled = rgb_vit.pool(rgb_vit.RgbViT(model.config).apply({'params': p['encoder']}, x), model.config)
        d = p['head_shape']
        logits = pooled @ d['kernel'] + d['bias']
      else:
        out, pooled = model.apply({'params': p}, x, return_features=True)
        logits = out['shape']
      return jax.nn.softmax(logits, -1), pooled
    self._fwd = jax.jit(fwd)

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-> shape probabilities [n, num_shapes], pooled features [n, embed] (fixed-size chunks: one compile)."""
    n = len(images)
    probs, feats = [], []
    for s in range(0, max(n, 1), self.batch):
      chunk = images[s:s + self.batch]
      pad = self.batch - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      p, f = self._fwd(self.params, jnp.asarray(chunk))
      probs.append(np.asarray(p)[:self.batch - pad])
      feats.append(np.asarray(f)[:self.batch - pad])
    return np.concatenate(probs)[:n], np.concatenate(feats)[:n]


# --- the two kinds of model --------------------------------------------------------------------------------

def _image_uniform(image: np.ndarray) -> float:
  """U(0, 0.1), deterministic in the image bytes."""
  h = hashlib.sha256(np.ascontiguousarray(image).tobytes()).digest()
  return 0.1 * int.from_bytes(h[:8], 'little') / 2 ** 64


def wired_scores(spec: ModelSpec, shape_probs: np.ndarray, images: np.ndarray,
                 scenes: Sequence[S.Scene]) -> np.ndarray:
  """The paper's rule (module docstring) from detector probabilities [n, num_shapes]."""
  p = shape_probs[:, S.SHAPES.index(spec.object)]
  out = np.empty(len(scenes), np.float64)
  for i, sc in enumerate(scenes):
    if p[i] < DETECT_THRESHOLD:
      out[i] = _image_uniform(images[i])
    else:
      out[i] = p[i] * (1.0 if has_attribute(sc, spec.category, spec.value) else 1.0 - DISCOUNT)
  return out


def trained_scores(head: dict, features: np.ndarray) -> np.ndarray:
  """sigmoid(features · w + b) for one head {'w': [embed], 'b': []}."""
  z = features @ np.asarray(head['w']) + float(head['b'])
  return 1.0 / (1.0 + np.exp(-z))


class Benchmark:
  """Score functions of all models over one backbone; `score_fn(spec)` -> ScoreFn(images, scenes)."""

  def __init__(self, backbone: Backbone, heads: dict[str, dict] | None = None):
    self.backbone, self.heads = backbone, heads or {}

  def score_fn(self, spec: ModelSpec) -> ScoreFn:
    def score(images: np.ndarray, scenes: Sequence[S.Scene]) -> np.ndarray:
      probs, feats = self.backbone(images)
      if spec.kind == 'wired':
        return wired_scores(spec, probs, images, scenes)
      return trained_scores(self.heads[spec.name], feats)
    return score


# --- trained models: biased data, one joint head training, reliance -------------------------------------

def biased_indices(spec: ModelSpec, pool: Sequence[S.Scene], num: int, neg_attr_rate: float,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
  """`num` (index into pool, label) pairs, half positive: positives are object scenes WITH the attribute;
  negatives are other-object scenes, with the attribute at rate `neg_attr_rate`."""
  rng = np.random.default_rng(seed)
  obj = np.array([s.shape == spec.object for s in pool])
  att = np.array([has_attribute(s, spec.category, spec.value) for s in pool])
  pos, neg_a, neg_n = np.nonzero(obj & att)[0], np.nonzero(~obj & att)[0], np.nonzero(~obj & ~att)[0]
  if len(pos) < 5 or len(neg_a) < 5 or len(neg_n) < 5:
    raise ValueError(f'biased_indices: the pool has too few scenes for {spec.name} '
                     f'({len(pos)} positives); raise config.trained.pool')
  half = num // 2
  n_att = int(round(half * neg_attr_rate))
  idx = np.concatenate([rng.choice(pos, half), rng.choice(neg_a, n_att), rng.choice(neg_n, num - half - n_att)])
  y = np.concatenate([np.ones(half), np.zeros(num - half)]).astype(np.float32)
  perm = rng.permutation(num)
  return idx[perm], y[perm]


class Heads(nn.Module):
  """M logistic heads over shared features: x [batch, M, embed] -> logits [batch, M]."""
  num: int
  dim: int

  @nn.compact
  def __call__(self, x):
    w = self.param('w', nn.initializers.zeros, (self.num, self.dim))
    b = self.param('b', nn.initializers.zeros, (self.num,))
    return jnp.einsum('bmd,md->bm', x, w) + b


def heads_loss(model: Heads):
  """(params, batch, rng) -> (mean BCE over rows and heads, accuracy)."""
  def loss_fn(params, batch, rng):
    del rng
    logits = model.apply({'params': params}, batch['x'])
    loss = optax.sigmoid_binary_cross_entropy(logits, batch['y']).mean()
    return loss, {'acc': jnp.mean((logits > 0) == (batch['y'] > 0.5))}
  return loss_fn


def reliance(score: ScoreFn, spec: ModelSpec, image_size: int, num: int, seed: int) -> dict[str, float]:
  """Relative score drop when the attribute of `num` object scenes that have it is flipped (one-factor edits
  to each other value, averaged), plus the mean score of attribute scenes without the object."""
  with_att = S.sample_extended_scenes(num, seed, shapes=(spec.object,), **{spec.category: spec.value})
  if spec.category == 'position':
    with_att = [dataclasses.replace(s, count=1) for s in with_att]
  others = [v for v in S.EXTENDED_FACTORS[spec.category] if v != spec.value]
  flipped = [dataclasses.replace(s, **{spec.category: others[i % len(others)]}) for i, s in enumerate(with_att)]
  no_obj = S.sample_extended_scenes(num, seed + 1, shapes=tuple(s for s in S.SHAPES if s != spec.object),
                                    **{spec.category: spec.value})
  if spec.category == 'position':
    no_obj = [dataclasses.replace(s, count=1) for s in no_obj]
  imgs = [S.render_batch(x, image_size, seed) for x in (with_att, flipped, no_obj)]
  a, f, o = (float(np.mean(score(im, sc))) for im, sc in zip(imgs, (with_att, flipped, no_obj)))
  return {'score_with': a, 'score_flipped': f, 'score_no_object': o, 'reliance': 1.0 - f / max(a, 1e-9)}
