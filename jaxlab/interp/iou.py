"""Soft row-wise IoU between attention matrices and program matrices, and random baselines.

Definition (attention-heads-as-programs digest): clip both matrices to [1e-12, 1];
IoU_i = sum_j min(A_ij, P_ij) / sum_j max(A_ij, P_ij); mean over rows, then over sentences.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def soft_iou(a: np.ndarray, p: np.ndarray) -> np.ndarray:
  """Row-mean soft IoU.

  Args:
    a: [..., n, n] attention (rows sum to 1).
    p: [..., n, n] program matrix (broadcastable against `a`).

  Returns:
    [...] mean over rows of sum_j min / sum_j max.
  """
  a = np.clip(np.asarray(a, np.float64), EPS, 1.)
  p = np.clip(np.asarray(p, np.float64), EPS, 1.)
  rows = np.minimum(a, p).sum(-1) / np.maximum(a, p).sum(-1)
  return rows.mean(-1)


def uniform_causal(n: int) -> np.ndarray:
  """[n, n]: row i spreads its mass evenly over keys 0..i."""
  m = np.tril(np.ones((n, n)))
  return m / m.sum(-1, keepdims=True)


def random_key_per_row(n: int, rng: np.random.Generator) -> np.ndarray:
  """[n, n]: each row i is one-hot on a key drawn uniformly from 0..i."""
  m = np.zeros((n, n))
  m[np.arange(n), [rng.integers(0, i + 1) for i in range(n)]] = 1.
  return m


def random_column(n: int, rng: np.random.Generator) -> np.ndarray:
  """[n, n]: one key column c drawn per sentence; rows i >= c attend to it, rows i < c to themselves."""
  c = int(rng.integers(0, n))
  m = np.zeros((n, n))
  for i in range(n):
    m[i, c if i >= c else i] = 1.
  return m
