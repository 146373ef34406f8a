"""Synthetic fictional characters for "gradient descent simulates prompting" (jaxlab.meta).

Each item binds a random name to a random two-word description in a context c = "NAME is D1 D2 ." and asks
one of two queries (the answer a is one token):

  'describe'  "the D1 D2 one is" -> NAME   (Character Description: the query paraphrases the description;
                                           the reverse of the context's order)
  'recall'    "NAME is"           -> D1     (the context's own order)

Bindings are drawn fresh per item, so without the context the answer is at chance (1 / num_names or
1 / num_words). `task_arrays` lays items out as the arrays of `jaxlab.meta.objectives` (right-padded).
"""

from __future__ import annotations

import dataclasses

import numpy as np

PAD, IS, THE, ONE, DOT = 0, 1, 2, 3, 4
SPECIAL = ('<pad>', 'is', 'the', 'one', '.')
QUERIES = ('describe', 'recall')
CONTEXT_LEN, QUERY_LEN = 5, 6
PROMPTED_LEN = CONTEXT_LEN + QUERY_LEN


@dataclasses.dataclass(frozen=True)
class Vocab:
  num_names: int = 32
  num_words: int = 32

  @property
  def size(self) -> int:
    return len(SPECIAL) + self.num_names + self.num_words

  def name(self, i):
    return len(SPECIAL) + i

  def word(self, i):
    return len(SPECIAL) + self.num_names + i


def _query(kind: str, n: int, d1: int, d2: int) -> list[int]:
  if kind == 'describe':
    return [THE, d1, d2, ONE, IS, n]
  if kind == 'recall':
    return [n, IS, d1]
  raise ValueError(f'Unknown query {kind!r}; expected one of {QUERIES}.')


def task_arrays(vocab: Vocab, num: int, seed: int, kind: str, *, irrelevant: bool = False) -> dict[str, np.ndarray]:
  """[num, ...] arrays of `num` items (see jaxlab.meta.objectives); irrelevant=True pairs each query with
  another item's context (the inner step and the prompt then carry no information about the answer)."""
  r = np.random.default_rng(seed)
  names = r.integers(0, vocab.num_names, num)
  words = np.stack([r.choice(vocab.num_words, 2, replace=False) for _ in range(num)])
  ctx = np.zeros((num, CONTEXT_LEN), np.int32)
  query = np.zeros((num, QUERY_LEN), np.int32)
  prompted = np.zeros((num, PROMPTED_LEN), np.int32)
  q_pos, p_pos, answer = (np.zeros((num, 1), np.int32) for _ in range(3))
  perm = np.roll(np.arange(num), 1) if irrelevant else np.arange(num)
  for i in range(num):
    n, d1, d2 = vocab.name(names[i]), vocab.word(words[i, 0]), vocab.word(words[i, 1])
    j = perm[i]
    cn, c1, c2 = vocab.name(names[j]), vocab.word(words[j, 0]), vocab.word(words[j, 1])
    c = [cn, IS, c1, c2, DOT]
    q = _query(kind, n, d1, d2)
    ctx[i], query[i, :len(q)], prompted[i, :CONTEXT_LEN + len(q)] = c, q, c + q
    q_pos[i], p_pos[i], answer[i] = len(q) - 2, CONTEXT_LEN + len(q) - 2, q[-1]
  return {'context': ctx, 'context_mask': np.tile(np.r_[0., np.ones(CONTEXT_LEN - 1)], (num, 1)).astype(np.float32),
          'query': query, 'prompted': prompted, 'q_pos': q_pos, 'p_pos': p_pos, 'answer': answer,
          'answer_mask': np.ones((num, 1), np.float32)}
