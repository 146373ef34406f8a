"""Synthetic tasks of the PSM experiments: S5 / parity word problems and Zoology-style MQAR.

All generators are numpy, deterministic in their `seed`, and return dicts of int32 / bool arrays:
`tokens` [n, T], `labels` [n, T] and `mask` [n, T] (True where a label counts). Labels are aligned with
inputs: labels[t] is what the model must output after reading tokens[0..t].

* `word_problem` (Merrill et al.): tokens are group elements (S5: the 120 permutations of 5 points;
  parity: Z2), labels[t] is the product a_t ∘ ... ∘ a_0 (the running state). Variable lengths
  in [min_len, max_len] are right-padded with token 0 and mask False.
* `mqar` (Arora et al., Zoology): num_pairs key-value pairs (keys from the lower half of the
  vocabulary, values from the upper half), then queries of the keys at uniformly random later positions;
  only the position of each query key is labelled, with its value.
"""

from __future__ import annotations

import itertools

import numpy as np


def s5_table() -> tuple[np.ndarray, np.ndarray]:
  """(perms [120, 5], compose [120, 120]) with compose[a, s] = index of (a ∘ s), i.e. a applied after s."""
  perms = np.array(list(itertools.permutations(range(5))), np.int32)
  index = {tuple(p): i for i, p in enumerate(perms)}
  compose = np.array([[index[tuple(perms[a][perms[s]])] for s in range(120)] for a in range(120)],
                     np.int32)
  return perms, compose


def group_table(group: str) -> np.ndarray:
  """The Cayley table compose[a, s] of 's5' (120 elements; identity is index 0) or 'parity' (Z2)."""
  if group == 's5':
    return s5_table()[1]
  if group == 'parity':
    return np.array([[0, 1], [1, 0]], np.int32)
  raise ValueError(f'Unknown group {group!r}; expected "s5" or "parity".')


def word_problem(group: str, num: int, min_len: int, max_len: int, seed: int) -> dict[str, np.ndarray]:
  """`num` word problems with lengths uniform in [min_len, max_len], padded to max_len.

  Returns:
    tokens [num, max_len] int32, labels [num, max_len] int32, mask [num, max_len] bool.
  """
  if not 1 <= min_len <= max_len:
    raise ValueError(f'need 1 <= min_len <= max_len, got {min_len}, {max_len}.')
  table = group_table(group)
  g = table.shape[0]
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, g, size=(num, max_len)).astype(np.int32)
  labels = np.zeros_like(tokens)
  state = tokens[:, 0].copy()
  labels[:, 0] = state
  for t in range(1, max_len):
    state = table[tokens[:, t], state]
    labels[:, t] = state
  lengths = rng.integers(min_len, max_len + 1, size=num)
  mask = np.arange(max_len)[None, :] < lengths[:, None]
  tokens = np.where(mask, tokens, 0).astype(np.int32)
  return {'tokens': tokens, 'labels': np.where(mask, labels, 0).astype(np.int32), 'mask': mask}


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
