"""Deterministic, resumable grain pipelines for language modelling.

`TokenWindows` turns a 1-D token array into a random-access source of non-overlapping windows;
`make_lm_pipeline` shuffles it (a fresh, seed-determined order every epoch), gives this host its
share and batches it; `make_eval_batches` covers every window exactly once with a row mask.

The training pipeline is `MapDataset.source(src).shuffle(seed).repeat(num_epochs)[i::n].batch(b)`:
grain's shuffle folds the epoch number into the seed, so epochs differ but everything is a pure
function of (seed, index). Host `i` of `n` takes elements i, i+n, i+2n, ... of the one global
stream, so the host batches of a step are disjoint and together form the global batch that a
single-host run would see. The iterator's state is just the next index: `get_state()` /
`set_state()` resume exactly, across epoch boundaries too.

Checkpointing the iterator with orbax (grain 0.2.18 / orbax-checkpoint 0.12.8):

    import orbax.checkpoint as ocp
    mngr = ocp.CheckpointManager(workdir)
    mngr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(train_state),
        data=grain.checkpoint.CheckpointSave(data_iter)))
    mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=grain.checkpoint.CheckpointRestore(data_iter)))   # restores data_iter in place

(`grain.checkpoint.CheckpointHandler` is the handler behind both; each host writes its own
`process_<i>-of-<n>.json`.)
"""

from __future__ import annotations

from typing import Any

import grain
import jax
import numpy as np

Batch = dict[str, np.ndarray]

# Threads read windows ahead of the consumer; a short buffer keeps memory small on CPU hosts.
DEFAULT_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=16)


class TokenWindows:
  """Random-access source of next-token-prediction windows over a 1-D token array.

  Window `i` reads tokens[i*seq_len : i*seq_len + seq_len + 1] and yields
  {'inputs': int32[seq_len], 'targets': int32[seq_len]} with targets = inputs shifted by one.
  Windows do not overlap (stride seq_len; the last token of a window is the first of the next
  window's inputs), and the tail shorter than a window is dropped. Implements grain's
  RandomAccessDataSource protocol (`__len__`, `__getitem__`); `tokens` may be a np.memmap.
  """

  def __init__(self, tokens: np.ndarray, seq_len: int):
    if seq_len < 1:
      raise ValueError(f'seq_len must be positive, got {seq_len}.')
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
      raise ValueError(f'tokens must be 1-D, got shape {tokens.shape}.')
    if len(tokens) < seq_len + 1:
      raise ValueError(f'{len(tokens)} tokens are too few for one window of seq_len={seq_len} '
                       f'(needs seq_len + 1 = {seq_len + 1}).')
    self.tokens = tokens
    self.seq_len = seq_len
    self._len = (len(tokens) - 1) // seq_len

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> Batch:
    index = int(index)
    if index < 0:
      index += self._len
    if not 0 <= index < self._len:
      raise IndexError(f'window {index} out of range [0, {self._len}).')
    start = index * self.seq_len
    window = np.asarray(self.tokens[start:start + self.seq_len + 1], dtype=np.int32)
    return {'inputs': window[:-1], 'targets': window[1:]}

  def __repr__(self) -> str:
    return f'TokenWindows(num_tokens={len(self.tokens)}, seq_len={self.seq_len}, windows={self._len})'


def _host_share(global_batch_size: int, process_index: int | None,
                process_count: int | None) -> tuple[int, int, int]:
  """(process_index, process_count, per-host batch size), validated."""
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} must lie in [0, process_count={process_count}).')
  if global_batch_size < 1 or global_batch_size % process_count:
    raise ValueError(f'global_batch_size={global_batch_size} must be a positive multiple of '
                     f'process_count={process_count}.')
  return process_index, process_count, global_batch_size // process_count


def make_lm_dataset(source: Any, *, global_batch_size: int, seed: int, shuffle: bool = True,
                    num_epochs: int | None = None, process_index: int | None = None,
                    process_count: int | None = None, drop_remainder: bool = True) -> grain.MapDataset:
  """The batched `grain.MapDataset` behind `make_lm_pipeline` (same arguments)."""
  process_index, process_count, host_batch = _host_share(global_batch_size, process_index,
                                                         process_count)
  if len(source) == 0:
    raise ValueError('source is empty.')
  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)  # Reseeds the shuffle per epoch; None repeats forever.
  ds = ds[process_index::process_count]
  return ds.batch(host_batch, drop_remainder=drop_remainder)


def make_lm_pipeline(source: Any, *, global_batch_size: int, seed: int, shuffle: bool = True,
                     num_epochs: int | None = None, process_index: int | None = None,
                     process_count: int | None = None, drop_remainder: bool = True,
                     read_options: grain.ReadOptions | None = None) -> grain.DatasetIterator:
  """Returns an iterator of this host's training batches, resumable via get_state/set_state.

  Args:
    source: random-access source (e.g. `TokenWindows`, `tfds.data_source`) of dict examples.
    global_batch_size: examples per step over all hosts; must divide by process_count.
    seed: the shuffle seed; batches are a pure function of the seed and the step.
    shuffle: shuffle each epoch (differently per epoch). If False, epochs repeat source order.
    num_epochs: passes over the data; None repeats forever.
    process_index: this host's index (default jax.process_index()).
    process_count: number of hosts (default jax.process_count()).
    drop_remainder: drop a final short batch (only matters for finite num_epochs).
    read_options: grain thread/prefetch settings (default 2 threads, 16 batches ahead).

  Returns:
    A grain.DatasetIterator yielding {key: np.ndarray[global_batch_size // process_count, ...]}.

  Raises:
    ValueError: global_batch_size does not divide by process_count, or bad process_index.
  """
  ds = make_lm_dataset(source, global_batch_size=global_batch_size, seed=seed, shuffle=shuffle,
                       num_epochs=num_epochs, process_index=process_index,
                       process_count=process_count, drop_remainder=drop_remainder)
  return iter(ds.to_iter_dataset(read_options or DEFAULT_READ_OPTIONS))


class _PadAndMask(grain.transforms.Map):
  """Zero-pads a dict batch to `batch_size` rows and adds `mask` [batch_size] (1.0 = real row)."""

  def __init__(self, batch_size: int):
    self.batch_size = batch_size

  def map(self, batch: Batch) -> Batch:
    rows = len(next(iter(batch.values())))
    pad = self.batch_size - rows
    out = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) if pad else v
           for k, v in batch.items()}
    out['mask'] = (np.arange(self.batch_size) < rows).astype(np.float32)
    return out


def make_eval_batches(source: Any, batch_size: int) -> grain.MapDataset:
  """All of `source` in order, in batches of `batch_size`, each with a float32 `mask` [batch].

  The last batch is zero-padded to full size; `mask` is 1.0 on real rows and 0.0 on padding, so a
  masked mean covers every example exactly once. The result is a re-iterable, indexable
  `grain.MapDataset` (`len()` gives the number of batches; iterate it, or index it directly).
  """
  if batch_size < 1:
    raise ValueError(f'batch_size must be positive, got {batch_size}.')
  if len(source) == 0:
    raise ValueError('source is empty.')
  return (grain.MapDataset.source(source).batch(batch_size, drop_remainder=False)
          .map(_PadAndMask(batch_size)))

