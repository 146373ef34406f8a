"""Activation hooks for `DecoderLM`: capture, replace and add at named sites.

Sites (`hook_sites(config)` lists them in forward order):

  'embeddings'                  [batch, length, embed]  input embeddings (after `inputs_embeds`)
  'layers_{i}/resid_pre'        [batch, length, embed]  residual stream entering block i
  'layers_{i}/attn/z'           [batch, length, heads, head_dim]  each head's output before W_O
  'layers_{i}/attn/head_out'    [batch, length, heads, embed]     each head's contribution W_O^h z_h
  'layers_{i}/attn_out'         [batch, length, embed]  attention output (sum of head_out + o bias)
  'layers_{i}/resid_mid'        [batch, length, embed]  residual after the attention add
  'layers_{i}/mlp_out'          [batch, length, embed]  MLP output
  'layers_{i}/resid_post'       [batch, length, embed]  residual leaving block i
  'final_hidden'                [batch, length, embed]  final norm output (what the head reads)

Usage (everything is a pure function of arrays, so it jits, shards and batches as the model does):

  hooks = H.merge(H.capture('layers_3/resid_post'),
                  H.replace('layers_5/resid_pre', value, where=mask),      # mask [batch, length]
                  H.add('layers_7/resid_post', steer),                     # steer [embed]: everywhere
                  H.replace('layers_9/attn/z', 0., where=H.head_mask(9, [4])))
  logits, captured = jax.jit(H.run, static_argnums=0)(model, {'params': p}, tokens, hooks=hooks)
  captured['layers_3/resid_post']   # [batch, length, embed]

`where` is a boolean mask over the leading axes of the site (a prefix of its shape, broadcastable:
[batch, length] picks positions, [1, 1, heads] picks heads of a per-head site), or with
`index=True` an int array of positions along the length axis ([k], or [batch, k] per row) with
`value` [batch|1, k, ...]. Values, masks and indices are leaves of the hooks pytree, hence traced
arguments of the jitted function: new values never recompile; only the set of sites, the kind of
each hook and the array shapes are static. Capture records a site's value before that site's own
intervention. In decode mode (KV cache) sites cover only the tokens of the current call, so masks and
indices refer to those.

Why explicit arguments + `sow` and not `nn.intercept_methods`: most sites are not module-method
boundaries (the residual stream between the two adds of a Block, z_h inside Attention, the per-head
contributions that the output GEMM never materialises), so an interceptor could not reach them
without splitting the modules into more methods. Replacement values must be traced inputs of the
jitted function and must pass through `nn.remat` (jax.checkpoint) around each Block: as arguments of
the Block they do, while an interceptor's closure or a Python-side capture inside a checkpointed
function would leak tracers. Capture uses `sow` into the 'hooks' collection, which flax lifts
through remat and jit like any variable collection. The hook sites are written in the model code
(`apply_hook` in jaxlab.nn.attention), so what can be hooked is greppable; with `hooks=None` each
site returns its input untouched and the traced program is exactly the unhooked one.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
from flax import struct
from flax import traverse_util
import jax
import jax.numpy as jnp

from jaxlab.nn.lm.transformer import DecoderLM, hook_sites

Array = jax.Array
COLLECTION = 'hooks'
_KINDS = (None, 'replace', 'add')

__all__ = ['COLLECTION', 'Hook', 'add', 'capture', 'head_mask', 'hook_sites', 'merge', 'replace', 'run']


@struct.dataclass
class Hook:
  """What happens at one site: optional capture, then optional replace/add.

  Attributes:
    value: the replacement / addend, broadcastable to the selected activations (None for capture).
    where: None (every position), a bool mask over a prefix of the site's axes, or (by_index) int
      positions [k] or [batch, k] along the length axis.
    kind: None, 'replace' or 'add' (static).
    capture: sow the site's value into the 'hooks' collection (static).
    by_index: `where` holds indices rather than a mask (static).
  """
  value: Any = None
  where: Any = None
  kind: str | None = struct.field(pytree_node=False, default=None)
  capture: bool = struct.field(pytree_node=False, default=False)
  by_index: bool = struct.field(pytree_node=False, default=False)

  def __post_init__(self):
    if self.kind not in _KINDS:
      raise ValueError(f'Hook kind must be one of {_KINDS}, got {self.kind!r}.')
    if self.kind is not None and self.value is None:
      raise ValueError(f'A {self.kind!r} hook needs a value.')
    if self.by_index and self.where is None:
      raise ValueError('by_index=True needs the position indices in `where`.')

  def __call__(self, module: nn.Module, name: str, x: Array) -> Array:
    if self.capture:
      module.sow(COLLECTION, name, x, reduce_fn=lambda _, v: v, init_fn=lambda: None)
    if self.kind is None:
      return x
    value = jnp.asarray(self.value, x.dtype)
    if self.by_index:
      idx = jnp.asarray(self.where, jnp.int32)
      if idx.ndim == 1:                         # the same positions in every row
        rows = slice(None)
      elif idx.ndim == 2:                       # [batch, k]: per-row positions
        rows = jnp.arange(x.shape[0])[:, None]
      else:
        raise ValueError(f'Index positions must be [k] or [batch, k], got shape {idx.shape}.')
      target = x.at[rows, idx]
      value = jnp.broadcast_to(value, x[rows, idx].shape)
      return target.set(value) if self.kind == 'replace' else target.add(value)
    if self.where is None:
      return jnp.broadcast_to(value, x.shape) if self.kind == 'replace' else x + value
    mask = jnp.asarray(self.where, jnp.bool_)
    if mask.ndim > x.ndim:
      raise ValueError(f'Mask of rank {mask.ndim} for a site of shape {x.shape}.')
    mask = mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))
    if self.kind == 'replace':
      return jnp.where(mask, value, x)
    return x + jnp.where(mask, value, jnp.zeros((), x.dtype))


def capture(*sites: str) -> dict[str, Hook]:
  """Capture-only hooks at `sites`."""
  return {s: Hook(capture=True) for s in sites}


def _intervention(kind: str, site: str, value, where, index: bool) -> dict[str, Hook]:
  if index and where is None:
    raise ValueError('index=True needs the positions in `where`.')
  return {site: Hook(value=value, where=where, kind=kind, by_index=index)}


def replace(site: str, value, where=None, *, index: bool = False) -> dict[str, Hook]:
  """Replaces the site's activations with `value` where `where` selects (everywhere if None)."""
  return _intervention('replace', site, value, where, index)


def add(site: str, value, where=None, *, index: bool = False) -> dict[str, Hook]:
  """Adds `value` to the site's activations where `where` selects (everywhere if None)."""
  return _intervention('add', site, value, where, index)


def merge(*hook_sets: Mapping[str, Hook]) -> dict[str, Hook]:
  """Unites hook dicts; one site may be captured and carry at most one intervention."""
  out: dict[str, Hook] = {}
  for hooks in hook_sets:
    for site, h in hooks.items():
      if site not in out:
        out[site] = h
        continue
      prev = out[site]
      if prev.kind is not None and h.kind is not None:
        raise ValueError(f'Site {site!r} has two interventions; combine them into one value.')
      main = prev if prev.kind is not None else h
      out[site] = main.replace(capture=prev.capture or h.capture)
  return out


def head_mask(num_heads: int, heads: Sequence[int]) -> Array:
  """[1, 1, num_heads] bool mask selecting `heads` of a per-head site at every row and position."""
  return jnp.zeros((1, 1, num_heads), jnp.bool_).at[0, 0, jnp.asarray(list(heads), jnp.int32)].set(True)


def run(model: DecoderLM, variables: Mapping[str, Any], *args, hooks: Mapping[str, Hook],
        mutable: Sequence[str] = (), **kwargs):
  """`model.apply` with hooks; returns (output, {site: captured array}[, updated collections]).

  Args:
    model: the DecoderLM (static under jit).
    variables: {'params': ...} (plus 'cache' for decoding).
    *args, **kwargs: forwarded to the model (tokens, decode=..., inputs_embeds=..., ...).
    hooks: {site: Hook} from capture / replace / add / merge.
    mutable: other collections to update (e.g. ['cache'] with decode=True); when given, the updated
      collections are returned as a third element.
  """
  mutable = list(mutable)
  out, state = model.apply(variables, *args, hooks=hooks, mutable=[COLLECTION] + mutable, **kwargs)
  state = dict(state)
  captured = traverse_util.flatten_dict(dict(state.pop(COLLECTION, {})), sep='/')
  return (out, captured, state) if mutable else (out, captured)
