"""Affine prefix scans: the associative core of every affine sequence mixer.

An affine recurrence s_t = E_t ▷ s_{t-1} + f_t composes with the associative operator

    (E2, f2) ⊕ (E1, f1) = (E2 ∘ E1, f2 + E2 ▷ f1),      identity (I, 0),

so a left-to-right loop, a parallel prefix scan and a chunked scan compute the same states (up to
floating point). Two kinds of transition E are supported:

* ``'diag'``: E is elementwise, ``a`` broadcastable to the state ``b`` (scalar, per-row, per-entry gates);
* ``'matrix'``: E is a [m, m] matrix acting on the leading state axis: state [m, n], E ▷ s = E @ s
  (DeltaNet's I - β k kᵀ).

`affine_scan` evaluates the scan in one of three forms, selected by ``form``:

* ``'sequential'``: `jax.lax.scan` over time (O(T) depth, O(1) extra memory per step);
* ``'parallel'``: `jax.lax.associative_scan` (O(log T) depth, materialises every state);
* ``'chunkwise'``: associative scan inside chunks of ``chunk_size``, `lax.scan` carrying the state across
  chunks (O(T/c + log c) depth);
* ``'auto'``: `default_form()` for the backend (chosen from experiments/benchmarks/README.md).

`gated_linear_attention` is the matrix-state special case shared by linear attention, RetNet, GLA, Mamba2
(and, with a stabiliser, mLSTM in mixers.py): S_t = diag(g_t) S_{t-1} + k_t v_tᵀ, o_t = S_tᵀ q_t. Its
chunkwise form never materialises per-token states: inside a chunk it works in log space (cumulative
log-gates B, and only differences B_i - B_j for i >= j, which are <= 0, are exponentiated), so arbitrarily
strong gates (g -> 0) neither overflow nor divide by zero.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array

FORMS = ('sequential', 'parallel', 'chunkwise', 'auto')
KINDS = ('diag', 'matrix')


def default_form(kind: str = 'diag', backend: str | None = None) -> str:
  """The `auto` form per backend and transition kind.

  Measured on CPU (experiments/benchmarks/README.md): lax.scan wins for diagonal states and the
  chunkwise form for matrix states; accelerators favour the parallel forms (chunkwise for matrix
  states, whose associative scan materialises [T, m, n]).
  """
  backend = backend or jax.default_backend()
  if kind == 'matrix':
    return 'chunkwise'
  return 'sequential' if backend == 'cpu' else 'parallel'


def _check_form(form: str, chunk_size: int) -> None:
  if form not in FORMS:
    raise ValueError(f'Unknown scan form {form!r}; expected one of {FORMS}.')
  if not isinstance(chunk_size, int) or chunk_size <= 0:
    raise ValueError(f'chunk_size must be a positive int, got {chunk_size!r}.')


def _apply(kind: str, a: Array, s: Array) -> Array:
  """E ▷ s for a batch of transitions a and states s (time axis, if any, in the same place)."""
  if kind == 'diag':
    return a * s
  return jnp.einsum('...ij,...jk->...ik', a, s)


def _compose(kind: str, a2: Array, a1: Array) -> Array:
  """E2 ∘ E1."""
  return a2 * a1 if kind == 'diag' else jnp.einsum('...ij,...jk->...ik', a2, a1)


def affine_combine(kind: str, first: tuple[Array, Array], second: tuple[Array, Array]
                   ) -> tuple[Array, Array]:
  """(E2, f2) ⊕ (E1, f1) with `first` = (E1, f1) applied first: returns (E2 ∘ E1, f2 + E2 ▷ f1)."""
  a1, b1 = first
  a2, b2 = second
  return _compose(kind, a2, a1), b2 + _apply(kind, a2, b1)


def _check_shapes(kind: str, a: Array, b: Array, h0: Array | None, axis: int) -> None:
  if kind not in KINDS:
    raise ValueError(f'Unknown transition kind {kind!r}; expected one of {KINDS}.')
  if a.ndim != b.ndim:
    raise ValueError(f'a {a.shape} and b {b.shape} must have the same rank.')
  if a.shape[axis] != b.shape[axis]:
    raise ValueError(f'a {a.shape} and b {b.shape} disagree on the time axis {axis}.')
  if kind == 'diag':
    try:
      jnp.broadcast_shapes(a.shape, b.shape)
    except ValueError as e:
      raise ValueError(f'diag transitions a {a.shape} must broadcast to the states b {b.shape}.') from e
  elif a.shape[-1] != a.shape[-2] or a.shape[-1] != b.shape[-2]:
    raise ValueError(f'matrix transitions a {a.shape} must be [..., m, m] with states b [..., m, n], '
                     f'got b {b.shape}.')
  if h0 is not None:
    expect = b.shape[:axis] + b.shape[axis + 1:]
    if tuple(h0.shape) != tuple(expect):
      raise ValueError(f'initial state has shape {h0.shape}, expected {expect} (b without time).')


def affine_scan(a: Array, b: Array, *, kind: str = 'diag', form: str = 'auto', chunk_size: int = 64,
                initial_state: Array | None = None) -> tuple[Array, Array]:
  """All states of s_t = E_t ▷ s_{t-1} + f_t along axis 1.

  Args:
    a: transitions, [batch, T, ...] ('diag': broadcastable to b; 'matrix': [batch, T, ..., m, m]).
    b: inputs f_t, [batch, T, ..., (m, n)].
    kind: 'diag' or 'matrix'.
    form: 'sequential', 'parallel', 'chunkwise' or 'auto'.
    chunk_size: chunk length of the chunkwise form (any positive int; need not divide T).
    initial_state: s_0, b's shape without the time axis; None means zeros.

  Returns:
    (states [batch, T, ...] with s_1..s_T, final state s_T [batch, ...]).
  """
  _check_form(form, chunk_size)
  _check_shapes(kind, a, b, initial_state, 1)
  if form == 'auto':
    form = default_form(kind)
  if kind == 'diag':
    a = jnp.broadcast_to(a, jnp.broadcast_shapes(a.shape, b.shape))
  t = b.shape[1]
  if initial_state is not None:  # Fold s_0 into the first input: f_1 <- f_1 + E_1 ▷ s_0.
    b = b.at[:, 0].add(_apply(kind, a[:, 0], initial_state))

  if form == 'sequential':
    def step(s, ab):
      ai, bi = ab
      s = _apply(kind, ai, s) + bi
      return s, s
    s0 = jnp.zeros_like(b[:, 0])
    final, states = jax.lax.scan(step, s0, (jnp.moveaxis(a, 1, 0), jnp.moveaxis(b, 1, 0)))
    states = jnp.moveaxis(states, 0, 1)
    return states, final

  combine = lambda x, y: affine_combine(kind, x, y)
  if form == 'parallel':
    _, states = jax.lax.associative_scan(combine, (a, b), axis=1)
    return states, states[:, -1]

  # Chunkwise: pad to whole chunks with identity transitions (so padding leaves the state unchanged).
  c = chunk_size
  n = -(-t // c)
  pad = n * c - t
  if pad:
    eye = jnp.ones_like(a[:, :1]) if kind == 'diag' else jnp.broadcast_to(
        jnp.eye(a.shape[-1], dtype=a.dtype), a[:, :1].shape)
    a = jnp.concatenate([a, jnp.repeat(eye, pad, axis=1)], axis=1)
    b = jnp.concatenate([b, jnp.zeros((b.shape[0], pad) + b.shape[2:], b.dtype)], axis=1)
  ac = a.reshape((a.shape[0], n, c) + a.shape[2:])
  bc = b.reshape((b.shape[0], n, c) + b.shape[2:])
  # Within each chunk: prefix transitions A_i = E_i ∘ ... ∘ E_1 and local states (from zero).
  cum_a, local = jax.lax.associative_scan(combine, (ac, bc), axis=2)

  def carry_step(s, xs):
    cum_a_k, local_k = xs  # [batch, c, ...]
    states_k = local_k + _apply(kind, cum_a_k, s[:, None])
    return states_k[:, -1], states_k

  s0 = jnp.zeros_like(b[:, 0])
  final, states = jax.lax.scan(carry_step, s0, (jnp.moveaxis(cum_a, 1, 0), jnp.moveaxis(local, 1, 0)))
  states = jnp.moveaxis(states, 0, 1).reshape(b.shape)[:, :t]
  return states, final


# ----------------------------------------------------------------------------------------------------
# Gated linear attention: S_t = diag(g_t) S_{t-1} + k_t v_tᵀ, o_t = S_tᵀ q_t.
# ----------------------------------------------------------------------------------------------------


def _check_gla(q: Array, k: Array, v: Array, log_g: Array, h0: Array | None) -> None:
  if q.ndim != 4 or k.shape != q.shape or v.ndim != 4 or v.shape[:3] != q.shape[:3]:
    raise ValueError(f'expected q, k [batch, T, heads, dk] and v [batch, T, heads, dv], got '
                     f'q {q.shape}, k {k.shape}, v {v.shape}.')
  if log_g.shape[:3] != q.shape[:3] or log_g.shape[3] not in (1, q.shape[3]):
    raise ValueError(f'log_g must be [batch, T, heads, dk or 1], got {log_g.shape} for q {q.shape}.')
  expect = (q.shape[0], q.shape[2], q.shape[3], v.shape[3])
  if h0 is not None and tuple(h0.shape) != expect:
    raise ValueError(f'initial state has shape {h0.shape}, expected {expect}.')


def gated_linear_attention(q: Array, k: Array, v: Array, log_g: Array, *, form: str = 'auto',
                           chunk_size: int = 64, initial_state: Array | None = None
                           ) -> tuple[Array, Array]:
  """Outputs of the gated linear-attention recurrence.

  Args:
    q, k: [batch, T, heads, dk].
    v: [batch, T, heads, dv].
    log_g: [batch, T, heads, dk] (diagonal, GLA) or [batch, T, heads, 1] (scalar, RetNet / Mamba2)
      log-gates, <= 0 for a contraction (0 for plain linear attention).
    form: 'sequential' (lax.scan), 'parallel' (associative scan over [dk, dv] states),
      'chunkwise' (log-space intra-chunk attention + state passing) or 'auto' (chunkwise).
    chunk_size: chunk length of the chunkwise form; need not divide T.
    initial_state: [batch, heads, dk, dv] or None (zeros).

  Returns:
    (o [batch, T, heads, dv], final state [batch, heads, dk, dv]).
  """
  _check_form(form, chunk_size)
  _check_gla(q, k, v, log_g, initial_state)
  if form == 'auto':
    form = 'chunkwise'
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  dtype = jnp.result_type(q.dtype, v.dtype, jnp.float32)
  q, k, v, log_g = (x.astype(dtype) for x in (q, k, v, log_g))
  h0 = jnp.zeros((b, h, dk, dv), dtype) if initial_state is None else initial_state.astype(dtype)

  if form in ('sequential', 'parallel'):
    kv = k[..., :, None] * v[..., None, :]          # [b, t, h, dk, dv]
    gate = jnp.exp(log_g)[..., None]                 # [b, t, h, dk|1, 1]
    states, final = affine_scan(gate, kv, kind='diag', form=form, initial_state=h0)
    o = jnp.einsum('bthk,bthkv->bthv', q, states)
    return o, final

  c = chunk_size
  n = -(-t // c)
  pad = n * c - t
  if pad:  # Zero k, v and log-gate 0 (g = 1): the padding leaves the state unchanged.
    padder = lambda x: jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0)))
    q, k, v, log_g = padder(q), padder(k), padder(v), padder(log_g)
  gk = log_g.shape[-1]
  # [n, b, h, c, .] chunks, time-major over chunks for lax.scan.
  chunk = lambda x: x.reshape(b, n, c, h, x.shape[-1]).transpose(1, 0, 3, 2, 4)
  qc, kc, vc, gc = chunk(q), chunk(k), chunk(v), chunk(log_g)
  cum = jnp.cumsum(gc, axis=3)                      # B_i = sum_{l<=i} log g_l within the chunk.
  causal = jnp.tril(jnp.ones((c, c), jnp.bool_))

  def step(s, xs):
    qk_, kk, vk, bk = xs                            # [b, h, c, dk|dv|gk]
    # Intra-chunk scores with decays exp(B_i - B_j), only for i >= j (differences <= 0).
    diff = bk[:, :, :, None, :] - bk[:, :, None, :, :]              # [b, h, c, c, gk]
    diff = jnp.where(causal[None, None, :, :, None], diff, -jnp.inf)
    decay = jnp.exp(diff)
    if gk == 1:
      scores = jnp.einsum('bhik,bhjk->bhij', qk_, kk) * decay[..., 0]
    else:
      scores = jnp.einsum('bhik,bhjk,bhijk->bhij', qk_, kk, decay)
    intra = jnp.einsum('bhij,bhjv->bhiv', scores, vk)
    inter = jnp.einsum('bhik,bhkv->bhiv', qk_ * jnp.exp(bk), s)      # exp(B_i) <= 1.
    last = bk[:, :, -1:, :]                                           # B_c
    k_to_end = kk * jnp.exp(last - bk)                                # exp(B_c - B_j) <= 1.
    s = jnp.exp(last[:, :, 0, :])[..., None] * s + jnp.einsum('bhjk,bhjv->bhkv', k_to_end, vk)
    return s, intra + inter

  final, o = jax.lax.scan(step, h0, (qc, kc, vc, cum))
  o = o.transpose(1, 0, 3, 2, 4).reshape(b, n * c, h, dv)[:, :t]
  return o, final


def gla_step(state: Array, q: Array, k: Array, v: Array, log_g: Array) -> tuple[Array, Array]:
  """One decode step of `gated_linear_attention`.

  Args:
    state: [batch, heads, dk, dv]; q, k: [batch, heads, dk]; v: [batch, heads, dv];
    log_g: [batch, heads, dk|1].

  Returns:
    (o [batch, heads, dv], new state).
  """
  state = jnp.exp(log_g)[..., None] * state + k[..., :, None] * v[..., None, :]
  return jnp.einsum('bhk,bhkv->bhv', q, state), state


def tree_size(x: Any) -> int:
  """Number of array elements in a pytree (for memory accounting in tests and benchmarks)."""
  return sum(int(l.size) for l in jax.tree.leaves(x))
