"""Prefix scans for a non-associative aggregation: the static Blelloch tree and its online twin.

A general PSM combines chunk encodings with a learned Agg(left, right) that need not be associative, so
the bracketing is part of the model. Both functions here use the same fixed bracketing, the one of the
Blelloch (work-efficient) exclusive scan over the number of chunks padded to a power of two:

* `blelloch_exclusive_scan` (training): upsweep (right <- Agg(left, right) per level) then downsweep
  (root <- identity; left child <- parent; right child <- Agg(parent, left's upsweep value)), each level
  one vectorised Agg call over all its pairs. Padding chunks and the root of the downsweep are *identity*
  elements, carried as boolean flags: Agg(e, y) = y, Agg(x, e) = x, Agg(e, e) = e (Agg is still evaluated
  on the zero placeholders and the result discarded with `jnp.where`, so it must be finite there).
* `BinaryCounter` (inference): roots L[j], each the upsweep value of an aligned block of 2^j chunks.
  Pushing chunk n carry-merges state = Agg(L[j], state) while bit j of n is 1, exactly the upsweep. The
  exclusive prefix is the left fold of the roots from most to least significant, exactly the downsweep.
  The fold is cached per root (fold[j] = Agg(fold of the next more significant root, L[j])), so a push
  costs its carries plus one Agg: amortised O(1) Agg calls per chunk, and at most ⌈log2(n + 1)⌉ roots
  (and as many cached folds) are stored.

`naive_bracketing` computes the same prefixes by explicit recursion (the reference for tests).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Agg = Callable[[Any, Any], Any]


def _where(flag: Array, x: Any, y: Any) -> Any:
  """Per-leading-entry select between pytrees x and y ([m, ...] leaves, flag [m])."""
  return jax.tree.map(lambda a, b: jnp.where(flag.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), x, y)


def _combine(agg: Agg, left: Any, lid: Array, right: Any, rid: Array) -> tuple[Any, Array]:
  """Agg with identity flags, vectorised over the leading axis."""
  out = agg(left, right)
  out = _where(lid, right, _where(rid, left, out))
  return out, jnp.logical_and(lid, rid)


def blelloch_exclusive_scan(agg: Agg, xs: Any, num_chunks: int | None = None) -> tuple[Any, Array]:
  """Exclusive prefixes s_i = Agg-bracketed(x_0, ..., x_{i-1}) in the Blelloch bracketing.

  Args:
    agg: (left, right) -> combined, each a pytree with a leading axis of m pairs ([m, ...] leaves);
      called once per tree level on all that level's pairs.
    xs: pytree of [n, ...] leaves, the chunk encodings in order.
    num_chunks: n, for a clear error message when the leaves disagree (optional).

  Returns:
    (prefixes [n, ...] pytree, is_identity [n] bool); prefix 0 is the identity (flag True) and its
    value is zeros.
  """
  leaves = jax.tree.leaves(xs)
  if not leaves:
    raise ValueError('xs must contain at least one array.')
  n = leaves[0].shape[0]
  if any(l.shape[0] != n for l in leaves) or (num_chunks is not None and num_chunks != n):
    raise ValueError(f'all leaves of xs need the same leading (chunk) axis, got '
                     f'{[l.shape for l in leaves]} (num_chunks={num_chunks}).')
  if n == 0:
    raise ValueError('blelloch_exclusive_scan needs at least one chunk.')
  size = 1 << max(0, (n - 1).bit_length())
  pad = size - n
  tree = jax.tree.map(lambda l: jnp.concatenate([l, jnp.zeros((pad,) + l.shape[1:], l.dtype)]), xs)
  ident = jnp.arange(size) >= n
  levels = size.bit_length() - 1

  # Upsweep.
  for lvl in range(levels):
    stride = 2 << lvl
    right = jnp.arange(stride - 1, size, stride)
    left = right - stride // 2
    take = lambda idx: jax.tree.map(lambda l: l[idx], tree)
    out, oid = _combine(agg, take(left), ident[left], take(right), ident[right])
    tree = jax.tree.map(lambda l, o: l.at[right].set(o), tree, out)
    ident = ident.at[right].set(oid)

  # Downsweep.
  tree = jax.tree.map(lambda l: l.at[size - 1].set(jnp.zeros_like(l[size - 1])), tree)
  ident = ident.at[size - 1].set(True)
  for lvl in reversed(range(levels)):
    stride = 2 << lvl
    right = jnp.arange(stride - 1, size, stride)
    left = right - stride // 2
    take = lambda idx: jax.tree.map(lambda l: l[idx], tree)
    parent, pid = take(right), ident[right]
    up, uid = take(left), ident[left]
    new_right, rid = _combine(agg, parent, pid, up, uid)
    tree = jax.tree.map(lambda l, p, r: l.at[left].set(p).at[right].set(r), tree, parent, new_right)
    ident = ident.at[left].set(pid).at[right].set(rid)
  return jax.tree.map(lambda l: l[:n], tree), ident[:n]


def naive_bracketing(agg: Callable[[Any, Any], Any], xs: list[Any]) -> list[Any | None]:
  """Reference: exclusive prefixes with the Blelloch bracketing by explicit recursion (None = identity).

  `agg` here combines two single (unbatched) elements.
  """
  def block(lo: int, width: int) -> Any | None:  # Upsweep value of chunks [lo, lo + width).
    if width == 1:
      return xs[lo] if lo < len(xs) else None
    l, r = block(lo, width // 2), block(lo + width // 2, width // 2)
    if l is None:
      return r
    return l if r is None else agg(l, r)

  out = []
  for i in range(len(xs)):
    acc, lo = None, 0
    for bit in reversed(range(max(1, i.bit_length()))):  # Roots of i, most significant first.
      if i >> bit & 1:
        root = block(lo, 1 << bit)
        acc = root if acc is None else agg(acc, root)
        lo += 1 << bit
    out.append(acc)
  return out


class BinaryCounter:
  """Online exclusive-prefix state for a non-associative Agg: O(log n) roots, cached fold.

  Attributes:
    agg: (left, right) -> combined, on single states (a jitted function for speed).
    max_chunks: pushes beyond this raise (the decode budget).
    agg_calls: number of Agg evaluations so far (for the amortised-cost check).
  """

  def __init__(self, agg: Agg, max_chunks: int):
    if not isinstance(max_chunks, int) or max_chunks <= 0:
      raise ValueError(f'max_chunks must be a positive int, got {max_chunks!r}.')
    self.agg = agg
    self.max_chunks = max_chunks
    self.num_levels = max_chunks.bit_length()
    self.roots: list[Any | None] = [None] * self.num_levels
    self.folds: list[Any | None] = [None] * self.num_levels
    self.count = 0
    self.agg_calls = 0

  def _agg(self, left: Any, right: Any) -> Any:
    self.agg_calls += 1
    return self.agg(left, right)

  @property
  def num_roots(self) -> int:
    """Stored roots (non-empty levels): popcount(count) <= ⌈log2(count + 1)⌉."""
    return sum(r is not None for r in self.roots)

  @property
  def prefix(self) -> Any | None:
    """The exclusive prefix for the next chunk (None = identity, before the first push)."""
    for j in range(self.num_levels):
      if self.roots[j] is not None:
        return self.folds[j]  # The least significant root's fold covers all roots.
    return None

  def push(self, x: Any) -> None:
    """Consumes one chunk encoding x."""
    if self.count >= self.max_chunks:
      raise ValueError(f'BinaryCounter is full: {self.count} chunks pushed, max_chunks='
                       f'{self.max_chunks}. Increase the decode budget (max_len).')
    state, j, n = x, 0, self.count
    while n >> j & 1:
      state = self._agg(self.roots[j], state)
      self.roots[j] = self.folds[j] = None
      j += 1
    self.roots[j] = state
    higher = next((self.folds[i] for i in range(j + 1, self.num_levels) if self.roots[i] is not None),
                  None)
    self.folds[j] = state if higher is None else self._agg(higher, state)
    self.count += 1
