"""Data for experiments/elf: WordPiece windows of a corpus, the compact vocabulary, cached latents, pipelines.

`prepare(config.data, workdir)` builds (once per data folder, shared by every run that names the same
`config.data.data_dir`):

* windows [n, seq_len] of MiniLM WordPiece ids ([CLS] + seq_len - 2 tokens + [SEP]), the last
  `val_fraction` of them (contiguous tail) held out;
* the compact vocabulary: the sorted MiniLM ids that occur in any window (the decoders predict only
  those; `to_compact` / `to_minilm` map between the two id spaces);
* the frozen MiniLM latents of the training windows (float16, `jaxlab.data.text_latents` cache);
* train_text.txt: the training windows decoded back to text (lower-case, WordPiece spacing), one per
  line: the corpus of the autoregressive evaluator LM (experiments/lm), so that it scores samples in
  the same text normalisation it was trained on.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np
from absl import logging

from jaxlab.data import corpora, pipeline, text_latents


@dataclasses.dataclass
class ElfData:
  """Everything the ELF / MDLM runs and the evaluation need."""
  train_windows: np.ndarray      # [n_train, seq_len] MiniLM ids
  val_windows: np.ndarray        # [n_val, seq_len] MiniLM ids
  vocab: np.ndarray              # [V] sorted MiniLM ids; compact id = index
  train_latents: np.ndarray | None  # [n_train, seq_len, 384] float16 memmap (None when not needed)
  val_latents: np.ndarray | None    # [n_val, seq_len, 384] float16 memmap (None when not needed)
  tokenizer: object              # MiniLM WordPiece tokenizer (HF tokenizers)
  data_dir: str                  # where the shared files live

  @property
  def vocab_size(self) -> int:
    return int(self.vocab.shape[0])

  def to_compact(self, ids: np.ndarray) -> np.ndarray:
    return np.searchsorted(self.vocab, ids).astype(np.int32)

  def to_minilm(self, compact: np.ndarray) -> np.ndarray:
    return self.vocab[np.clip(np.asarray(compact), 0, self.vocab_size - 1)]

  def special(self, piece: str) -> int:
    """Compact id of a special token such as '[SEP]'."""
    return int(self.to_compact(np.asarray([self.tokenizer.token_to_id(piece)]))[0])

  def decode(self, compact_rows) -> list[str]:
    """Compact id rows -> texts (special tokens and padding dropped)."""
    return [self.tokenizer.decode(self.to_minilm(np.asarray(r)).tolist(), skip_special_tokens=True)
            for r in compact_rows]


def data_dir(cfg: ml_collections.ConfigDict, workdir: str) -> str:
  return cfg.data_dir or os.path.join(workdir, 'data')


def prepare(cfg: ml_collections.ConfigDict, workdir: str, *, need_latents: bool = True) -> ElfData:
  """Windows, vocabulary, latents and the evaluator-LM text (see the module docstring)."""
  if not 0. < float(cfg.val_fraction) < 1.:
    raise ValueError(f'config.data.val_fraction={cfg.val_fraction} must be in (0, 1)')
  encoder, enc_params, tok = text_latents.load_minilm(cfg.cache_dir or None)
  text_latents.check_length(encoder, int(cfg.seq_len), 'config.data.seq_len')
  folder = data_dir(cfg, workdir)
  os.makedirs(folder, exist_ok=True)
  windows = text_latents.wordpiece_windows(tok, corpora.load_corpus(cfg.corpus, cfg.text_files, cache_dir=cfg.cache_dir), int(cfg.seq_len))
  n_val = max(1, int(round(len(windows) * float(cfg.val_fraction))))
  if len(windows) - n_val < 1:
    raise ValueError(f'{len(windows)} windows leave none for training with val_fraction={cfg.val_fraction}')
  train, val = windows[:-n_val], windows[-n_val:]
  if int(cfg.max_train_windows):
    train = train[:int(cfg.max_train_windows)]
  if int(cfg.max_val_windows):
    val = val[:int(cfg.max_val_windows)]
  vocab = np.unique(np.concatenate([train.ravel(), val.ravel()]))
  logging.info('Corpus %s: %d windows of %d WordPiece tokens (%d train, %d val), compact vocab %d',
               cfg.corpus, len(windows), cfg.seq_len, len(train), len(val), len(vocab))
  text_path = os.path.join(folder, 'train_text.txt')
  if not os.path.exists(text_path):
    lines = tok.decode_batch([w.tolist() for w in train], skip_special_tokens=True)
    with open(text_path + '.tmp', 'w', encoding='utf-8') as f:
      f.write('\n'.join(lines) + '\n')
    os.replace(text_path + '.tmp', text_path)
  latents = [None, None]
  if need_latents:
    latents = [text_latents.cached_latents(folder, w, encoder, enc_params, batch_size=int(cfg.encode_batch_size))
               for w in (train, val)]
  return ElfData(train, val, vocab, latents[0], latents[1], tok, folder)


class WindowSource:
  """Random-access source: window i -> {'tokens': compact ids [seq_len], 'latents': float32 [seq_len, C]}."""

  def __init__(self, tokens: np.ndarray, latents: np.ndarray | None):
    self.tokens, self.latents = tokens, latents

  def __len__(self) -> int:
    return len(self.tokens)

  def __getitem__(self, i):
    i = int(i)
    out = {'tokens': self.tokens[i]}
    if self.latents is not None:
      out['latents'] = np.asarray(self.latents[i], np.float32)
    return out


def train_pipeline(data: ElfData, batch_size: int, seed: int, with_latents: bool):
  """Deterministic, checkpointable grain iterator over shuffled training windows (repeats forever)."""
  src = WindowSource(data.to_compact(data.train_windows), data.train_latents if with_latents else None)
  return pipeline.make_lm_pipeline(src, global_batch_size=batch_size, seed=seed)


def eval_batches(data: ElfData, batch_size: int, max_batches: int, latents: np.ndarray | None):
  """Validation windows in order, padded to full batches with a row 'mask' (see make_eval_batches)."""
  n = len(data.val_windows) if not max_batches else min(len(data.val_windows), max_batches * batch_size)
  src = WindowSource(data.to_compact(data.val_windows[:n]), None if latents is None else latents[:n])
  return pipeline.make_eval_batches(src, batch_size)
