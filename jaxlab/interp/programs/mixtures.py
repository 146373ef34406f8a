"""Mixtures of a sink on the first token with a local pattern (the most common real-head shape)."""

import numpy as np

from jaxlab.interp.program_lib import finish


def _sink_mix(n, local, w_first):
  m = np.zeros((n, n))
  if n:
    m[:, 0] = w_first
  return finish(m + (1. - w_first) * local)


def first_and_previous(tokens, text):
  """Half on the first token, half on the previous token."""
  n = len(tokens)
  return _sink_mix(n, np.eye(n, k=-1) + np.eye(n) * (np.arange(n) == 0)[:, None], 0.5)


def first_and_self(tokens, text):
  """Half on the first token, half on the current token."""
  n = len(tokens)
  return _sink_mix(n, np.eye(n), 0.5)


def first_heavy_uniform(tokens, text):
  """80% on the first token, the rest uniform over the prefix."""
  n = len(tokens)
  u = np.tril(np.ones((n, n)))
  return _sink_mix(n, u / np.maximum(u.sum(-1, keepdims=True), 1), 0.8)


def first_heavy_previous(tokens, text):
  """80% on the first token, 20% on the previous token."""
  n = len(tokens)
  return _sink_mix(n, np.eye(n, k=-1) + np.eye(n) * (np.arange(n) == 0)[:, None], 0.8)
