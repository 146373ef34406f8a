"""Helpers shared by attention programs (the only jaxlab module a sandboxed program may import).

A program is `f(tokens: list[str], text: str) -> np.ndarray [n, n]` where tokens are the decoded
sub-word strings of one sentence (a leading space marks a word start, GPT-2/SmolLM2 style) and the
result is row-stochastic and causal (row i puts mass only on keys j <= i). Programs write raw scores
and call `finish`, which applies the causal mask and normalises; a row with no mass falls back to the
first token (the attention sink), so every program is total.
"""

from __future__ import annotations

import numpy as np

PUNCT = set('.,;:!?-()[]{}"\'`')
SENT_END = set('.!?')


def finish(m: np.ndarray) -> np.ndarray:
  """Causal mask + row normalisation; empty rows go to key 0. [n, n] -> [n, n] float64."""
  m = np.tril(np.nan_to_num(np.asarray(m, np.float64), nan=0., posinf=0., neginf=0.).clip(0, None))
  n = m.shape[0]
  s = m.sum(-1, keepdims=True)
  empty = (s[:, 0] <= 0)
  if n:
    m[empty, 0] = 1.
  s = m.sum(-1, keepdims=True)
  return m / np.where(s > 0, s, 1.)


def zeros(tokens) -> np.ndarray:
  return np.zeros((len(tokens), len(tokens)))


def norm_tok(t: str) -> str:
  """Token text without surrounding white space, lower-cased."""
  return t.strip().lower()


def is_word_start(t: str, i: int) -> bool:
  """Whether token i begins a word (leading space/newline, first token, or a punctuation token)."""
  return i == 0 or t[:1].isspace() or (t.strip()[:1] in PUNCT)


def word_ids(tokens) -> list[int]:
  """Word index of every token (a word = a word-start token and its continuation pieces)."""
  out, w = [], -1
  for i, t in enumerate(tokens):
    if is_word_start(t, i):
      w += 1
    out.append(max(w, 0))
  return out


def is_punct(t: str) -> bool:
  s = t.strip()
  return bool(s) and all(c in PUNCT for c in s)


def sentence_ids(tokens) -> list[int]:
  """Sentence index of every token (a new sentence starts after . ! ?)."""
  out, s, prev_end = [], 0, False
  for t in tokens:
    if prev_end and not is_punct(t):
      s += 1
    out.append(s)
    prev_end = bool(t.strip()) and t.strip()[-1] in SENT_END
  return out
