"""Synthetic tasks of the PSM experiments: S5 / parity word problems and Zoology-style MQAR.

All generators are numpy, deterministic in their `seed`, and return dicts of int32 / bool arrays:
`tokens` [n, T], `labels` [n, T] and `mask` [n, T] (True where a label counts). Labels are aligned with
inputs: labels[t] is what the model must output after reading tokens[0..t].

* `word_problem` (Merrill et al.): tokens are group elements (S5: the 120 permutations of 5 points;
  A5, A4, S3 and parity = Z2 as cheaper groups), labels[t] is the product a_t ∘ ... ∘ a_0 (the running state). Variable lengths
  in [min_len, max_len] are right-padded with token 0 and mask False.
* `mqar` (Arora et al., Zoology): num_pairs key-value pairs (keys from the lower half of the
  vocabulary, values from the upper half), then queries of the keys at uniformly random later positions;
  only the position of each query key is labelled, with its value.
"""

from __future__ import annotations

import itertools

import numpy as np


def permutation_table(n: int, even_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(perms [g, n], compose [g, g]) of S_n (or A_n if even_only), compose[a, s] = index of a ∘ s (a applied
  after s). Permutations are in lexicographic order, so the identity is index 0."""
  perms = [p for p in itertools.permutations(range(n))
           if not even_only or sum(p[i] > p[j] for i in range(n) for j in range(i + 1, n)) % 2 == 0]
  perms = np.array(perms, np.int32)
  index = {tuple(p): i for i, p in enumerate(perms)}
  compose = np.array([[index[tuple(perms[a][perms[s]])] for s in range(len(perms))]
                      for a in range(len(perms))], np.int32)
  return perms, compose


def s5_table() -> tuple[np.ndarray, np.ndarray]:
  """(perms [120, 5], compose [120, 120]) with compose[a, s] = index of (a ∘ s), i.e. a applied after s."""
  return permutation_table(5)


# Word-problem groups, smallest to largest: Z2, S3 (6), A4 (12), A5 (60, the smallest non-solvable group),
# S5 (120). A5 and S5 word problems are NC1-complete (Barrington); Z2, S3 and A4 are solvable.
GROUPS = {'parity': 2, 's3': 6, 'a4': 12, 'a5': 60, 's5': 120}


def group_table(group: str) -> np.ndarray:
  """The Cayley table compose[a, s] of one of `GROUPS` (identity is index 0)."""
  if group == 'parity':
    return np.array([[0, 1], [1, 0]], np.int32)
  if group in GROUPS:
    return permutation_table(int(group[1]), even_only=group[0] == 'a')[1]
  raise ValueError(f'Unknown group {group!r}; expected one of {sorted(GROUPS)}.')


def _running_products(table: np.ndarray, tokens: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
  """tokens [n, T] group elements, lengths [n] -> the padded word-problem dict (see `word_problem`)."""
  labels = np.zeros_like(tokens)
  state = tokens[:, 0].copy()
  labels[:, 0] = state
  for t in range(1, tokens.shape[1]):
    state = table[tokens[:, t], state]
    labels[:, t] = state
  mask = np.arange(tokens.shape[1])[None, :] < lengths[:, None]
  return {'tokens': np.where(mask, tokens, 0).astype(np.int32),
          'labels': np.where(mask, labels, 0).astype(np.int32), 'mask': mask}


def word_problem(group: str, num: int, min_len: int, max_len: int, seed: int) -> dict[str, np.ndarray]:
  """`num` word problems with lengths uniform in [min_len, max_len], padded to max_len.

  Returns:
    tokens [num, max_len] int32, labels [num, max_len] int32, mask [num, max_len] bool.
  """
  if not 1 <= min_len <= max_len:
    raise ValueError(f'need 1 <= min_len <= max_len, got {min_len}, {max_len}.')
  table = group_table(group)
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, table.shape[0], size=(num, max_len)).astype(np.int32)
  lengths = rng.integers(min_len, max_len + 1, size=num)
  return _running_products(table, tokens, lengths)


class WordProblemStream:
  """An unbounded random-access source of word problems (a grain MapDataset source): record i is drawn from
  its own generator seeded by (seed, i), so any position of the stream is reproducible and a resumed
  iterator continues with fresh problems.

  Length curriculum: record i has a length uniform in [min_len, hi(i)] where hi grows linearly from
  min_len (i = 0) to max_len (i >= curriculum_examples); curriculum_examples = 0 means hi = max_len
  throughout. Records are padded to max_len: tokens [max_len] int32, labels [max_len] int32, mask [max_len].
  """

  def __init__(self, group: str, min_len: int, max_len: int, seed: int, curriculum_examples: int = 0):
    if not 1 <= min_len <= max_len:
      raise ValueError(f'need 1 <= min_len <= max_len, got {min_len}, {max_len}.')
    if curriculum_examples < 0:
      raise ValueError(f'curriculum_examples must be >= 0, got {curriculum_examples}.')
    self.table = group_table(group)
    self.min_len, self.max_len, self.seed = min_len, max_len, seed
    self.curriculum_examples = curriculum_examples

  def longest(self, index: int) -> int:
    """The longest length record `index` may have under the curriculum."""
    if not self.curriculum_examples or index >= self.curriculum_examples:
      return self.max_len
    return self.min_len + (self.max_len - self.min_len) * index // self.curriculum_examples

  def __len__(self) -> int:
    return 2 ** 40

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng((self.seed, int(index)))
    tokens = rng.integers(0, self.table.shape[0], size=(1, self.max_len)).astype(np.int32)
    length = rng.integers(self.min_len, self.longest(int(index)) + 1, size=1)
    return {k: v[0] for k, v in _running_products(self.table, tokens, length).items()}


def mqar(num: int, seq_len: int, num_pairs: int, vocab_size: int, seed: int) -> dict[str, np.ndarray]:
  """Multi-query associative recall.

  Layout: k_1 v_1 ... k_P v_P, then filler tokens (id 0) with each key queried once at a uniformly
  random later position; the label at a query position is that key's value.

  Returns:
    tokens [num, seq_len] int32, labels [num, seq_len] int32, mask [num, seq_len] bool.
  """
  half = vocab_size // 2
  if 2 * num_pairs + num_pairs > seq_len or num_pairs >= half:
    raise ValueError(f'seq_len {seq_len} / vocab {vocab_size} too small for {num_pairs} pairs.')
  rng = np.random.default_rng(seed)
  tokens = np.zeros((num, seq_len), np.int32)
  labels = np.zeros((num, seq_len), np.int32)
  mask = np.zeros((num, seq_len), bool)
  for i in range(num):
    keys = rng.choice(np.arange(1, half), num_pairs, replace=False)
    values = rng.choice(np.arange(half, vocab_size), num_pairs, replace=True)
    tokens[i, 0:2 * num_pairs:2], tokens[i, 1:2 * num_pairs:2] = keys, values
    slots = np.sort(rng.choice(np.arange(2 * num_pairs, seq_len), num_pairs, replace=False))
    order = rng.permutation(num_pairs)
    tokens[i, slots], labels[i, slots], mask[i, slots] = keys[order], values[order], True
  return {'tokens': tokens, 'labels': labels, 'mask': mask}
