"""Functional interchangeability of circuit components (after Haklay et al., arXiv 2603.20101).

The paper proposes judging an explainer's grouping of circuit components by whether components grouped
together are functionally interchangeable; its exact formula is not public. This is jaxlab's definition:

* components are attention heads (layer, head); o_h = W_O^h z_h is head h's contribution to the residual
  stream ('layers_{l}/attn/head_out'), cached on the clean run;
* swap(h <- h'): the same clean input, with o_h replaced at every position by the cached o_h' (h' keeps its
  own output); r(h, h') = M_swap / M_clean with M the task metric (IOI: the mean logit difference IO - S);
  r(h, h) = 1 exactly (the swap with h' = h is the identity);
* I(C) = mean r over ordered pairs h != h' in one cluster - mean r over pairs in different clusters;
* the null: I of >= 1000 random partitions with the same cluster sizes (label permutations), giving a
  z-score and the percentile of I(C) among them.

Why a second score, `score='fidelity'` (f = 1 - |r - 1|, 1 when the swap leaves M unchanged): signed r
cancels over ordered pairs. To first order M_swap - M_clean ~ g . (o_h' - o_h), so where the read-out
gradient g is shared (direct effects, one layer) r(h, h') - 1 ~ -(r(h', h) - 1) and the mean of r over
the ordered pairs of ANY cluster is ~1: replacing a positive head by a negative one (r < 1) and back
(r > 1) average out, and I(C) ~ 0 for every partition. |r - 1| counts both directions as a failure to
interchange. `match_norm=True` in `swap_ratios` rescales o_h' to |o_h| at each position (swap the
direction, keep the magnitude), separating "same function" from "same size".

`ComponentExplainer` and `Clusterer` are where an LLM research agent plugs in; `FeatureClusterer` is the
offline stand-in (k-means on standardised per-head features: attention to the task's token roles, direct
logit attribution, per-position patching effect), and `describe_features` its rule-based explainer.
"""

from __future__ import annotations

import functools
from typing import Mapping, Protocol, Sequence

import numpy as np

import jax
import jax.numpy as jnp

from jaxlab.interp import hooks as H
from jaxlab.interp.patching import Metric, head_site, run_with_cache
from jaxlab.nn.lm.transformer import DecoderLM

Component = tuple[int, int]   # (layer, head)

__all__ = ['Component', 'ComponentExplainer', 'Clusterer', 'FeatureClusterer', 'cache_head_outputs',
           'swap_ratios', 'SCORES', 'swap_score', 'swap_main_effects', 'interchangeability',
           'random_partition_null', 'describe_features', 'kmeans']


def cache_head_outputs(model: DecoderLM, params, tokens, components: Sequence[Component]) -> np.ndarray:
  """[k, batch, length, embed]: o_h = W_O^h z_h of each component on one forward of tokens [batch, length]."""
  layers = sorted({l for l, _ in components})
  _, cap = run_with_cache(model, params, tokens, [head_site(l, 'head_out') for l in layers])
  return np.stack([np.asarray(cap[head_site(l, 'head_out')][:, :, h]) for l, h in components])


@functools.partial(jax.jit, static_argnames=('model', 'metric', 'layers', 'num_pairs'))
def _swap_batch(model: DecoderLM, params, tokens, values, masks, metric: Metric, layers: tuple[int, ...],
                num_pairs: int):
  """M per pair: the batch is tiled num_pairs times; row block p carries swap p's value and head mask."""
  tiled = jnp.tile(tokens, (num_pairs, 1))
  hooks = H.merge(*[H.replace(head_site(l, 'head_out'), values[l], where=masks[l]) for l in layers])
  logits, _ = H.run(model, {'params': params}, tiled, hooks=hooks, last_only=True)
  per_row = metric(logits[:, -1]) if num_pairs == 1 else jax.vmap(metric)(
      logits[:, -1].reshape(num_pairs, tokens.shape[0], -1)).reshape(-1)
  return jnp.mean(per_row.reshape(num_pairs, tokens.shape[0]), axis=1)


def swap_ratios(model: DecoderLM, params, tokens, metric: Metric, components: Sequence[Component], *,
                pairs_per_call: int = 8, include_diagonal: bool = False,
                match_norm: bool = False) -> dict[str, np.ndarray | float]:
  """r(h, h') = M(o_h <- cached o_h') / M_clean for every ordered pair of components.

  Args:
    tokens: [batch, length] clean prompts (the swaps use their own cached outputs: same input, positions).
    metric: per-prompt metric of the last logits; it sees one prompt block [batch, vocab] per swap.
    components: (layer, head) pairs.
    pairs_per_call: swaps evaluated in one forward (the batch is tiled that many times).
    include_diagonal: also run the h' = h swaps (identity: r = 1 up to float error), as a check.
    match_norm: rescale the cached o_h' to o_h's norm at each row and position before the swap.

  Returns:
    {'r': [k, k] ratios (diagonal 1 unless measured), 'm_swap': [k, k], 'm_clean': M_clean}.
  """
  tokens = jnp.asarray(tokens, jnp.int32)
  b, t = tokens.shape
  k = len(components)
  cfg = model.config
  cached = jnp.asarray(cache_head_outputs(model, params, tokens, components))     # [k, b, t, e]
  logits, _ = run_with_cache(model, params, tokens, [])
  m_clean = float(jnp.mean(metric(logits)))
  pairs = [(i, j) for i in range(k) for j in range(k) if include_diagonal or i != j]
  layers = tuple(sorted({l for l, _ in components}))
  m_swap = np.full((k, k), m_clean)
  for start in range(0, len(pairs), pairs_per_call):
    chunk = pairs[start:start + pairs_per_call]
    chunk = chunk + [chunk[-1]] * (pairs_per_call - len(chunk))   # pad: one compiled shape
    values, masks = {}, {}
    for l in layers:
      val = jnp.zeros((pairs_per_call, b, t, 1, cfg.embed_dim), cached.dtype)
      mask = np.zeros((pairs_per_call, b, 1, cfg.num_heads), bool)
      for p, (i, j) in enumerate(chunk):
        li, hi = components[i]
        if li == l:
          donor = cached[j]
          if match_norm:
            donor = donor * (jnp.linalg.norm(cached[i], axis=-1, keepdims=True)
                             / jnp.maximum(jnp.linalg.norm(donor, axis=-1, keepdims=True), 1e-12))
          val = val.at[p, :, :, 0].set(donor)
          mask[p, :, 0, hi] = True
      values[l] = val.reshape(pairs_per_call * b, t, 1, cfg.embed_dim)
      masks[l] = jnp.asarray(mask.reshape(pairs_per_call * b, 1, cfg.num_heads))
    ms = np.asarray(_swap_batch(model, params, tokens, values, masks, metric, layers, pairs_per_call))
    for p, (i, j) in enumerate(chunk[:len(pairs[start:start + pairs_per_call])]):
      m_swap[i, j] = ms[p]
  return {'r': m_swap / m_clean, 'm_swap': m_swap, 'm_clean': m_clean}


SCORES = ('r', 'fidelity')


def swap_score(r: np.ndarray, score: str = 'r') -> np.ndarray:
  """The per-pair score I averages: 'r' (r itself) or 'fidelity' (1 - |r - 1|: 1 when the swap keeps M)."""
  if score not in SCORES:
    raise ValueError(f'score must be one of {SCORES}, got {score!r}')
  r = np.asarray(r, np.float64)
  return r if score == 'r' else 1.0 - np.abs(r - 1.0)


def swap_main_effects(r: np.ndarray) -> dict[str, float]:
  """How much of the off-diagonal variance of r(h, h') one head explains: R^2 of the row means (which head
  is replaced, h), of the column means (which head stands in, h'), and of both (additive). A row R^2 near 1
  says r mostly measures "how much does removing h hurt", leaving little pair-specific signal to cluster."""
  r = np.asarray(r, np.float64)
  x = np.where(~np.eye(len(r), dtype=bool), r, np.nan)
  rows, cols, mu = np.nanmean(x, 1), np.nanmean(x, 0), np.nanmean(x)
  total = np.nanvar(x)
  if not total > 0:
    return {'row_r2': float('nan'), 'col_r2': float('nan'), 'row_col_r2': float('nan')}

  def r2(fit):
    return float(1 - np.nanvar(x - fit) / total)
  return {'row_r2': r2(rows[:, None]), 'col_r2': r2(cols[None, :]), 'row_col_r2': r2(rows[:, None] + cols[None] - mu)}


def interchangeability(r: np.ndarray, labels: Sequence[int], score: str = 'r') -> float:
  """I(C) = mean score(h, h') over h != h' in one cluster - mean over pairs in different clusters
  (nan when there is no within pair or no across pair); score 'r' or 'fidelity' (see `swap_score`)."""
  r = swap_score(r, score)
  lab = np.asarray(labels)
  if r.shape != (len(lab), len(lab)):
    raise ValueError(f'r is {r.shape} for {len(lab)} labels')
  same = lab[:, None] == lab[None, :]
  off = ~np.eye(len(lab), dtype=bool)
  within, across = r[same & off], r[~same]
  if within.size == 0 or across.size == 0:
    return float('nan')
  return float(within.mean() - across.mean())


def random_partition_null(r: np.ndarray, labels: Sequence[int], num: int = 1000,
                          seed: int = 0, score: str = 'r') -> dict[str, float | list[float]]:
  """I(C) against `num` random partitions of the same cluster sizes (uniform label permutations);
  score as in `interchangeability`.

  Returns {'I': I(C), 'null_mean', 'null_std', 'z': (I - mean) / std, 'percentile': the % of null
  values <= I (ties count half), 'num': num, 'null': the values}."""
  if num < 1:
    raise ValueError(f'num must be >= 1, got {num}')
  lab = np.asarray(labels)
  rng = np.random.default_rng(seed)
  r = swap_score(r, score)
  perms = np.stack([rng.permutation(lab) for _ in range(num)])               # [num, k]
  same = perms[:, :, None] == perms[:, None, :]                              # [num, k, k]
  off = ~np.eye(len(lab), dtype=bool)
  w, a = same & off, ~same
  null = (np.einsum('nij,ij->n', w, r) / w.sum((1, 2)) - np.einsum('nij,ij->n', a, r) / a.sum((1, 2)))
  value = interchangeability(r, lab)   # r already holds the scores
  std = float(null.std())
  return {'I': value, 'null_mean': float(null.mean()), 'null_std': std,
          'z': float((value - null.mean()) / std) if std > 0 else float('nan'),
          'percentile': float(100 * (np.mean(null < value) + 0.5 * np.mean(null == value))),
          'num': num, 'null': null.tolist()}


class ComponentExplainer(Protocol):
  """Explains one component's role from its features (an LLM agent or `describe_features`)."""

  def explain(self, component: Component, features: Mapping[str, float]) -> str:
    ...


class Clusterer(Protocol):
  """Groups components by function: one integer label per component."""

  def cluster(self, components: Sequence[Component], features: np.ndarray,
              feature_names: Sequence[str]) -> list[int]:
    ...


def kmeans(x: np.ndarray, k: int, seed: int = 0, restarts: int = 10, iters: int = 100) -> tuple[np.ndarray, float]:
  """(labels [n], inertia) of Lloyd's k-means with k-means++ seeding, best of `restarts`."""
  x = np.asarray(x, np.float64)
  n = len(x)
  if not 1 <= k <= n:
    raise ValueError(f'k must be in 1..{n}, got {k}')
  rng = np.random.default_rng(seed)
  best = (None, np.inf)
  for _ in range(restarts):
    centres = [x[rng.integers(n)]]
    for _ in range(k - 1):
      d2 = np.min(((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
      centres.append(x[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else x[rng.integers(n)])
    c = np.asarray(centres)
    for _ in range(iters):
      lab = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
      new = np.array([x[lab == j].mean(0) if np.any(lab == j) else c[j] for j in range(k)])
      if np.allclose(new, c):
        break
      c = new
    inertia = float(((x - c[lab]) ** 2).sum())
    if inertia < best[1]:
      best = (lab, inertia)
  return best[0], best[1]


def _silhouette(x: np.ndarray, lab: np.ndarray) -> float:
  d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
  s = []
  for i in range(len(x)):
    own = lab == lab[i]
    if own.sum() <= 1:
      s.append(0.0)
      continue
    a = d[i, own & (np.arange(len(x)) != i)].mean()
    b = min(d[i, lab == j].mean() for j in np.unique(lab) if j != lab[i])
    s.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
  return float(np.mean(s))


class FeatureClusterer:
  """The offline clusterer: k-means on z-scored features, k fixed or chosen by silhouette in k_range."""

  def __init__(self, k: int | None = None, k_range: Sequence[int] = (2, 3, 4, 5), seed: int = 0):
    self.k, self.k_range, self.seed = k, tuple(k_range), seed

  def cluster(self, components: Sequence[Component], features: np.ndarray,
              feature_names: Sequence[str] = ()) -> list[int]:
    x = np.asarray(features, np.float64)
    if x.shape[0] != len(components):
      raise ValueError(f'features has {x.shape[0]} rows for {len(components)} components')
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    if self.k is not None:
      return kmeans(x, self.k, self.seed)[0].tolist()
    ks = [k for k in self.k_range if 2 <= k < len(x)]
    if not ks:
      return [0] * len(x)
    fits = [kmeans(x, k, self.seed)[0] for k in ks]
    scores = [_silhouette(x, lab) for lab in fits]
    return fits[int(np.argmax(scores))].tolist()


def describe_features(component: Component, features: Mapping[str, float]) -> str:
  """The offline ComponentExplainer: a one-line, rule-based role description from the named features
  ('attn:<role>' attention from the last position to a token role, 'dla' direct logit attribution,
  'effect:<role>' the patching effect at a role's positions)."""
  attn = {k[5:]: v for k, v in features.items() if k.startswith('attn:')}
  eff = {k[7:]: v for k, v in features.items() if k.startswith('effect:')}
  parts = [f'L{component[0]}H{component[1]}']
  if attn:
    role, w = max(attn.items(), key=lambda kv: kv[1])
    parts.append(f'attends from the last token mostly to {role} ({w:.2f})')
  if 'dla' in features:
    d = features['dla']
    parts.append(f'{"raises" if d > 0 else "lowers"} the metric directly (DLA {d:+.2f})')
  if eff:
    role, e = max(eff.items(), key=lambda kv: abs(kv[1]))
    parts.append(f'its effect sits at {role} ({e:+.2f})')
  return '; '.join(parts)
