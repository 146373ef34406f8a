"""TFDS datasets as grain random-access sources (optional extra: `pip install jaxlab[tfds]`).

On pods where datasets are prepared in TFDS's ArrayRecord format (e.g. `lm1b`, `c4` in a GCS
data_dir), `tfds_source(name, split)` returns `tfds.data_source(...)`, which supports `len()` and
random access, so it plugs straight into `grain.MapDataset.source` and `make_lm_pipeline`:

    src = tfds_source('lm1b', 'train', data_dir='gs://bucket/tfds')
    ds = grain.MapDataset.source(src).map(lambda ex: text_field_to_tokens(ex, tok, 'text'))

tensorflow_datasets is imported lazily, so jaxlab works without it; TensorFlow itself is not needed
for reading ArrayRecord data. Nothing is downloaded unless `download=True`: these machines cannot
reach TFDS's hosts, and pods should read a prepared data_dir.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxlab.data.tokenizers import Tokenizer


def _import_tfds() -> Any:
  try:
    return importlib.import_module('tensorflow_datasets')
  except ImportError as e:
    raise ImportError('tensorflow_datasets is not installed; install jaxlab[tfds] '
                      '(pip install "jaxlab[tfds]") to read TFDS datasets.') from e


def tfds_source(name: str, split: str, *, data_dir: str | os.PathLike[str] | None = None,
                decoders: Mapping[str, Any] | None = None, download: bool = False) -> Any:
  """A random-access source (`len`, `__getitem__`) over a prepared TFDS dataset split.

  Args:
    name: TFDS name, optionally with config and version ('lm1b', 'c4/en:3.1.0').
    split: split spec ('train', 'validation[:10%]').
    data_dir: where the prepared dataset lives (default TFDS's own, ~/tensorflow_datasets).
    decoders: TFDS feature decoders (e.g. `tfds.decode.SkipDecoding()` for images).
    download: let TFDS download and prepare the dataset if it is missing.

  Returns:
    The object `tfds.data_source` returns; examples are dicts of numpy values / bytes / str.

  Raises:
    ImportError: tensorflow_datasets is not installed ("install jaxlab[tfds]").
  """
  tfds = _import_tfds()
  return tfds.data_source(name, split=split, data_dir=None if data_dir is None else os.fspath(data_dir),
                          decoders=decoders, download=download)


def text_field_to_tokens(example: Mapping[str, Any], tokenizer: Tokenizer, field: str, *,
                         add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
  """Tokenises `example[field]` (str, bytes or a numpy scalar of either) into int32 [num_tokens].

  `add_bos` / `add_eos` wrap the ids with the tokenizer's bos/eos ids (ValueError if it has none).
  """
  if field not in example:
    raise KeyError(f'Example has no field {field!r}; it has {sorted(example)}.')
  value = example[field]
  if isinstance(value, np.ndarray):
    value = value.item()
  if isinstance(value, bytes):
    value = value.decode('utf-8')
  if not isinstance(value, str):
    raise TypeError(f'Field {field!r} holds {type(value).__name__}, not text.')
  ids = tokenizer.encode(value)
  for flag, special, where in ((add_bos, tokenizer.bos_id, 'bos'), (add_eos, tokenizer.eos_id, 'eos')):
    if flag and (special is None or special < 0):
      raise ValueError(f'add_{where}=True but {tokenizer!r} has no {where} token.')
  ids = ([tokenizer.bos_id] if add_bos else []) + ids + ([tokenizer.eos_id] if add_eos else [])
  return np.asarray(ids, dtype=np.int32)
