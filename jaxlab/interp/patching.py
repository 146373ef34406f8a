"""Activation patching, attribution patching and head ranking on a `DecoderLM` (through jaxlab.interp.hooks).

Vocabulary (Heimersheim & Nanda's, as in the IOI / greater-than circuit papers):

* a *metric* maps the last position's logits [batch, vocab] to one number per prompt [batch]
  (e.g. `logit_diff(answer, wrong)`: logit(IO) - logit(S) for IOI); the task metric M is its batch mean;
* *patching* runs the model on `base` tokens and replaces activations at chosen sites / heads / positions
  with those of a *donor* run (same shapes): base = corrupted, donor = clean is *denoising* (how much of the
  clean behaviour one component restores); base = clean, donor = corrupted is *noising* (how much the
  behaviour drops when one component sees the corrupted input). `patch_heads` and `patch_positions` take
  both as arguments, so either direction is one call;
* *attribution patching* (Nanda 2023; Syed et al. 2023) approximates every head's patching effect at once
  by a first-order Taylor expansion around the base run: effect(h, t) ~ (z_donor - z_base)[t, h] . dM/dz[t, h],
  with one forward + backward on the base run and one forward on the donor run;
* *direct logit attribution* (DLA): head h's contribution W_O^h z_h at the last position, pushed through
  the final norm with its scale frozen, dotted with dM/d(final hidden).

Every intervention value and mask is a traced argument of one jitted function per (site set, shape), so a
sweep over 30 layers x 9 heads compiles once and only re-runs.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import numpy as np

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.interp import hooks as H
from jaxlab.nn.lm.transformer import DecoderLM

Array = jax.Array
Metric = Callable[[Array], Array]   # last-position logits [batch, vocab] -> [batch]

__all__ = ['Metric', 'logit_diff', 'prob_mass_diff', 'head_site', 'run_with_cache', 'metric_value',
           'patch_heads', 'patch_positions', 'patch_masks', 'attribution_heads', 'direct_logit_attribution', 'rank_heads',
           'normalised', 'spearman']


def head_site(layer: int, kind: str = 'z') -> str:
  """The per-head hook site of `layer`: kind 'z' ([b, t, heads, head_dim]) or 'head_out' ([b, t, heads, embed])."""
  if kind not in ('z', 'head_out'):
    raise ValueError(f"head site kind must be 'z' or 'head_out', got {kind!r}")
  return f'layers_{layer}/attn/{kind}'


def logit_diff(answer: Sequence[int] | np.ndarray, wrong: Sequence[int] | np.ndarray) -> Metric:
  """Per-prompt logit(answer) - logit(wrong); answer, wrong: token ids [batch]."""
  a, w = jnp.asarray(answer, jnp.int32), jnp.asarray(wrong, jnp.int32)

  def metric(logits: Array) -> Array:
    rows = jnp.arange(logits.shape[0])
    return logits[rows, a] - logits[rows, w]
  return metric


def prob_mass_diff(good: np.ndarray, bad: np.ndarray) -> Metric:
  """Per-prompt P(good set) - P(bad set) under the softmax; good, bad: bool masks [batch, vocab] (the
  greater-than paper's probability difference, restricted to the token sets the caller marks)."""
  g, b = jnp.asarray(good, jnp.float32), jnp.asarray(bad, jnp.float32)

  def metric(logits: Array) -> Array:
    p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.sum(p * g, -1) - jnp.sum(p * b, -1)
  return metric


@functools.partial(jax.jit, static_argnames=('model', 'sites'))
def _cache(model: DecoderLM, params, tokens: Array, sites: tuple[str, ...]):
  logits, cap = H.run(model, {'params': params}, tokens, hooks=H.capture(*sites), last_only=True)
  return logits[:, -1], cap


def run_with_cache(model: DecoderLM, params, tokens, sites: Sequence[str]) -> tuple[Array, dict[str, Array]]:
  """(last-position logits [batch, vocab], {site: activations}) of one forward on tokens [batch, length]."""
  return _cache(model, params, jnp.asarray(tokens, jnp.int32), tuple(sites))


def metric_value(metric: Metric, last_logits: Array) -> float:
  """The task metric M: the batch mean of `metric`."""
  return float(jnp.mean(metric(last_logits)))


@functools.partial(jax.jit, static_argnames=('model', 'metric', 'sites'))
def _patched(model: DecoderLM, params, tokens, values, masks, metric: Metric, sites: tuple[str, ...]):
  hooks = H.merge(*[H.replace(s, values[s], where=masks[s]) for s in sites])
  logits, _ = H.run(model, {'params': params}, tokens, hooks=hooks, last_only=True)
  return jnp.mean(metric(logits[:, -1]))


def patch_heads(model: DecoderLM, params, base_tokens, donor_cache: dict[str, Array], metric: Metric, *,
                layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                positions: Sequence[int] | np.ndarray | None = None, kind: str = 'z') -> np.ndarray:
  """Patches one head at a time (its `kind` output at `positions`) from the donor run into the base run.

  Args:
    model, params: the DecoderLM and its params.
    base_tokens: [batch, length] int token ids of the run being patched.
    donor_cache: {head_site(l, kind): [batch, length, heads, d]} from `run_with_cache` on the donor tokens.
    metric: per-prompt metric of the last position's logits (a fixed object: it is a static jit argument).
    layers, heads: the grid to sweep (default every layer and head).
    positions: None (every position) or the positions to patch (the same in every row), or a bool mask
      [batch, length] (per row, e.g. a token role).

  Returns:
    [len(layers), len(heads)] float64: the task metric M after patching each head.
  """
  cfg = model.config
  layers = list(range(cfg.num_layers)) if layers is None else list(layers)
  heads = list(range(cfg.num_heads)) if heads is None else list(heads)
  tokens = jnp.asarray(base_tokens, jnp.int32)
  b, t = tokens.shape
  sites = tuple(head_site(l, kind) for l in layers)
  missing = [s for s in sites if s not in donor_cache]
  if missing:
    raise ValueError(f'donor_cache lacks {missing[:3]}{"..." if len(missing) > 3 else ""}: capture them with '
                     'run_with_cache on the donor tokens')
  pos = _position_mask(positions, b, t)                                   # [b, t] bool
  values = {s: donor_cache[s] for s in sites}
  off = jnp.zeros((b, t, cfg.num_heads), jnp.bool_)
  out = np.zeros((len(layers), len(heads)))
  for i, l in enumerate(layers):
    for j, h in enumerate(heads):
      sel = pos[:, :, None] & (jnp.arange(cfg.num_heads) == h)[None, None, :]
      masks = {s: (sel if s == head_site(l, kind) else off) for s in sites}
      out[i, j] = float(_patched(model, params, tokens, values, masks, metric, sites))
  return out


def _position_mask(positions, b: int, t: int) -> Array:
  if positions is None:
    return jnp.ones((b, t), jnp.bool_)
  p = np.asarray(positions)
  if p.dtype == np.bool_:
    if p.shape != (b, t):
      raise ValueError(f'a position mask must be [batch, length] = {(b, t)}, got {p.shape}')
    return jnp.asarray(p)
  if p.ndim != 1 or (p.size and (p.min() < -t or p.max() >= t)):
    raise ValueError(f'positions must be indices in [-{t}, {t}) of one row, got {positions!r}')
  return jnp.zeros((b, t), jnp.bool_).at[:, jnp.asarray(p % t, jnp.int32)].set(True)


def patch_positions(model: DecoderLM, params, base_tokens, donor_cache: dict[str, Array], metric: Metric,
                    site_template: str = 'layers_{layer}/resid_pre', *,
                    layers: Sequence[int] | None = None, positions: Sequence[int] | None = None) -> np.ndarray:
  """Patches one (layer, position) of a residual-shaped site at a time from the donor run.

  Args:
    site_template: a [batch, length, embed] site with a `{layer}` field (resid_pre, attn_out, mlp_out, ...).
    donor_cache: {site: [batch, length, embed]} of the donor run for every layer swept.
    layers, positions: the grid (default every layer, every position).

  Returns:
    [len(layers), len(positions)] float64: the task metric after each patch.
  """
  cfg = model.config
  layers = list(range(cfg.num_layers)) if layers is None else list(layers)
  tokens = jnp.asarray(base_tokens, jnp.int32)
  b, t = tokens.shape
  positions = list(range(t)) if positions is None else list(positions)
  sites = tuple(site_template.format(layer=l) for l in layers)
  missing = [s for s in sites if s not in donor_cache]
  if missing:
    raise ValueError(f'donor_cache lacks {missing[:3]}: capture them with run_with_cache on the donor tokens')
  values = {s: donor_cache[s] for s in sites}
  off = jnp.zeros((b, t), jnp.bool_)
  out = np.zeros((len(layers), len(positions)))
  for i, s0 in enumerate(sites):
    for j, p in enumerate(positions):
      masks = {s: (off.at[:, p].set(True) if s == s0 else off) for s in sites}
      out[i, j] = float(_patched(model, params, tokens, values, masks, metric, sites))
  return out


def patch_masks(model: DecoderLM, params, base_tokens, donor_cache: dict[str, Array], metric: Metric,
                site: str, masks: Sequence[np.ndarray]) -> np.ndarray:
  """Patches `site` from the donor run at the positions of each mask in turn (e.g. one token role per
  mask, [batch, length] bool, per-row positions); returns [len(masks)] task metrics."""
  tokens = jnp.asarray(base_tokens, jnp.int32)
  if site not in donor_cache:
    raise ValueError(f'donor_cache lacks {site!r}: capture it with run_with_cache on the donor tokens')
  out = []
  for m in masks:
    mask = _position_mask(np.asarray(m, bool), *tokens.shape)
    out.append(float(_patched(model, params, tokens, {site: donor_cache[site]}, {site: mask}, metric, (site,))))
  return np.asarray(out)


@functools.partial(jax.jit, static_argnames=('model', 'metric', 'sites'))
def _grad_run(model: DecoderLM, params, tokens, metric: Metric, sites: tuple[str, ...]):
  """M, the captured per-head sites and final hidden/residual, and dM/d(site) at each site of `sites`."""
  cfg = model.config
  b, t = tokens.shape
  last = f'layers_{cfg.num_layers - 1}/resid_post'

  def f(deltas):
    hooks = H.merge(H.capture(*sites, last), *[H.add(s, deltas[s]) for s in sites])
    logits, cap = H.run(model, {'params': params}, tokens, hooks=hooks, last_only=True)
    return jnp.mean(metric(logits[:, -1])), cap

  shapes = jax.eval_shape(lambda: H.run(model, {'params': params}, tokens, hooks=H.capture(*sites),
                                        last_only=True)[1])
  zeros = {s: jnp.zeros(shapes[s].shape, shapes[s].dtype) for s in sites}
  (m, cap), grads = jax.value_and_grad(f, has_aux=True)(zeros)
  return m, cap, grads


def attribution_heads(model: DecoderLM, params, base_tokens, donor_tokens, metric: Metric, *,
                      kind: str = 'z') -> dict[str, np.ndarray]:
  """Attribution patching of every head and position: one forward + backward on the base run and one
  forward on the donor run.

  Returns:
    {'effect': [layers, heads] the estimated M(patched) - M(base) for patching each head at every position,
     'per_position': [layers, length, heads] the same estimate split by position (summed over rows),
     'per_row_position': [batch, layers, length, heads] each row's share of it (M is the batch mean, so
       the rows sum to 'per_position'; read a token role whose position differs per row from this),
     'base_metric': M of the base run, 'donor_metric': M of the donor run}.
  """
  cfg = model.config
  sites = tuple(head_site(l, kind) for l in range(cfg.num_layers))
  base, donor = jnp.asarray(base_tokens, jnp.int32), jnp.asarray(donor_tokens, jnp.int32)
  if base.shape != donor.shape:
    raise ValueError(f'base and donor tokens must have one shape, got {base.shape} and {donor.shape}')
  m, cap, grads = _grad_run(model, params, base, metric, sites)
  donor_logits, dcap = run_with_cache(model, params, donor, sites)
  per_row = np.stack([np.asarray(jnp.sum((dcap[s] - cap[s]) * grads[s], axis=-1)) for s in sites], 1)
  per_pos = per_row.sum(0)
  return {'effect': per_pos.sum(1), 'per_position': per_pos, 'per_row_position': per_row,
          'base_metric': float(m),
          'donor_metric': metric_value(metric, donor_logits)}


def direct_logit_attribution(model: DecoderLM, params, tokens, metric: Metric) -> np.ndarray:
  """[layers, heads]: each head's direct effect on M at the last position (batch mean), through the final
  RMSNorm with its 1/rms frozen at the run's value: W_O^h z_h . (scale / rms) * dM/d(final hidden).
  Exact for a metric linear in the logits (a logit difference) up to the frozen norm."""
  cfg = model.config
  if cfg.norm != 'rms':
    raise ValueError(f'direct_logit_attribution handles the RMSNorm final norm, got norm={cfg.norm!r}')
  sites = tuple(head_site(l, 'head_out') for l in range(cfg.num_layers))
  tokens = jnp.asarray(tokens, jnp.int32)
  m, cap, grads = _grad_run(model, params, tokens, metric, ('final_hidden',))
  last = cap[f'layers_{cfg.num_layers - 1}/resid_post'][:, -1]                     # [b, embed]
  inv_rms = jax.lax.rsqrt(jnp.mean(jnp.square(last.astype(jnp.float32)), -1, keepdims=True) + cfg.norm_eps)
  scale = jnp.asarray(nn.meta.unbox(params['final_norm']['scale']))
  direction = grads['final_hidden'][:, -1] * scale * inv_rms   # [b, embed]
  _, hcap = run_with_cache(model, params, tokens, sites)
  return np.stack([np.asarray(jnp.einsum('bhe,be->h', hcap[s][:, -1], direction)) for s in sites])


def normalised(patched: np.ndarray, base_metric: float, donor_metric: float) -> np.ndarray:
  """(M_patched - M_base) / (M_donor - M_base): 1 = the patch moves M all the way to the donor's value."""
  return (np.asarray(patched) - base_metric) / (donor_metric - base_metric)


def rank_heads(effect: np.ndarray, k: int | None = None) -> list[tuple[int, int]]:
  """Heads (layer, head) of a [layers, heads] effect grid by decreasing |effect| (the first k)."""
  flat = np.argsort(-np.abs(np.asarray(effect)).ravel(), kind='stable')
  out = [tuple(int(x) for x in np.unravel_index(i, effect.shape)) for i in flat]
  return out if k is None else out[:k]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
  """Spearman rank correlation of two equally shaped arrays (average ranks for ties)."""
  def ranks(x):
    x = np.asarray(x, np.float64).ravel()
    order = np.argsort(x, kind='stable')
    r = np.empty_like(x)
    r[order] = np.arange(len(x))
    for v in np.unique(x):   # average tied ranks
      tie = x == v
      if tie.sum() > 1:
        r[tie] = r[tie].mean()
    return r
  ra, rb = ranks(a), ranks(b)
  return float(np.corrcoef(ra, rb)[0, 1])
