"""Multi-head / grouped-query dot-product attention with capture, override and a KV cache.

`Attention` is the sequence mixer of `jaxlab.nn.lm.transformer`. Beyond plain (GQA) attention it offers:

* Capture: every call sows the post-softmax weights [batch, heads, q_len, kv_len] into the
  'intermediates' collection as `attention_weights` (get them with `mutable=['intermediates']`).
* Override: `head_override=(weights, use)` replaces the weights of the heads where `use` is True
  before they multiply the values (interpretability patching).
* Hooks: `hooks={'z': h, 'head_out': h}` passes each head's output before the output projection
  (z [batch, q_len, heads, head_dim]) and its contribution after it (W_O^h z_h [batch, q_len, heads,
  embed]) through callables `h(module, name, value) -> value` (see `apply_hook`, jaxlab.interp.hooks).
  Without hooks the computation is unchanged.
* Decoding: with `decode=True` keys/values are written to a fixed-size cache in the 'cache'
  collection and queries attend causally to the valid cached entries. A call may feed T >= 1 tokens
  (prefill, then one token at a time).

Masks are boolean, True = may attend, broadcastable to [batch, heads, q_len, kv_len]. The module
builds no mask itself outside decode mode: use `causal_mask`, `padding_mask` and `combine_masks`.
Masked logits are set to jnp.finfo(float32).min and the softmax runs in float32. A query row whose
keys are all masked gets all-zero weights (and hence a zero attention output before the output
bias) instead of NaN or a uniform average.

Cache overflow: the cache has `max_cache_len` slots. Feeding more than `max_cache_len` tokens in one
call raises a ValueError at trace time. The running `cache_index` is a traced value under jit, so a
Python exception is impossible there; instead a call that would write past the end returns NaN
outputs (never silently wrong numbers). Callers must bound the number of decode steps: with a
prompt of P tokens, at most `max_cache_len - P` further tokens fit (see `cache_has_room`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from jaxlab.nn import fast_attention
from jaxlab.nn.layers import RMSNorm, rope_1d, rope_2d

Array = jax.Array
Dtype = Any

_ROPE_KINDS = ('none', '1d', '2d')


def causal_mask(length: int) -> Array:
  """Lower-triangular mask: query i may attend to keys j <= i.

  Returns:
    [1, 1, length, length] bool.
  """
  return jnp.tril(jnp.ones((length, length), dtype=jnp.bool_))[None, None]


def padding_mask(valid: Array) -> Array:
  """Key mask from per-token validity.

  Args:
    valid: [batch, length] bool, False for padding tokens.

  Returns:
    [batch, 1, 1, length] bool: no query may attend to a padding key.
  """
  return valid.astype(jnp.bool_)[:, None, None, :]


def combine_masks(*masks: Array | None) -> Array | None:
  """Logical AND of broadcastable boolean masks; None entries are ignored (all None -> None)."""
  present = [m for m in masks if m is not None]
  if not present:
    return None
  out = present[0].astype(jnp.bool_)
  for m in present[1:]:
    out = jnp.logical_and(out, m.astype(jnp.bool_))
  return out


def sliding_window_mask(query_index: Array, key_index: Array, window: int) -> Array:
  """Local attention: query i may attend to key j only if i - j < window (Gemma / Mistral).

  Indices are sequence slots (as in Hugging Face's sliding-window masks), so with left padding the
  padding slots count towards the window. ANDed with the causal mask, each query sees itself and
  the window - 1 slots before it.

  Args:
    query_index: [q_len] int slot of each query.
    key_index: [kv_len] int slot of each key.
    window: window length (> 0).

  Returns:
    [1, 1, q_len, kv_len] bool.
  """
  return (query_index[:, None] - key_index[None, :] < window)[None, None]


def apply_hook(module: nn.Module, hooks: Any, name: str, x: Array) -> Array:
  """Passes activation `x` through `hooks[name]` if set, else returns `x` itself (costs nothing).

  A hook is a callable `(module, name, x) -> x` (jaxlab.interp.hooks.Hook: capture by `module.sow`,
  replace, add); `hooks` is None or a mapping from this module's site names to hooks.
  """
  if not hooks or name not in hooks:
    return x
  return hooks[name](module, name, x)


def cache_has_room(cache_index: Array, num_new_tokens: int, max_cache_len: int) -> Array:
  """Whether `num_new_tokens` more tokens fit in a cache at `cache_index` (jit-friendly bool).

  Args:
    cache_index: int32 scalar, e.g. `cache['layers_0']['attn']['cache_index']`.
    num_new_tokens: tokens about to be fed.
    max_cache_len: cache size.
  """
  return cache_index + num_new_tokens <= max_cache_len


def dot_product_attention_weights(query: Array, key: Array, mask: Array | None,
                                  scale: float | None = None) -> Array:
  """Masked softmax(q k^T / sqrt(d)) with grouped-query heads, computed in float32.

  Args:
    query: [batch, q_len, kv_heads, group, head_dim] (query head h = kv_head * group + g).
    key: [batch, kv_len, kv_heads, head_dim].
    mask: None or bool broadcastable to [batch, heads, q_len, kv_len].
    scale: multiplies q k^T instead of the default 1 / sqrt(head_dim) (Gemma's
      query_pre_attn_scalar ** -0.5).

  Returns:
    [batch, heads, q_len, kv_len] float32; fully masked rows are all zeros.
  """
  b, t, kvh, g, d = query.shape
  s = key.shape[1]
  logits = jnp.einsum('btkgd,bskd->bkgts', query, key, preferred_element_type=jnp.float32)
  logits = logits.astype(jnp.float32).reshape(b, kvh * g, t, s)
  logits = logits / jnp.sqrt(jnp.float32(d)) if scale is None else logits * jnp.float32(scale)
  if mask is None:
    return jax.nn.softmax(logits, axis=-1)
  mask = jnp.broadcast_to(mask, logits.shape)
  logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
  weights = jax.nn.softmax(logits, axis=-1)
  return jnp.where(jnp.any(mask, axis=-1, keepdims=True), weights, 0.)


class HeadsIn(nn.Module):
  """[batch, length, embed] -> [batch, length, heads, head_dim]; kernel [embed, heads, head_dim].

  Written out rather than nn.DenseGeneral: DenseGeneral initialises a flattened rank-2 kernel, and a
  logically partitioned initialiser then applies a rank-3 sharding constraint to it under a mesh.
  Same parameter names and the same fan-in (embed) initialisation as DenseGeneral.
  """
  heads: int
  head_dim: int
  use_bias: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    init = nn.initializers.lecun_normal(in_axis=0, out_axis=(1, 2))
    kernel = self.param('kernel', nn.with_logical_partitioning(init, ('embed', 'heads', 'kv')),
                        (x.shape[-1], self.heads, self.head_dim), self.param_dtype)
    # Rank-2 GEMM (see Mlp): [..., embed] -> [n, embed] @ [embed, heads·head_dim].
    flat = x.reshape(-1, x.shape[-1]).astype(self.dtype) @ kernel.reshape(x.shape[-1], -1).astype(self.dtype)
    y = flat.reshape(x.shape[:-1] + (self.heads, self.head_dim))
    if self.use_bias:
      bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros, ('heads', 'kv')),
                        (self.heads, self.head_dim), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class HeadsOut(nn.Module):
  """[batch, length, heads, head_dim] -> [batch, length, embed]; kernel [heads, head_dim, embed]."""
  features: int
  use_bias: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, per_head_hook: Any = None) -> Array:
    """Projects heads to features.

    Args:
      x: [..., heads, head_dim].
      per_head_hook: None, or a callable on the per-head contributions [..., heads, features]
        (bias excluded) whose result is summed over heads; without it one rank-2 GEMM.
    """
    init = nn.initializers.lecun_normal(in_axis=(0, 1), out_axis=2)
    kernel = self.param('kernel', nn.with_logical_partitioning(init, ('heads', 'kv', 'embed')),
                        (x.shape[-2], x.shape[-1], self.features), self.param_dtype)
    if per_head_hook is None:
      hd = x.shape[-2] * x.shape[-1]
      flat = x.reshape(-1, hd).astype(self.dtype) @ kernel.reshape(hd, self.features).astype(self.dtype)
      y = flat.reshape(x.shape[:-2] + (self.features,))
    else:
      per_head = jnp.einsum('...hd,hde->...he', x.astype(self.dtype), kernel.astype(self.dtype))
      y = jnp.sum(per_head_hook(per_head), axis=-2)
    if self.use_bias:
      bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros, ('embed',)),
                        (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class Attention(nn.Module):
  """Grouped-query dot-product attention (MHA when num_kv_heads == num_heads).

  Query head h reads key/value head h // (num_heads // num_kv_heads), as Hugging Face's repeat_kv
  does, so imported GQA checkpoints need no head permutation.

  Attributes:
    num_heads: query heads.
    num_kv_heads: key/value heads; must divide num_heads.
    head_dim: features per head.
    use_bias: biases on the query/key/value projections.
    out_bias: bias on the output projection.
    rope: 'none', '1d' (rope_1d on q and k at `positions` [batch, q_len]) or '2d' (rope_2d at
      `positions` [batch, q_len, 2] of (row, col); `rotate_mask` leaves tokens such as task tokens
      unrotated; not with decode).
    rope_base: RoPE wavelength base.
    dropout_rate: dropout on the attention weights (after capture and override).
    qk_norm: RMSNorm over head_dim on q and k (before RoPE), params `q_norm`, `k_norm`.
    qk_norm_eps: epsilon of those norms.
    sliding_window: if > 0, each query attends only to the `sliding_window` most recent slots,
      itself included (also in decode mode, over the cache); 0 = unlimited.
    query_scale: multiplies q k^T instead of 1 / sqrt(head_dim) when set.
    max_cache_len: KV-cache slots for decode mode (must be > 0 to decode).
    dtype: compute dtype.
    param_dtype: parameter dtype.
    implementation: 'reference' (the explicit float32 weights below) or a fast kernel of
      jaxlab.nn.fast_attention ('xla', 'cudnn', 'splash', 'auto'). The fast path is taken only where it
      computes the same thing: no head_override, 'intermediates' not mutable (no weight capture) and no
      attention dropout in training; otherwise the reference runs.
    causal: the module ANDs the causal mask itself outside decode mode (DecoderLM sets it with a fast
      implementation, so the kernel sees "causal" rather than a dense mask).
  """
  num_heads: int
  num_kv_heads: int
  head_dim: int
  use_bias: bool = False
  out_bias: bool = False
  rope: str = 'none'
  rope_base: float = 10000.
  dropout_rate: float = 0.
  qk_norm: bool = False
  qk_norm_eps: float = 1e-6
  sliding_window: int = 0
  query_scale: float | None = None
  max_cache_len: int = 0
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  implementation: str = 'reference'
  causal: bool = False

  def _check_config(self) -> None:
    if self.num_heads <= 0 or self.num_kv_heads <= 0 or self.head_dim <= 0:
      raise ValueError(f'num_heads ({self.num_heads}), num_kv_heads ({self.num_kv_heads}) and '
                       f'head_dim ({self.head_dim}) must be positive.')
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f'num_heads ({self.num_heads}) must be divisible by num_kv_heads '
                       f'({self.num_kv_heads}).')
    if self.rope not in _ROPE_KINDS:
      raise ValueError(f'Unknown rope {self.rope!r}; expected one of {_ROPE_KINDS}.')
    if self.implementation not in fast_attention.IMPLEMENTATIONS:
      raise ValueError(f'Unknown attention implementation {self.implementation!r}; expected one of '
                       f'{fast_attention.IMPLEMENTATIONS}.')

  def _proj(self, heads: int, name: str) -> HeadsIn:
    return HeadsIn(heads, self.head_dim, self.use_bias, self.dtype, self.param_dtype, name=name)

  def _qk_norm(self, name: str) -> RMSNorm:
    return RMSNorm(epsilon=self.qk_norm_eps, dtype=self.dtype, param_dtype=self.param_dtype,
                   param_axis='kv', name=name)

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None, positions: Array | None = None,
               deterministic: bool = True, decode: bool = False, padding: Array | None = None,
               head_override: tuple[Array, Array] | None = None,
               kv_x: Array | None = None, rotate_mask: Array | None = None,
               hooks: Any = None) -> Array:
    """Attends from `x` to itself (or to `kv_x`).

    Args:
      x: [batch, q_len, embed] queries (and keys/values unless `kv_x` is given).
      mask: optional bool [batch or 1, 1 or heads, q_len, kv_len], True = may attend; None means
        bidirectional. In decode mode kv_len is `max_cache_len` and it is ANDed with the cache mask.
      positions: [batch, q_len] RoPE positions (int or float). Defaults to arange(q_len), or in decode
        mode to cache_index + arange(q_len).
      deterministic: disables dropout when True (else a 'dropout' rng is needed).
      decode: use and update the 'cache' collection (pass mutable=['cache']).
      padding: optional [batch, q_len] bool, False = padding token. Such tokens are never attended
        to as keys (in decode mode they are stored as invalid cache entries).
      head_override: None or (weights [batch, heads, q_len, kv_len], use [heads] bool): for heads
        with use True the post-softmax weights are replaced by `weights` before multiplying V.
      kv_x: optional [batch, kv_len, embed] source of keys/values (cross-attention; not with decode
        or rope).
      rotate_mask: optional [batch, q_len] bool for rope='2d': False = leave the token unrotated.
      hooks: None or a mapping with keys among 'z' (per-head outputs before the output projection,
        [batch, q_len, heads, head_dim]) and 'head_out' (per-head contributions W_O^h z_h, [batch,
        q_len, heads, embed], summed into the output; the output bias is added after the sum), each a
        hook `(module, name, value) -> value` (see `apply_hook`).

    Returns:
      [batch, q_len, embed] in `dtype`.
    """
    self._check_config()
    b, t, embed = x.shape
    kvh, group = self.num_kv_heads, self.num_heads // self.num_kv_heads
    if kv_x is not None and (decode or self.rope != 'none'):
      raise ValueError('kv_x (cross-attention) is not supported with decode=True or rope.')
    kv_src = x if kv_x is None else kv_x

    q = self._proj(self.num_heads, 'query')(x)          # [b, t, heads, d]
    k = self._proj(kvh, 'key')(kv_src)                  # [b, s, kv_heads, d]
    v = self._proj(kvh, 'value')(kv_src)                # [b, s, kv_heads, d]
    q = nn.with_logical_constraint(q, ('batch', 'length', 'heads', 'kv'))
    k = nn.with_logical_constraint(k, ('batch', 'length', 'heads', 'kv'))
    v = nn.with_logical_constraint(v, ('batch', 'length', 'heads', 'kv'))
    if self.qk_norm:
      q, k = self._qk_norm('q_norm')(q), self._qk_norm('k_norm')(k)

    if decode:
      cache = self._cache_variables(b)
      if positions is None:
        start = cache['cache_index'].value
        positions = jnp.broadcast_to(start + jnp.arange(t, dtype=jnp.int32), (b, t))
    elif positions is None:
      positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    if self.rope == '1d':
      q = rope_1d(q, positions, self.rope_base)
      k = rope_1d(k, positions, self.rope_base)
    elif self.rope == '2d':
      if decode or positions.ndim != 3:
        raise ValueError("rope='2d' needs explicit positions [batch, q_len, 2] and decode=False.")
      q = rope_2d(q, positions, self.rope_base, rotate_mask)
      k = rope_2d(k, positions, self.rope_base, rotate_mask)

    if decode:
      k, v, mask, overflow = self._update_cache(cache, k, v, mask, padding)
    else:
      mask = combine_masks(mask, None if padding is None else padding_mask(padding))
      if self.sliding_window > 0:
        slots = jnp.arange(t, dtype=jnp.int32)
        mask = combine_masks(mask, sliding_window_mask(slots, jnp.arange(k.shape[1], dtype=jnp.int32),
                                                       self.sliding_window))

    causal = self.causal and not decode
    if self._use_fast(head_override, deterministic):
      encoded = fast_attention.attend(q, k, v.astype(self.dtype), mask, causal=causal, scale=self.query_scale,
                                      implementation=self.implementation).astype(self.dtype)
    else:
      if causal:
        mask = combine_masks(causal_mask(t), mask)
      q = q.reshape(b, t, kvh, group, self.head_dim)
      weights = dot_product_attention_weights(q, k, mask, self.query_scale)  # [b, heads, t, s] float32
      self.sow('intermediates', 'attention_weights', weights)
      if head_override is not None:
        new_weights, use = head_override
        weights = jnp.where(jnp.asarray(use, jnp.bool_)[None, :, None, None],
                            new_weights.astype(jnp.float32), weights)
      weights = nn.Dropout(self.dropout_rate)(weights, deterministic=deterministic)

      s = k.shape[1]
      weights = weights.astype(self.dtype).reshape(b, kvh, group, t, s)
      encoded = jnp.einsum('bkgts,bskd->btkgd', weights, v.astype(self.dtype))
    encoded = encoded.reshape(b, t, self.num_heads, self.head_dim)
    encoded = nn.with_logical_constraint(encoded, ('batch', 'length', 'heads', 'kv'))
    if hooks:
      unknown = set(hooks) - {'z', 'head_out'}
      if unknown:
        raise ValueError(f"Unknown attention hook sites {sorted(unknown)}; expected 'z' or 'head_out'.")
      encoded = apply_hook(self, hooks, 'z', encoded)
    per_head_hook = None
    if hooks and 'head_out' in hooks:
      per_head_hook = lambda y: apply_hook(self, hooks, 'head_out', y)  # pylint: disable=unnecessary-lambda-assignment
    out = HeadsOut(embed, self.out_bias, self.dtype, self.param_dtype, name='out')(encoded, per_head_hook)
    if decode:
      out = jnp.where(overflow, jnp.nan, out).astype(out.dtype)
    return nn.with_logical_constraint(out, ('batch', 'length', 'embed'))

  def _use_fast(self, head_override, deterministic: bool) -> bool:
    """The fast kernel computes what the reference would: no override, no capture, no weight dropout."""
    if self.implementation == 'reference':
      return False
    return (head_override is None and not self.is_mutable_collection('intermediates')
            and (deterministic or self.dropout_rate == 0.))

  # ------------------------------------------------------------------------------------------------
  # KV cache.
  # ------------------------------------------------------------------------------------------------

  def _cache_variables(self, batch: int) -> dict[str, Any]:
    """The 'cache' variables, created zero-filled on first use."""
    if self.max_cache_len <= 0:
      raise ValueError(f'decode=True needs max_cache_len > 0, got {self.max_cache_len}.')
    shape = (batch, self.max_cache_len, self.num_kv_heads, self.head_dim)
    return {
        'cached_key': self.variable('cache', 'cached_key', jnp.zeros, shape, self.dtype),
        'cached_value': self.variable('cache', 'cached_value', jnp.zeros, shape, self.dtype),
        'cached_valid': self.variable('cache', 'cached_valid', jnp.zeros, shape[:2], jnp.bool_),
        'cache_index': self.variable('cache', 'cache_index', lambda: jnp.array(0, jnp.int32)),
    }

  def _update_cache(self, cache: dict[str, Any], k: Array, v: Array, mask: Array | None,
                    padding: Array | None):
    """Writes k/v [batch, T, kv_heads, head_dim] at cache_index and builds the decode mask.

    Returns:
      (keys, values) [batch, max_cache_len, kv_heads, head_dim], the mask
      [batch, 1|heads, T, max_cache_len], and a bool scalar that is True if the write overflowed.
    """
    b, t = k.shape[:2]
    if t > self.max_cache_len:
      raise ValueError(f'Cannot feed {t} tokens to a KV cache of max_cache_len={self.max_cache_len}.')
    cached_key, cached_value = cache['cached_key'], cache['cached_value']
    cached_valid, cache_index = cache['cached_valid'], cache['cache_index']
    idx = cache_index.value
    valid_new = jnp.ones((b, t), jnp.bool_) if padding is None else padding.astype(jnp.bool_)

    zero = jnp.zeros((), jnp.int32)
    keys = jax.lax.dynamic_update_slice(cached_key.value, k.astype(cached_key.value.dtype),
                                        (zero, idx, zero, zero))
    values = jax.lax.dynamic_update_slice(cached_value.value, v.astype(cached_value.value.dtype),
                                          (zero, idx, zero, zero))
    valid = jax.lax.dynamic_update_slice(cached_valid.value, valid_new, (zero, idx))
    if not self.is_initializing():  # init only creates the zero-filled cache.
      cached_key.value, cached_value.value, cached_valid.value = keys, values, valid
      cache_index.value = idx + t

    query_index = idx + jnp.arange(t, dtype=jnp.int32)                  # absolute slot of each query
    slots = jnp.arange(self.max_cache_len, dtype=jnp.int32)
    causal = slots[None, :] <= query_index[:, None]                     # [T, max_cache_len]
    decode_mask = jnp.logical_and(causal[None, None], valid[:, None, None, :])
    if self.sliding_window > 0:
      decode_mask = combine_masks(decode_mask, sliding_window_mask(query_index, slots, self.sliding_window))
    overflow = idx + t > self.max_cache_len
    return keys, values, combine_masks(decode_mask, mask), overflow
