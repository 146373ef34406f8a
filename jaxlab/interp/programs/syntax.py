"""Punctuation, delimiter, word-boundary, sub-word and sentence programs."""

from jaxlab.interp.program_lib import (SENT_END, finish, is_punct, is_word_start, sentence_ids,
                                       word_ids, zeros)


def last_punctuation(tokens, text):
  """Attend to the most recent punctuation token (inclusive)."""
  m = zeros(tokens)
  last = None
  for i, t in enumerate(tokens):
    if is_punct(t):
      last = i
    if last is not None:
      m[i, last] = 1.
  return finish(m)


def all_punctuation(tokens, text):
  """Uniform over all punctuation tokens so far."""
  m = zeros(tokens)
  for i in range(len(tokens)):
    for j in range(i + 1):
      if is_punct(tokens[j]):
        m[i, j] = 1.
  return finish(m)


def last_comma(tokens, text):
  """Attend to the most recent comma."""
  m = zeros(tokens)
  last = None
  for i, t in enumerate(tokens):
    if t.strip() == ',':
      last = i
    if last is not None:
      m[i, last] = 1.
  return finish(m)


def last_sentence_end(tokens, text):
  """Attend to the most recent sentence-final mark (. ! ?)."""
  m = zeros(tokens)
  last = None
  for i, t in enumerate(tokens):
    if t.strip() and t.strip()[-1] in SENT_END:
      last = i
    if last is not None:
      m[i, last] = 1.
  return finish(m)


def open_delimiter(tokens, text):
  """Attend to the most recent opening bracket or quote."""
  m = zeros(tokens)
  last = None
  for i, t in enumerate(tokens):
    if t.strip()[:1] in ('(', '[', '{', '"', "'", '`'):
      last = i
    if last is not None:
      m[i, last] = 1.
  return finish(m)


def word_start(tokens, text):
  """Attend to the first sub-word piece of the current word."""
  m = zeros(tokens)
  w = word_ids(tokens)
  for i in range(len(tokens)):
    m[i, w.index(w[i])] = 1.
  return finish(m)


def same_word_pieces(tokens, text):
  """Uniform over the pieces of the current word seen so far."""
  m = zeros(tokens)
  w = word_ids(tokens)
  for i in range(len(tokens)):
    for j in range(i + 1):
      if w[j] == w[i]:
        m[i, j] = 1.
  return finish(m)


def previous_word_end(tokens, text):
  """Attend to the last piece of the previous word."""
  m = zeros(tokens)
  w = word_ids(tokens)
  for i in range(len(tokens)):
    start = w.index(w[i])
    m[i, max(start - 1, 0)] = 1.
  return finish(m)


def previous_word_start(tokens, text):
  """Attend to the first piece of the previous word."""
  m = zeros(tokens)
  w = word_ids(tokens)
  for i in range(len(tokens)):
    target = max(w[i] - 1, 0)
    m[i, w.index(target)] = 1.
  return finish(m)


def word_starts(tokens, text):
  """Uniform over all word-initial tokens so far."""
  m = zeros(tokens)
  for i in range(len(tokens)):
    for j in range(i + 1):
      if is_word_start(tokens[j], j):
        m[i, j] = 1.
  return finish(m)


def sentence_start(tokens, text):
  """Attend to the first token of the current sentence."""
  m = zeros(tokens)
  s = sentence_ids(tokens)
  for i in range(len(tokens)):
    m[i, s.index(s[i])] = 1.
  return finish(m)


def same_sentence(tokens, text):
  """Uniform over the current sentence so far."""
  m = zeros(tokens)
  s = sentence_ids(tokens)
  for i in range(len(tokens)):
    for j in range(i + 1):
      if s[j] == s[i]:
        m[i, j] = 1.
  return finish(m)


def capitalized(tokens, text):
  """Uniform over capitalised words so far (names, sentence starts)."""
  m = zeros(tokens)
  for i in range(len(tokens)):
    for j in range(i + 1):
      if tokens[j].strip()[:1].isupper():
        m[i, j] = 1.
  return finish(m)


def digits(tokens, text):
  """Uniform over number tokens so far."""
  m = zeros(tokens)
  for i in range(len(tokens)):
    for j in range(i + 1):
      if tokens[j].strip()[:1].isdigit():
        m[i, j] = 1.
  return finish(m)
