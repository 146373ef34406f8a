"""Soft row-wise IoU against a hand-computed example, and the random baselines."""

import numpy as np

from jaxlab.interp import iou
from jaxlab.interp.registry import check_matrix


def test_soft_iou_hand_example():
  a = np.array([[1., 0.], [0.5, 0.5]])
  p = np.array([[1., 0.], [1., 0.]])
  # row 0: identical -> 1; row 1: min sum 0.5 (+1e-12), max sum 1.5 -> 1/3. Mean 2/3.
  np.testing.assert_allclose(iou.soft_iou(a, p), 2 / 3, atol=1e-9)
  # Three rows, a spread row against a one-hot: (0.25 + 0.25e-12...) / (1 + 0.75)
  a3 = np.array([[1., 0, 0], [0, 1., 0], [0.25, 0.25, 0.5]])
  p3 = np.array([[1., 0, 0], [1., 0, 0], [0, 0, 1.]])
  expect = (1 + 1e-12 / (1 + 1e-12) * 0 + 0 + 0.5 / 1.5) / 3
  np.testing.assert_allclose(iou.soft_iou(a3, p3), expect, atol=1e-9)


def test_iou_identity_and_broadcast():
  a = iou.uniform_causal(5)
  assert abs(iou.soft_iou(a, a) - 1) < 1e-12
  batch = np.stack([a, np.eye(5)])
  assert iou.soft_iou(batch, a).shape == (2,)


def test_baselines_are_causal_row_stochastic():
  rng = np.random.default_rng(0)
  for n in (1, 2, 7):
    for m in (iou.uniform_causal(n), iou.random_key_per_row(n, rng), iou.random_column(n, rng)):
      check_matrix(m, n)
