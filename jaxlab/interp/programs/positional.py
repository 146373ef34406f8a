"""Positional programs: recency, fixed offsets, windows, sinks."""

import numpy as np

from jaxlab.interp.program_lib import finish, zeros


def previous_token(tokens, text):
  """Each token attends to the token just before it (the first token to itself)."""
  m = zeros(tokens)
  for i in range(len(tokens)):
    m[i, max(i - 1, 0)] = 1.
  return finish(m)


def two_back(tokens, text):
  """Each token attends to the token two positions back."""
  m = zeros(tokens)
  for i in range(len(tokens)):
    m[i, max(i - 2, 0)] = 1.
  return finish(m)


def three_back(tokens, text):
  """Each token attends to the token three positions back."""
  m = zeros(tokens)
  for i in range(len(tokens)):
    m[i, max(i - 3, 0)] = 1.
  return finish(m)


def self_token(tokens, text):
  """Each token attends to itself."""
  return finish(np.eye(len(tokens)))


def first_token(tokens, text):
  """Every token attends to the first token (attention sink / BOS)."""
  m = zeros(tokens)
  if len(tokens):
    m[:, 0] = 1.
  return finish(m)


def uniform_causal(tokens, text):
  """Uniform attention over all previous tokens and itself."""
  return finish(np.ones((len(tokens), len(tokens))))


def window_3(tokens, text):
  """Uniform over the current token and the two before it."""
  n = len(tokens)
  i, j = np.indices((n, n))
  return finish(((i - j) < 3).astype(float))


def window_5(tokens, text):
  """Uniform over the current token and the four before it."""
  n = len(tokens)
  i, j = np.indices((n, n))
  return finish(((i - j) < 5).astype(float))


def recency_decay(tokens, text):
  """Exponentially decaying recency: weight 0.5 ** (i - j)."""
  n = len(tokens)
  i, j = np.indices((n, n))
  return finish(0.5 ** np.clip(i - j, 0, None))


def previous_and_self(tokens, text):
  """Half on the previous token, half on the current one."""
  n = len(tokens)
  return finish(0.5 * np.eye(n) + 0.5 * np.eye(n, k=-1))
