"""Token-identity programs: repeats, previous occurrences, induction."""

from jaxlab.interp.program_lib import finish, norm_tok, zeros


def same_token(tokens, text):
  """Attend to every earlier-or-current occurrence of the same token (case-insensitive, trimmed)."""
  m = zeros(tokens)
  keys = [norm_tok(t) for t in tokens]
  for i in range(len(tokens)):
    for j in range(i + 1):
      if keys[j] == keys[i]:
        m[i, j] = 1.
  return finish(m)


def previous_occurrence(tokens, text):
  """Attend to the most recent earlier occurrence of the current token (else the first token)."""
  m = zeros(tokens)
  keys = [norm_tok(t) for t in tokens]
  for i in range(len(tokens)):
    for j in range(i - 1, -1, -1):
      if keys[j] == keys[i]:
        m[i, j] = 1.
        break
  return finish(m)


def induction(tokens, text):
  """Induction: attend to the token right after the previous occurrence of the current token."""
  m = zeros(tokens)
  keys = [norm_tok(t) for t in tokens]
  for i in range(len(tokens)):
    for j in range(i - 1, -1, -1):
      if keys[j] == keys[i] and j + 1 <= i:
        m[i, j + 1] = 1.
        break
  return finish(m)


def duplicate_or_self(tokens, text):
  """Attend to earlier copies of the current token; if none, to itself."""
  m = zeros(tokens)
  keys = [norm_tok(t) for t in tokens]
  for i in range(len(tokens)):
    hits = [j for j in range(i) if keys[j] == keys[i]]
    for j in hits or [i]:
      m[i, j] = 1.
  return finish(m)
