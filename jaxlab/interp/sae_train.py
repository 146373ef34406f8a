"""Training SAEs through the one trainer: a sharded, resumable activation store filled by the hooks, and the
Task that reads it.

    store = ActivationStore(path)
    store.fill(batches, capture)     # capture(batch) -> [rows, d]; shard i = batch i; existing shards skipped
    task = sae_task(sae_cfg, store, train_cfg, eval_rows=4096)
    result = jaxlab.train.train(train_cfg, workdir, task)

Layout of a store: `shard_00000.npy` ... (float32 [rows_i, d], each written atomically, so an interrupted
fill resumes at the first missing shard) and `stats.json` (d, rows, mean norm, the √d / mean‖x‖ scale,
written once all shards exist). Rows are read through memory maps, so the store can exceed RAM.

The train pipeline is grain's `source → shuffle(seed) → repeat → batch` (jaxlab.data.pipeline), with two
per-example columns added: 'x' scaled by `store.scale` and 'l1' = λ of that batch's step (`sae.l1_schedule`,
from the batch index, hence exact on resume). The last `eval_rows` rows of the store are held out of
training for the trainer's eval (l0, mse, explained variance, dead / dense fractions via `sae.metric_sums`).
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab.data import pipeline
from jaxlab.interp import sae as sae_lib
from jaxlab.train.runrecord import atomic_write_bytes
from jaxlab.train.trainer import Task

STATS = 'stats.json'


class ActivationStore:
  """Activation rows [N, d] in numbered .npy shards; grain RandomAccessDataSource over the rows."""

  def __init__(self, directory: str):
    self.directory = os.path.abspath(directory)
    self._shards: list[np.ndarray] | None = None
    self._offsets: np.ndarray | None = None
    self._limit: int | None = None

  # --- writing ------------------------------------------------------------------------------------------
  def shard_path(self, i: int) -> str:
    return os.path.join(self.directory, f'shard_{i:05d}.npy')

  def fill(self, batches: Iterable[Any], capture: Callable[[Any], np.ndarray]) -> int:
    """Writes shard i = capture(batch i) for every batch whose shard is missing; returns the shards written.

    `batches` must be deterministic (a rerun yields the same batches) so skipped shards match.
    """
    written = 0
    d = None
    for i, batch in enumerate(batches):
      if os.path.exists(self.shard_path(i)):
        continue
      rows = np.asarray(capture(batch), np.float32)
      if rows.ndim != 2 or (d is not None and rows.shape[1] != d):
        raise ValueError(f'capture must return [rows, d] with one d, got {rows.shape} for batch {i}.')
      d = rows.shape[1]
      buf = io.BytesIO()
      np.save(buf, rows)
      atomic_write_bytes(self.shard_path(i), buf.getvalue())
      written += 1
    self.finalize()
    return written

  def finalize(self) -> dict[str, float]:
    """Computes and writes stats.json (rows, d, mean norm, scale = √d / mean‖x‖, mean vector)."""
    self._shards = None
    shards = self._open()
    if not shards:
      raise ValueError(f'activation store {self.directory} has no shards.')
    n, d = int(self._offsets[-1]), shards[0].shape[1]
    norm_sum, vec_sum = 0.0, np.zeros(d, np.float64)
    for s in shards:
      norm_sum += float(np.linalg.norm(s, axis=1).sum())
      vec_sum += s.sum(0, dtype=np.float64)
    mean_norm = norm_sum / n
    stats = {'rows': n, 'd': d, 'mean_norm': mean_norm, 'scale': float(np.sqrt(d) / max(mean_norm, 1e-12)),
             'mean': (vec_sum / n).tolist()}
    atomic_write_bytes(os.path.join(self.directory, STATS), json.dumps(stats).encode())
    return stats

  # --- reading ------------------------------------------------------------------------------------------
  def _open(self) -> list[np.ndarray]:
    if self._shards is None:
      paths = sorted(glob.glob(os.path.join(self.directory, 'shard_*.npy')))
      expected = [self.shard_path(i) for i in range(len(paths))]
      if paths != expected:
        raise ValueError(f'activation store {self.directory}: shards are not numbered 0..{len(paths) - 1}.')
      self._shards = [np.load(p, mmap_mode='r') for p in paths]
      dims = {s.shape[1] for s in self._shards}
      if len(dims) > 1:
        raise ValueError(f'activation store {self.directory}: shards of different widths {sorted(dims)}.')
      self._offsets = np.cumsum([0] + [s.shape[0] for s in self._shards])
    return self._shards

  @property
  def stats(self) -> dict[str, Any]:
    path = os.path.join(self.directory, STATS)
    if not os.path.exists(path):
      raise FileNotFoundError(f'{path}: the activation store was never finalised (run fill()).')
    with open(path) as f:
      return json.load(f)

  @property
  def scale(self) -> float:
    return float(self.stats['scale'])

  def rows(self, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) as one float32 array (unscaled)."""
    self._open()
    idx = np.arange(start, stop)
    return np.stack([self[i] for i in idx]) if len(idx) else np.zeros((0, self.stats['d']), np.float32)

  def limited(self, limit: int) -> 'ActivationStore':
    """The same store seen as its first `limit` rows (the training part)."""
    out = ActivationStore(self.directory)
    out._limit = int(limit)
    return out

  def total_rows(self) -> int:
    self._open()
    return int(self._offsets[-1])

  def __len__(self) -> int:
    n = self.total_rows()
    return n if self._limit is None else min(n, self._limit)

  def __getitem__(self, index: int) -> np.ndarray:
    shards = self._open()
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f'row {index} out of range [0, {len(self)}).')
    s = int(np.searchsorted(self._offsets, index, side='right') - 1)
    return np.asarray(shards[s][index - self._offsets[s]], np.float32)


def train_data(store: ActivationStore, *, batch_size: int, seed: int, scale: float,
               l1_at_step: Callable[[int], float]):
  """Resumable grain iterator of {'x': [batch, d] scaled, 'l1': [batch] λ of this step}."""
  ds = pipeline.make_lm_dataset(store, global_batch_size=batch_size, seed=seed)

  def attach(step, x):
    x = np.asarray(x, np.float32) * scale
    return {'x': x, 'l1': np.full((x.shape[0],), l1_at_step(step), np.float32)}

  return iter(ds.map_with_index(attach).to_iter_dataset(pipeline.DEFAULT_READ_OPTIONS))


def sae_task(cfg: sae_lib.SaeConfig, store: ActivationStore, train_cfg: ml_collections.ConfigDict, *,
             eval_rows: int = 0, eval_batch: int = 1024) -> Task:
  """Task for `jaxlab.train.train`: the SAE loss on the store's first N − eval_rows rows; eval on the rest."""
  n = store.total_rows()
  if not 0 <= eval_rows < n:
    raise ValueError(f'eval_rows={eval_rows} must be in [0, {n}) (the store holds {n} rows).')
  if store.stats['d'] != cfg.d_in:
    raise ValueError(f'SaeConfig.d_in={cfg.d_in} but the store {store.directory} holds d={store.stats["d"]}.')
  scale = store.scale
  data = train_data(store.limited(n - eval_rows), batch_size=int(train_cfg.batch_size), seed=int(train_cfg.seed),
                    scale=scale, l1_at_step=sae_lib.l1_schedule(cfg, int(train_cfg.total_steps)))

  def loss_fn(params, batch, rng):
    del rng
    return sae_lib.loss(cfg, params, batch['x'], batch['l1'])

  def eval_step(params, batch):
    sums = sae_lib.metric_sums(cfg, params, batch['x'], batch['mask'])
    sums.pop('sum_x'), sums.pop('fired')      # vectors: the trainer's eval means scalars only
    return sums

  def eval_data():
    held = store.rows(n - eval_rows, n) * scale
    for s in range(0, len(held), eval_batch):
      chunk = held[s:s + eval_batch]
      pad = eval_batch - len(chunk)
      mask = np.concatenate([np.ones(len(chunk), np.float32), np.zeros(pad, np.float32)])
      yield {'x': np.concatenate([chunk, np.zeros((pad, cfg.d_in), np.float32)]), 'mask': mask}

  def finalize(means):
    mean = np.asarray(store.stats['mean']) * scale
    total_var = means['sq_norm'] - float(np.sum(mean ** 2))   # the store's mean as E x (all rows)
    return {'explained_variance': 1.0 - means['sq_err'] / total_var}

  return Task(init_params=lambda rng: sae_lib.init_params(cfg, rng), loss_fn=loss_fn, train_data=data,
              eval_step=eval_step if eval_rows else None, eval_data=eval_data if eval_rows else None,
              eval_finalize=finalize if eval_rows else None)


def evaluate_rows(cfg: sae_lib.SaeConfig, params, x: np.ndarray, *, batch: int = 1024,
                  dense_threshold: float = 0.1) -> dict[str, float]:
  """`sae.finalize_metrics` over rows x [N, d] (already scaled), accumulated batch by batch."""
  fn = jax.jit(lambda p, xb, w: sae_lib.metric_sums(cfg, p, xb, w))
  sums = None
  for s in range(0, len(x), batch):
    chunk = np.asarray(x[s:s + batch], np.float32)
    pad = batch - len(chunk)
    w = np.concatenate([np.ones(len(chunk), np.float32), np.zeros(pad, np.float32)])
    chunk = np.concatenate([chunk, np.zeros((pad, x.shape[1]), np.float32)])
    sums = sae_lib.add_sums(sums, fn(params, jnp.asarray(chunk), jnp.asarray(w)))
  return sae_lib.finalize_metrics(sums, dense_threshold)
