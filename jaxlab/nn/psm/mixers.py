"""Affine sequence mixers: drop-in replacements for attention in `jaxlab.nn.lm.transformer.DecoderLM`.

Every mixer maps x [batch, length, embed] -> [batch, length, embed], has a training form chosen by
`form` ('sequential' | 'parallel' | 'chunkwise' | 'auto', see scans.py) and a recurrent decode form: with
`decode=True` it reads its state from the flax 'cache' collection, runs the recurrence over the given
tokens (one token = one decode step; several = prefill) and writes the state back (pass
mutable=['cache']). All forms compute the same function (tests/psm/test_psm_mixers.py, fp32, 1e-5).

| mixer            | transition E_t                    | state              |
|------------------|-----------------------------------|--------------------|
| LinearAttention  | I                                 | [heads, dk, dv]    |
| RetNet           | γ_h I (fixed per head)            | [heads, dk, dv]    |
| GLA              | diag(g_t), g_t = σ(·)^(1/16)      | [heads, dk, dv]    |
| Mamba (S6)       | exp(Δ_t A) elementwise            | [d_inner, d_state] |
| Mamba2           | exp(Δ_t,h A_h) scalar per head    | [heads, d_state, p]|
| MLSTM            | f_t scalar, exponential input gate, normaliser and stabiliser m_t |
| DeltaNet         | I - β_t k_t k_tᵀ                  | [heads, dk, dk]    |

Masks: the mixers are causal by construction and ignore `mask` and `positions`; `padding` and
`head_override` are not supported (a ValueError says so).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn

from jaxlab.nn.layers import FlatDense, RMSNorm, default_kernel_init
from jaxlab.nn.psm import scans

Array = jax.Array


def _dense(features: int, axes: tuple[str, str], name: str, use_bias: bool = False,
           bias_init: Any = nn.initializers.zeros, dtype: Any = jnp.float32) -> FlatDense:
  return FlatDense(features, use_bias=use_bias, dtype=dtype,
                   kernel_init=nn.with_logical_partitioning(default_kernel_init, axes),
                   bias_init=nn.with_logical_partitioning(bias_init, (axes[1],)), name=name)


class _Mixer(nn.Module):
  """Shared attributes, argument checks and the decode-state plumbing."""
  embed_dim: int
  num_heads: int = 4
  head_dim: int = 16
  form: str = 'auto'
  chunk_size: int = 64
  dtype: Any = jnp.float32

  def _check(self, x: Array, padding: Array | None, head_override: Any) -> None:
    if x.ndim != 3 or x.shape[-1] != self.embed_dim:
      raise ValueError(f'{type(self).__name__} expects x [batch, length, {self.embed_dim}], got {x.shape}.')
    if padding is not None or head_override is not None:
      raise ValueError(f'{type(self).__name__} (a recurrent mixer) supports neither padding nor '
                       'head_override.')
    if self.form not in scans.FORMS:
      raise ValueError(f'Unknown scan form {self.form!r}; expected one of {scans.FORMS}.')
    if self.chunk_size <= 0:
      raise ValueError(f'chunk_size must be positive, got {self.chunk_size}.')

  def _cache_var(self, name: str, shape: tuple[int, ...], fill: float = 0.) -> Any:
    return self.variable('cache', name, lambda: jnp.full(shape, fill, jnp.float32))

  def _scan(self, scan_fn, *args, decode: bool, state_shape: tuple[int, ...], **kw) -> Array:
    """Training: ``scan_fn`` in the configured form. Decode: the sequential form continued from the
    cached state, which is then updated (not while initialising)."""
    if not decode:
      return scan_fn(*args, form=self.form, chunk_size=self.chunk_size, **kw)[0]
    state = self._cache_var('state', state_shape)
    out, new = scan_fn(*args, form='sequential', initial_state=state.value, **kw)
    if not self.is_initializing():
      state.value = new
    return out

  def _out(self, o: Array, x: Array) -> Array:
    """Per-head RMSNorm, then the output projection ([b, t, h, dv] -> [b, t, embed])."""
    o = RMSNorm(param_axis='kv', name='head_norm')(o)
    o = o.reshape(o.shape[:2] + (-1,)).astype(self.dtype)
    return _dense(self.embed_dim, ('mlp', 'embed'), 'out', dtype=self.dtype)(o)


class _GLAFamily(_Mixer):
  """q, k, v projections + gated linear attention with a mixer-specific log-gate."""

  def log_gate(self, x: Array) -> Array:  # [b, t, h, dk | 1]
    raise NotImplementedError

  def feature_map(self, q: Array, k: Array) -> tuple[Array, Array]:
    return q, k * self.head_dim ** -0.5

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None, positions: Array | None = None,
               deterministic: bool = True, decode: bool = False, padding: Array | None = None,
               head_override: Any = None) -> Array:
    """x: [batch, length, embed] -> [batch, length, embed]."""
    del mask, positions, deterministic
    self._check(x, padding, head_override)
    b, t, _ = x.shape
    h, d = self.num_heads, self.head_dim
    proj = lambda name: _dense(h * d, ('embed', 'mlp'), name, dtype=self.dtype)(x).reshape(b, t, h, d)
    q, k = self.feature_map(proj('query'), proj('key'))
    v = proj('value')
    log_g = self.log_gate(x)
    o = self._scan(scans.gated_linear_attention, q, k, v, log_g, decode=decode, state_shape=(b, h, d, d))
    o = self._out(o, x)
    return o


class LinearAttention(_GLAFamily):
  """Linear attention (Katharopoulos et al.): φ = elu + 1, no decay."""

  def feature_map(self, q, k):
    return jax.nn.elu(q) + 1., (jax.nn.elu(k) + 1.) * self.head_dim ** -0.5

  def log_gate(self, x):
    return jnp.zeros(x.shape[:2] + (self.num_heads, 1), jnp.float32)


class RetNet(_GLAFamily):
  """Retention: fixed scalar decay γ_h = 1 - 2^(-5-h) per head."""

  def log_gate(self, x):
    gamma = 1. - 2. ** (-5. - jnp.arange(self.num_heads, dtype=jnp.float32))
    return jnp.broadcast_to(jnp.log(gamma)[:, None], x.shape[:2] + (self.num_heads, 1))


class GLA(_GLAFamily):
  """Gated linear attention (Yang et al. 2024): data-dependent diagonal gates g = σ(W2 W1 x + b)^(1/16)."""
  gate_rank: int = 16
  gate_temperature: float = 16.

  def log_gate(self, x):
    b, t, _ = x.shape
    low = _dense(self.gate_rank, ('embed', 'mlp'), 'gate_low', dtype=self.dtype)(x)
    g = _dense(self.num_heads * self.head_dim, ('mlp', 'embed'), 'gate', use_bias=True,
               dtype=self.dtype)(low)
    return (jax.nn.log_sigmoid(g.astype(jnp.float32)) / self.gate_temperature).reshape(
        b, t, self.num_heads, self.head_dim)


class CausalConv(nn.Module):
  """Depthwise causal 1D convolution over time with a decode buffer of the last width-1 inputs."""
  features: int
  width: int = 4

  @nn.compact
  def __call__(self, x: Array, decode: bool = False) -> Array:
    """x: [batch, length, features] -> same."""
    kernel = self.param('kernel', nn.with_logical_partitioning(
        nn.initializers.normal(self.width ** -0.5), (None, 'mlp')), (self.width, self.features))
    bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros, ('mlp',)),
                      (self.features,))
    b, t, _ = x.shape
    if decode:
      buf = self.variable('cache', 'conv_buffer', jnp.zeros, (b, self.width - 1, self.features),
                          jnp.float32)
      full = jnp.concatenate([buf.value.astype(x.dtype), x], axis=1)
      if not self.is_initializing():
        buf.value = full[:, -(self.width - 1):].astype(jnp.float32)
    else:
      full = jnp.pad(x, ((0, 0), (self.width - 1, 0), (0, 0)))
    out = sum(full[:, i:i + t] * kernel[i] for i in range(self.width))
    return out + bias


class Mamba(_Mixer):
  """Mamba (S6): selective diagonal SSM with a short causal conv and a SiLU gate.

  num_heads * head_dim is d_inner; the state is [d_inner, d_state].
  """
  d_state: int = 16
  conv_width: int = 4

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None, positions: Array | None = None,
               deterministic: bool = True, decode: bool = False, padding: Array | None = None,
               head_override: Any = None) -> Array:
    """x: [batch, length, embed] -> [batch, length, embed]."""
    del mask, positions, deterministic
    self._check(x, padding, head_override)
    b, t, _ = x.shape
    di, n = self.num_heads * self.head_dim, self.d_state
    xz = _dense(2 * di, ('embed', 'mlp'), 'in_proj', dtype=self.dtype)(x)
    u, z = jnp.split(xz, 2, axis=-1)
    u = jax.nn.silu(CausalConv(di, self.conv_width, name='conv')(u, decode))
    dt_rank = max(1, self.embed_dim // 16)
    dt = _dense(di, ('mlp', 'embed'), 'dt_proj', use_bias=True, dtype=self.dtype,
                bias_init=nn.initializers.constant(-4.))(
                    _dense(dt_rank, ('embed', 'mlp'), 'dt_low', dtype=self.dtype)(u))
    delta = jax.nn.softplus(dt.astype(jnp.float32))                        # [b, t, di]
    bmat = _dense(n, ('mlp', 'embed'), 'b_proj', dtype=self.dtype)(u).astype(jnp.float32)
    cmat = _dense(n, ('mlp', 'embed'), 'c_proj', dtype=self.dtype)(u).astype(jnp.float32)
    a_log = self.param('a_log', nn.with_logical_partitioning(
        lambda _, s: jnp.log(jnp.broadcast_to(jnp.arange(1, s[1] + 1, dtype=jnp.float32), s)),
        ('mlp', None)), (di, n))
    a = jnp.exp(delta[..., None] * -jnp.exp(a_log))                        # [b, t, di, n]
    f = (delta * u.astype(jnp.float32))[..., None] * bmat[:, :, None, :]   # [b, t, di, n]
    states = self._scan(scans.affine_scan, a, f, kind='diag', decode=decode, state_shape=(b, di, n))
    y = jnp.einsum('btdn,btn->btd', states, cmat)
    skip = self.param('d_skip', nn.with_logical_partitioning(nn.initializers.ones, ('mlp',)), (di,))
    y = (y + skip * u) * jax.nn.silu(z)
    return _dense(self.embed_dim, ('mlp', 'embed'), 'out', dtype=self.dtype)(y.astype(self.dtype))


class Mamba2(_Mixer):
  """Mamba2 (SSD): scalar decay exp(Δ_h A_h) per head, shared B/C (d_state), head dim `head_dim`."""
  d_state: int = 16
  conv_width: int = 4

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None, positions: Array | None = None,
               deterministic: bool = True, decode: bool = False, padding: Array | None = None,
               head_override: Any = None) -> Array:
    """x: [batch, length, embed] -> [batch, length, embed]."""
    del mask, positions, deterministic
    self._check(x, padding, head_override)
    b, t, _ = x.shape
    h, p, n = self.num_heads, self.head_dim, self.d_state
    z = _dense(h * p, ('embed', 'mlp'), 'z_proj', dtype=self.dtype)(x)
    xbc = _dense(h * p + 2 * n, ('embed', 'mlp'), 'xbc_proj', dtype=self.dtype)(x)
    xbc = jax.nn.silu(CausalConv(h * p + 2 * n, self.conv_width, name='conv')(xbc, decode))
    u, bmat, cmat = jnp.split(xbc.astype(jnp.float32), [h * p, h * p + n], axis=-1)
    dt = _dense(h, ('embed', 'heads'), 'dt_proj', use_bias=True, dtype=self.dtype,
                bias_init=nn.initializers.constant(-2.))(x)
    delta = jax.nn.softplus(dt.astype(jnp.float32))                        # [b, t, h]
    a_log = self.param('a_log', nn.with_logical_partitioning(
        lambda _, s: jnp.log(jnp.arange(1, s[0] + 1, dtype=jnp.float32)), ('heads',)), (h,))
    log_g = (delta * -jnp.exp(a_log))[..., None]                           # [b, t, h, 1]
    u = u.reshape(b, t, h, p)
    k = jnp.broadcast_to(bmat[:, :, None, :], (b, t, h, n))
    q = jnp.broadcast_to(cmat[:, :, None, :], (b, t, h, n))
    v = u * delta[..., None]
    o = self._scan(scans.gated_linear_attention, q, k, v, log_g, decode=decode, state_shape=(b, h, n, p))
    skip = self.param('d_skip', nn.with_logical_partitioning(nn.initializers.ones, ('heads',)), (h,))
    o = (o + skip[:, None] * u) * jax.nn.silu(z.astype(jnp.float32)).reshape(b, t, h, p)
    return self._out(o, x)


# ---------------------------------------------------------------------------------------------------
# mLSTM: exponential input gate, sigmoid forget gate, normaliser n_t and stabiliser m_t.
# ---------------------------------------------------------------------------------------------------

_NEG = -1e30


def mlstm_scan(q: Array, k: Array, v: Array, log_i: Array, log_f: Array, *, form: str = 'auto',
               chunk_size: int = 64, initial_state: tuple[Array, Array, Array] | None = None
               ) -> tuple[Array, tuple[Array, Array, Array]]:
  """The stabilised mLSTM recurrence (Beck et al. 2024), m_0 = 0:

      m_t = max(log f_t + m_{t-1}, log i_t),  f' = exp(log f_t + m_{t-1} - m_t),  i' = exp(log i_t - m_t)
      C_t = f' C_{t-1} + i' k_t v_tᵀ,  n_t = f' n_{t-1} + i' k_t,  h_t = C_tᵀ q_t / max(|n_tᵀ q_t|, e^{-m_t}).

  Args:
    q, k: [batch, T, heads, dk]; v: [batch, T, heads, dv]; log_i, log_f: [batch, T, heads].
    form: 'sequential' (lax.scan), 'chunkwise' (log-space intra-chunk with a running stabiliser),
      'parallel' (the quadratic form: one chunk of length T) or 'auto' (chunkwise).
    initial_state: (C [b, h, dk, dv], n [b, h, dk], m [b, h]) or None (zeros).

  Returns:
    (h [batch, T, heads, dv], final (C, n, m)).
  """
  scans._check_form(form, chunk_size)
  b, t, hh, dk = q.shape
  dv = v.shape[-1]
  if log_i.shape != (b, t, hh) or log_f.shape != (b, t, hh):
    raise ValueError(f'log_i {log_i.shape} and log_f {log_f.shape} must be [batch, T, heads] = '
                     f'{(b, t, hh)}.')
  if initial_state is None:
    initial_state = (jnp.zeros((b, hh, dk, dv)), jnp.zeros((b, hh, dk)), jnp.zeros((b, hh)))
  c0, n0, m0 = initial_state
  if c0.shape != (b, hh, dk, dv) or n0.shape != (b, hh, dk) or m0.shape != (b, hh):
    raise ValueError(f'mLSTM state shapes {c0.shape}, {n0.shape}, {m0.shape} do not match '
                     f'{(b, hh, dk, dv)}, {(b, hh, dk)}, {(b, hh)}.')
  if form == 'sequential':
    def step(carry, xs):
      cm, nm, m = carry
      qt, kt, vt, it, ft = xs
      m_new = jnp.maximum(ft + m, it)
      fp, ip = jnp.exp(ft + m - m_new), jnp.exp(it - m_new)
      cm = fp[..., None, None] * cm + ip[..., None, None] * kt[..., :, None] * vt[..., None, :]
      nm = fp[..., None] * nm + ip[..., None] * kt
      num = jnp.einsum('bhk,bhkv->bhv', qt, cm)
      den = jnp.maximum(jnp.abs(jnp.einsum('bhk,bhk->bh', qt, nm)), jnp.exp(-m_new))
      return (cm, nm, m_new), num / den[..., None]
    tm = lambda x: jnp.moveaxis(x, 1, 0)
    final, hs = jax.lax.scan(step, (c0, n0, m0), (tm(q), tm(k), tm(v), tm(log_i), tm(log_f)))
    return jnp.moveaxis(hs, 0, 1), final

  c = t if form == 'parallel' else min(chunk_size, t)
  n = -(-t // c)
  pad = n * c - t
  if pad:  # Padding: no input (log i = -1e30), no forgetting (log f = 0): the state is unchanged.
    padder = lambda x, val=0.: jnp.pad(x, ((0, 0), (0, pad)) + ((0, 0),) * (x.ndim - 2),
                                       constant_values=val)
    q, k, v, log_f = padder(q), padder(k), padder(v), padder(log_f)
    log_i = padder(log_i, _NEG)
  chunk = lambda x: jnp.moveaxis(x.reshape((b, n, c) + x.shape[2:]), 2, 3).swapaxes(0, 1)
  qc, kc, vc, ic, fc = chunk(q), chunk(k), chunk(v), chunk(log_i), chunk(log_f)  # [n, b, h, c, ...]
  causal = jnp.tril(jnp.ones((c, c), jnp.bool_))

  def step(carry, xs):
    cm, nm, m = carry
    qk_, kk, vk, ik, fk = xs
    cum = jnp.cumsum(fk, axis=-1)                                       # F_i, [b, h, c]
    inter = m[..., None] + cum                                          # a_i
    d = jnp.where(causal, cum[..., :, None] - cum[..., None, :] + ik[..., None, :], -jnp.inf)
    m_row = jnp.maximum(inter, jnp.max(d, axis=-1))                     # m_i
    w = jnp.exp(d - m_row[..., None]) * jnp.einsum('bhik,bhjk->bhij', qk_, kk)
    wi = jnp.exp(inter - m_row)
    num = jnp.einsum('bhij,bhjv->bhiv', w, vk) + wi[..., None] * jnp.einsum('bhik,bhkv->bhiv', qk_, cm)
    den = jnp.sum(w, axis=-1) + wi * jnp.einsum('bhik,bhk->bhi', qk_, nm)
    out = num / jnp.maximum(jnp.abs(den), jnp.exp(-m_row))[..., None]
    m_last = m_row[..., -1]
    wk = jnp.exp(d[..., -1, :] - m_last[..., None])                     # [b, h, c]
    wc = jnp.exp(inter[..., -1] - m_last)
    cm = wc[..., None, None] * cm + jnp.einsum('bhj,bhjk,bhjv->bhkv', wk, kk, vk)
    nm = wc[..., None] * nm + jnp.einsum('bhj,bhjk->bhk', wk, kk)
    return (cm, nm, m_last), out

  final, hs = jax.lax.scan(step, (c0, n0, m0), (qc, kc, vc, ic, fc))
  hs = hs.swapaxes(0, 1).swapaxes(2, 3).reshape(b, n * c, hh, dv)[:, :t]
  return hs, final


class MLSTM(_Mixer):
  """mLSTM cell (xLSTM): exponential input gate, sigmoid forget gate, sigmoid output gate."""

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None, positions: Array | None = None,
               deterministic: bool = True, decode: bool = False, padding: Array | None = None,
               head_override: Any = None) -> Array:
    """x: [batch, length, embed] -> [batch, length, embed]."""
    del mask, positions, deterministic
    self._check(x, padding, head_override)
    b, t, _ = x.shape
    h, d = self.num_heads, self.head_dim
    proj = lambda name: _dense(h * d, ('embed', 'mlp'), name, dtype=self.dtype)(x).reshape(
        b, t, h, d).astype(jnp.float32)
    q, k, v = proj('query'), proj('key') * d ** -0.5, proj('value')
    log_i = _dense(h, ('embed', 'heads'), 'igate', use_bias=True, dtype=self.dtype)(x).astype(jnp.float32)
    log_f = jax.nn.log_sigmoid(_dense(h, ('embed', 'heads'), 'fgate', use_bias=True, dtype=self.dtype,
                                      bias_init=nn.initializers.constant(3.))(x).astype(jnp.float32))
    if decode:
      cs = self._cache_var('c', (b, h, d, d))
      ns = self._cache_var('n', (b, h, d))
      ms = self._cache_var('m', (b, h))
      o, (cn, nn_, mn) = mlstm_scan(q, k, v, log_i, log_f, form='sequential',
                                    initial_state=(cs.value, ns.value, ms.value))
      if not self.is_initializing():
        cs.value, ns.value, ms.value = cn, nn_, mn
    else:
      o, _ = mlstm_scan(q, k, v, log_i, log_f, form=self.form, chunk_size=self.chunk_size)
    gate = jax.nn.sigmoid(_dense(h * d, ('embed', 'mlp'), 'ogate', dtype=self.dtype)(x))
    return self._out(o * gate.reshape(b, t, h, d), x)


class DeltaNet(_Mixer):
  """DeltaNet: S_t = (I - β_t k_t k_tᵀ) S_{t-1} + β_t k_t v_tᵀ with L2-normalised q, k (matrix transitions).

  Its 'chunkwise' form is the generic matrix-transition chunked scan of scans.affine_scan (per-token
  states inside a chunk), not the WY-representation kernel.
  """

  @nn.compact
  def __call__(self, x: Array, *, mask: Array | None = None, positions: Array | None = None,
               deterministic: bool = True, decode: bool = False, padding: Array | None = None,
               head_override: Any = None) -> Array:
    """x: [batch, length, embed] -> [batch, length, embed]."""
    del mask, positions, deterministic
    self._check(x, padding, head_override)
    b, t, _ = x.shape
    h, d = self.num_heads, self.head_dim
    proj = lambda name: _dense(h * d, ('embed', 'mlp'), name, dtype=self.dtype)(x).reshape(
        b, t, h, d).astype(jnp.float32)
    l2 = lambda z: z * jax.lax.rsqrt(jnp.sum(z * z, axis=-1, keepdims=True) + 1e-6)
    q, k, v = l2(jax.nn.silu(proj('query'))), l2(jax.nn.silu(proj('key'))), proj('value')
    beta = jax.nn.sigmoid(_dense(h, ('embed', 'heads'), 'beta', use_bias=True, dtype=self.dtype)(x)
                          ).astype(jnp.float32)[..., None, None]            # [b, t, h, 1, 1]
    a = jnp.eye(d, dtype=jnp.float32) - beta * k[..., :, None] * k[..., None, :]
    f = beta * k[..., :, None] * v[..., None, :]
    states = self._scan(scans.affine_scan, a, f, kind='matrix', decode=decode, state_shape=(b, h, d, d))
    return self._out(jnp.einsum('bthk,bthkv->bthv', q, states), x)


MIXERS = {
    'linear_attention': LinearAttention,
    'retnet': RetNet,
    'gla': GLA,
    'mamba': Mamba,
    'mamba2': Mamba2,
    'mlstm': MLSTM,
    'deltanet': DeltaNet,
}
