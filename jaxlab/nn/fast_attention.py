"""The fast attention path: fused / flash kernels instead of materialised float32 weights.

`jaxlab.nn.attention.Attention` keeps its reference computation (explicit float32 softmax weights, which
capture and head override need) and calls `attend` here when its `implementation` is not 'reference':

* 'xla'    – `jax.nn.dot_product_attention(implementation='xla')`: one fused op on every backend;
* 'cudnn'  – the same op's cuDNN flash attention (NVIDIA GPUs; bfloat16/float16 inputs);
* 'splash' – the Pallas splash-attention kernel on TPU (jax.experimental.pallas.ops.tpu.splash_attention):
  O(length) memory, for causal or unmasked attention without padding; any other mask falls back to 'xla';
* 'auto'   – 'cudnn' on GPU, 'splash' on TPU, 'xla' elsewhere.

Semantics equal the reference: grouped-query heads (query head h uses kv head h // group), boolean masks
(True = may attend) broadcastable to [batch, heads, q_len, kv_len], an optional causal flag, and a query row
whose keys are all masked gives zeros (the reference's convention) rather than an average of the values.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

Array = jax.Array

IMPLEMENTATIONS = ('reference', 'xla', 'cudnn', 'splash', 'auto')


def resolve(implementation: str, backend: str | None = None) -> str:
  """'auto' -> the kernel of the backend ('cudnn' on GPU, 'splash' on TPU, else 'xla'); others unchanged."""
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f'attention implementation {implementation!r} is not one of {IMPLEMENTATIONS}')
  if implementation != 'auto':
    return implementation
  backend = backend or jax.default_backend()
  return {'gpu': 'cudnn', 'cuda': 'cudnn', 'tpu': 'splash'}.get(backend, 'xla')


def _causal(t: int, s: int, offset: int = 0) -> Array:
  """[1, 1, t, s]: query i (slot offset + i) may attend to key j <= offset + i."""
  return (jnp.arange(s)[None, :] <= offset + jnp.arange(t)[:, None])[None, None]


def attend(query: Array, key: Array, value: Array, mask: Array | None = None, *, causal: bool = False,
           scale: float | None = None, implementation: str = 'auto', interpret: bool = False) -> Array:
  """Grouped-query attention without materialised float32 weights.

  Args:
    query: [batch, q_len, heads, head_dim].
    key, value: [batch, kv_len, kv_heads, head_dim]; heads must be a multiple of kv_heads.
    mask: None or bool broadcastable to [batch, heads, q_len, kv_len] (True = may attend).
    causal: also mask key j > query i (queries and keys aligned at the start).
    scale: multiplies q k^T (default 1 / sqrt(head_dim)).
    implementation: one of IMPLEMENTATIONS except 'reference'.
    interpret: run the splash kernel in Pallas interpret mode (tests on CPU).

  Returns:
    [batch, q_len, heads, head_dim] in the query's dtype.
  """
  impl = resolve(implementation)
  if impl == 'reference':
    raise ValueError("attend() is the fast path; 'reference' is jaxlab.nn.attention's own computation")
  b, t, h, d = query.shape
  s = key.shape[1]
  scale = float(d) ** -0.5 if scale is None else float(scale)
  if impl == 'splash' and mask is None and splash_supported(t, s, d):
    return _splash(query, key, value, causal=causal, scale=scale, interpret=interpret)
  impl = 'xla' if impl == 'splash' else impl
  out = jax.nn.dot_product_attention(query, key, value, mask=mask, scale=scale, is_causal=causal,
                                     implementation=impl)
  if mask is not None:  # rows with no key left: zeros, as the reference
    full = jnp.broadcast_to(mask, (mask.shape[0], mask.shape[1], t, s))
    if causal:
      full = jnp.logical_and(full, _causal(t, s))
    has_key = jnp.any(full, axis=-1)                          # [b|1, h|1, t]
    out = jnp.where(jnp.transpose(has_key, (0, 2, 1))[..., None], out, jnp.zeros((), out.dtype))
  return out


def splash_supported(q_len: int, kv_len: int, head_dim: int) -> bool:
  """The splash kernel tiles sequences in blocks of 128 and heads of 128 lanes (smaller dims are padded)."""
  return q_len % 128 == 0 and kv_len % 128 == 0 and head_dim <= 256


@functools.lru_cache(maxsize=32)
def _splash_kernel(group: int, t: int, s: int, causal: bool, interpret: bool):
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk  # pylint: disable=import-outside-toplevel
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm  # pylint: disable=import-outside-toplevel
  one = sm.CausalMask((t, s)) if causal else sm.FullMask((t, s))
  bq, bkv = min(512, t), min(512, s)
  blocks = sk.BlockSizes(block_q=bq, block_kv=bkv, block_kv_compute=bkv, block_q_dkv=bq, block_kv_dkv=bkv,
                         block_kv_dkv_compute=bkv, block_q_dq=bq, block_kv_dq=bkv)
  return sk.make_splash_mqa_single_device(sm.MultiHeadMask([one] * group), block_sizes=blocks, interpret=interpret)


def _splash_local(q: Array, k: Array, v: Array, *, causal: bool, interpret: bool) -> Array:
  """q [b, kvh, g, t, d], k/v [b, kvh, s, d] on one device -> [b, kvh, g, t, d]."""
  _, _, g, t, _ = q.shape
  kernel = _splash_kernel(g, t, k.shape[2], causal, interpret)
  return jax.vmap(jax.vmap(kernel))(q, k, v)


def _splash(query, key, value, *, causal: bool, scale: float, interpret: bool) -> Array:
  """Splash attention, shard_mapped over the batch ('data', 'fsdp') and kv-head ('tensor') mesh axes."""
  b, t, h, d = query.shape
  kvh = key.shape[2]
  g = h // kvh
  dtype = query.dtype
  q = (query * jnp.asarray(scale, dtype)).reshape(b, t, kvh, g, d).transpose(0, 2, 3, 1, 4)  # [b, kvh, g, t, d]
  k = key.astype(dtype).transpose(0, 2, 1, 3)                                                 # [b, kvh, s, d]
  v = value.astype(dtype).transpose(0, 2, 1, 3)
  local = functools.partial(_splash_local, causal=causal, interpret=interpret)
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    out = local(q, k, v)
  else:
    batch_axes = tuple(a for a in ('data', 'fsdp') if a in mesh.shape and mesh.shape[a] > 1)
    if b % int(np.prod([mesh.shape[a] for a in batch_axes] or [1])):
      batch_axes = ()
    head_axis = 'tensor' if 'tensor' in mesh.shape and mesh.shape['tensor'] > 1 and not kvh % mesh.shape['tensor'] \
        else None
    bspec = batch_axes or None
    spec_q, spec_kv = P(bspec, head_axis, None, None, None), P(bspec, head_axis, None, None)
    out = jax.shard_map(local, mesh=mesh, in_specs=(spec_q, spec_kv, spec_kv), out_specs=spec_q,
                        check_vma=False)(q, k, v)
  return out.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d).astype(dtype)
