"""Running untrusted (e.g. LLM-written) Python source in a locked-down child process.

Every path that runs code jaxlab did not write goes through `run`: the parent never executes the
source. The child computes what the caller needs (a trusted *task* function, named as
'package.module:function', receives the untrusted namespace and JSON arguments) and sends back JSON
metadata plus plain numeric numpy arrays, which the parent reads with `np.load(allow_pickle=False)`.

    result = sandbox.run(source, 'jaxlab.interp.proposer:program_matrices', {'sentences': [...]})
    result.meta, result.arrays          # or sandbox.Rejected(reason) is raised

Layers, outermost first (each refusal or failure becomes `Rejected` with a one-line reason):
* OS (when the parent is root and `unshare`/`setpriv` exist, probed once): the child runs in its own
  network namespace (no network at all) and mount namespace with every file system remounted
  read-only, with all capabilities dropped and no_new_privs (so RLIMIT_NPROC binds even for uid 0).
* a fresh interpreter (`python -I`, not a fork of the parent), an empty temporary working folder, a
  scrubbed environment, single-threaded BLAS;
* resource limits: RLIMIT_AS (memory), RLIMIT_CPU, RLIMIT_FSIZE = 0, RLIMIT_NOFILE, RLIMIT_NPROC,
  RLIMIT_CORE = 0, and a wall-clock timeout after which the parent kills the child;
* a PEP 578 audit hook installed before the source is compiled, default-deny: only events that
  benign numpy code raises pass (read-only opens and directory listings under sys.prefix /
  sys.base_prefix / site-packages, imports, ...). A refused event writes its reason to the parent
  and ends the child at once (`os._exit`), so the program cannot catch the refusal and go on.
  Compiled-extension loading is refused (`_imp.create_dynamic` is replaced; ctypes is kept out of
  the child), and so are compile/exec/code objects called from the untrusted code once it is loaded.

Limits: the audit hook is a Python-level barrier. Code that corrupts the interpreter's memory (numpy
can build an array over any address through `__array_interface__`) gets past it; against that only
the OS layer holds (read-only file systems, no network, no capabilities, rlimits), which is why it is
used whenever available (`os_isolation()` says whether it is).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import pathlib
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

MAGIC = b'JXSB'
READY = b'JXRD'           # sent by the child just before it runs the untrusted source
REFUSED_EXIT = 86         # the child's exit status after a refusal
_HEADER = struct.Struct('>4sQ')


class Rejected(Exception):
  """The untrusted code was refused, failed, or exceeded a limit; str() is the reason."""

  def __init__(self, reason: str, kind: str):
    super().__init__(reason)
    self.reason, self.kind = reason, kind   # kind: refused | error | timeout | limit | crash | protocol


@dataclasses.dataclass(frozen=True)
class Limits:
  timeout_s: float = 10.               # wall clock for the untrusted code (from its load to the result)
  startup_s: float = 60.               # wall clock for the child's start and trusted imports
  cpu_s: int = 10                      # RLIMIT_CPU (SIGXCPU ends the child)
  memory_bytes: int = 2 << 30          # RLIMIT_AS (virtual address space; numpy itself maps ~0.5 GB)
  open_files: int = 64                 # RLIMIT_NOFILE
  max_output_bytes: int = 256 << 20    # result bytes the parent accepts before killing the child
  os_isolation: bool = True            # use namespaces / dropped capabilities where available


@dataclasses.dataclass
class Result:
  meta: dict
  arrays: list[np.ndarray]
  stderr: str                          # what the child printed (truncated), for debugging


# Imported in the child before the audit hook: compiled extensions cannot be loaded after it.
DEFAULT_PRELOAD = ('numpy', 'numpy.linalg', 'numpy.fft', 'numpy.random', 'math', 'cmath', 'unicodedata',
                   'json', 'bisect', 'heapq', 'random', 'struct', 'datetime', 'statistics', 'fractions',
                   'decimal', 'array', 'binascii', 'zlib')


@functools.cache
def os_isolation() -> str | None:
  """'netns+ro-mounts+nocaps' when the OS layer works here (probed once), else None."""
  if os.name != 'posix' or os.geteuid() != 0:
    return None
  if not (shutil.which('unshare') and shutil.which('setpriv')):
    return None
  try:
    r = subprocess.run(_os_wrapper() + ['sh', '-c', _PROBE], capture_output=True, timeout=10, check=False,
                       cwd='/')
  except (OSError, subprocess.SubprocessError):
    return None
  return 'netns+ro-mounts+nocaps' if r.returncode == 0 else None


_REMOUNT = ('for m in $(awk \'{print $2}\' /proc/self/mounts | sort -u); do case "$m" in '
            '/dev|/dev/pts|/proc|/proc/*) ;; *) mount -o remount,bind,ro "$m" 2>/dev/null ;; esac; done; '
            'exec setpriv --no-new-privs --bounding-set=-all --inh-caps=-all "$@"')


# Read-only root, an empty network namespace (header lines + lo in /proc/net/dev), no capabilities.
_PROBE = ('awk \'$2 == "/" {print $4}\' /proc/self/mounts | grep -q "^ro" && '
          '[ "$(wc -l < /proc/net/dev)" -eq 3 ] && grep -q "^CapEff:[[:space:]]*0*$" /proc/self/status')


def _os_wrapper() -> list[str]:
  return [shutil.which('unshare') or 'unshare', '--mount', '--net', '--propagation', 'private', 'sh', '-c',
          _REMOUNT.replace('setpriv', shutil.which('setpriv') or 'setpriv'), 'sh']


def _read_roots() -> list[str]:
  import site
  roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
  roots.update(site.getsitepackages())
  if site.ENABLE_USER_SITE and site.getusersitepackages():
    roots.add(site.getusersitepackages())
  return sorted(os.path.realpath(r) for r in roots if r)


def run(source: str, task: str, args=None, limits: Limits = Limits(),
        preload: tuple[str, ...] = DEFAULT_PRELOAD) -> Result:
  """Runs `source` in a sandboxed child, then `task(namespace, args) -> (meta, arrays)` there.

  Args:
    source: untrusted Python source (module level).
    task: 'package.module:function' of trusted code, imported in the child before the audit hook;
      it returns (JSON-able dict, list of numeric numpy arrays).
    args: JSON-able arguments for the task.
    limits: resource limits and timeout.
    preload: modules imported before the hook (extension modules cannot be loaded after it).
  Returns:
    Result(meta, arrays). Raises Rejected with the reason otherwise.
  """
  request = json.dumps({'source': source, 'task': task, 'args': args, 'preload': list(preload),
                        'read_roots': _read_roots(), 'cpu_s': int(limits.cpu_s),
                        'memory_bytes': int(limits.memory_bytes),
                        'open_files': int(limits.open_files)}).encode()
  env = {'PATH': '/usr/bin:/bin:/usr/sbin:/sbin', 'LANG': 'C.UTF-8',    # -I ignores PYTHON* variables anyway
         'OPENBLAS_NUM_THREADS': '1', 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
  cmd = [sys.executable, '-I', '-B', '-c', 'import sys; sys.path.insert(0, sys.argv[1]); '
         'from jaxlab import sandbox; sandbox._child_main()', str(pathlib.Path(__file__).resolve().parents[1])]
  if limits.os_isolation and os_isolation():
    cmd = _os_wrapper() + cmd
  with tempfile.TemporaryDirectory(prefix='jaxlab-sandbox-') as cwd:
    os.chmod(cwd, 0o500)                       # empty, and not writable even without the OS layer
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, env=env, start_new_session=True)
    try:
      out, err, started, timed_out, too_big = _communicate(proc, request, limits)
    finally:
      if proc.poll() is None:
        _kill(proc)
      proc.wait()
      os.chmod(cwd, 0o700)
  stderr = err.decode(errors='replace')[-4000:]
  if timed_out:
    raise Rejected(f'timed out after {limits.timeout_s:g} s (infinite loop?); the child was killed.'
                   if started else f'the sandbox did not start within {limits.startup_s:g} s.',
                   'timeout')
  if too_big:
    raise Rejected(f'result exceeded {limits.max_output_bytes} bytes; the child was killed.', 'limit')
  rc = proc.returncode
  if rc == REFUSED_EXIT:
    frame = _parse(out, strict=False)
    reason = frame[0].get('reason') if frame else None
    raise Rejected(reason if isinstance(reason, str) else 'refused: (reason lost; the program tampered '
                   'with the result channel)', 'refused')
  if rc < 0:
    sig = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
    if -rc == signal.SIGXCPU:
      raise Rejected(f'CPU time limit of {limits.cpu_s} s exceeded (SIGXCPU).', 'limit')
    if -rc == signal.SIGXFSZ:
      raise Rejected('file size limit exceeded (SIGXFSZ): the program wrote to a file.', 'limit')
    raise Rejected(f'the child died from signal {sig}. {_last_line(stderr)}'.strip(), 'crash')
  if rc != 0:
    raise Rejected(f'the child exited with status {rc}. {_last_line(stderr)}'.strip(), 'crash')
  frame = _parse(out, strict=True)
  if frame is None:
    raise Rejected('the child returned a malformed result.', 'protocol')
  header, arrays = frame
  status = header.get('status')
  if status == 'error':
    raise Rejected(str(header.get('reason', 'unknown error'))[:2000], 'error')
  if status != 'ok' or not isinstance(header.get('meta'), dict):
    raise Rejected('the child returned a malformed result.', 'protocol')
  return Result(header['meta'], arrays, stderr)


def _communicate(proc, request: bytes, limits: Limits):
  """Writes the request, reads stdout/stderr until exit, the deadline or the size cap."""
  deadline, started = time.monotonic() + limits.startup_s, False
  try:
    proc.stdin.write(request)
    proc.stdin.close()
  except BrokenPipeError:
    pass
  sel = selectors.DefaultSelector()
  bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
  for f in bufs:
    sel.register(f, selectors.EVENT_READ)
  timed_out = too_big = False
  while sel.get_map():
    left = deadline - time.monotonic()
    if left <= 0:
      timed_out = True
      break
    for key, _ in sel.select(min(left, 0.5)):
      chunk = os.read(key.fileobj.fileno(), 1 << 20)
      if not chunk:
        sel.unregister(key.fileobj)
        continue
      buf = bufs[key.fileobj]
      if key.fileobj is proc.stderr:
        buf.extend(chunk)
        del buf[:-65536]
      elif len(buf) + len(chunk) > limits.max_output_bytes:
        too_big = True
      else:
        buf.extend(chunk)
        if not started and len(buf) >= len(READY):
          if buf[:len(READY)] == READY:
            started, deadline = True, time.monotonic() + limits.timeout_s
            del buf[:len(READY)]
    if too_big:
      break
  if timed_out or too_big:
    _kill(proc)
  else:
    try:
      proc.wait(max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      timed_out = True
      _kill(proc)
  sel.close()
  for f in bufs:
    f.close()
  return bytes(bufs[proc.stdout]), bytes(bufs[proc.stderr]), started, timed_out, too_big


def _kill(proc):
  try:
    os.killpg(proc.pid, signal.SIGKILL)       # the child leads its own session (start_new_session)
  except (ProcessLookupError, PermissionError):
    proc.kill()


def _last_line(text: str) -> str:
  lines = [l for l in text.strip().splitlines() if l.strip()]
  return lines[-1][:300] if lines else ''


def _parse(out: bytes, strict: bool):
  """MAGIC, header length, JSON header, then an .npz of plain arrays (no pickles). None if bad."""
  if len(out) < _HEADER.size:
    return None
  magic, n = _HEADER.unpack_from(out)
  if magic != MAGIC or n > len(out) - _HEADER.size:
    return None
  try:
    header = json.loads(out[_HEADER.size:_HEADER.size + n].decode())
  except ValueError:
    return None
  if not isinstance(header, dict):
    return None
  rest = out[_HEADER.size + n:]
  if not strict:
    return header, []
  count = header.get('arrays', 0)
  if not isinstance(count, int) or count < 0:
    return None
  if not count:
    return (header, []) if not rest else None
  try:
    with np.load(io.BytesIO(rest), allow_pickle=False) as z:
      if sorted(z.files) != sorted(f'a{i}' for i in range(count)):
        return None
      arrays = [z[f'a{i}'] for i in range(count)]
  except Exception:  # pylint: disable=broad-except  # any malformed archive is a protocol error
    return None
  if any(a.dtype.kind not in 'biuf' for a in arrays):
    return None
  return header, arrays


def _frame(header: dict, arrays=()) -> bytes:
  header = dict(header, arrays=len(arrays))
  h = json.dumps(header).encode()
  body = b''
  if arrays:
    buf = io.BytesIO()
    np.savez(buf, **{f'a{i}': np.ascontiguousarray(a) for i, a in enumerate(arrays)})
    body = buf.getvalue()
  return _HEADER.pack(MAGIC, len(h)) + h + body


# --------------------------------------------------------------------------------------------------
# The child.
# --------------------------------------------------------------------------------------------------

UNTRUSTED_FILENAME = '<untrusted>'

# Events benign code raises that need no check.
_PASS = frozenset({'sys._getframe', 'object.__getattr__', 'object.__setattr__', 'object.__delattr__',
                   'marshal.loads', 'marshal.load', 'builtins.id', 'time.sleep', 'array.__new__',
                   'function.__new__', 'sys.excepthook', 'sys.unraisablehook', 'os.putenv',
                   'os.unsetenv', 'cpython._PySys_ClearAuditHooks', 'code.__new__', 'compile', 'exec'})
_CATEGORIES = (('subprocess.', 'process creation'), ('os.system', 'process creation'),
               ('os.exec', 'process creation'), ('os.fork', 'process creation'),
               ('os.posix_spawn', 'process creation'), ('os.spawn', 'process creation'),
               ('os.kill', 'signals'), ('pty.', 'process creation'), ('socket.', 'network'),
               ('urllib.', 'network'), ('http.', 'network'), ('ctypes.', 'native code'),
               ('os.', 'file-system or process change'), ('shutil.', 'file-system change'),
               ('tempfile.', 'file-system change'), ('gc.', 'interpreter introspection'),
               ('sys.', 'interpreter change'))
_SAFE_NEW_BUILTINS = frozenset({'_symtable', '_tokenize', 'xxsubtype', '_string', '_locale'})


def _child_main():
  """Entry point of the child interpreter (run by `run`; not for direct use)."""
  sys.dont_write_bytecode = True             # a lazy import must not try to write a .pyc (refused)
  request = json.loads(sys.stdin.buffer.read().decode())
  result_fd = os.dup(1)
  os.dup2(2, 1)                              # the program's prints go to stderr, not the result channel
  os.close(0)

  def send(data: bytes):
    try:
      while data:
        data = data[os.write(result_fd, data):]
    except OSError:
      pass

  def refuse(reason: str):
    send(_frame({'status': 'refused', 'reason': reason}))
    os._exit(REFUSED_EXIT)                   # not catchable by the program

  sys.modules['ctypes'] = None               # numpy works without it; the program gets no ctypes
  import importlib
  for m in request['preload']:
    importlib.import_module(m)
  mod_name, fn_name = request['task'].split(':')
  task = getattr(importlib.import_module(mod_name), fn_name)

  import resource
  cpu = request['cpu_s']
  for lim, soft, hard in ((resource.RLIMIT_AS, request['memory_bytes'], request['memory_bytes']),
                          (resource.RLIMIT_FSIZE, 0, 0), (resource.RLIMIT_NPROC, 1, 1),
                          (resource.RLIMIT_NOFILE, request['open_files'], request['open_files']),
                          (resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_CPU, cpu, cpu + 1)):
    cur = resource.getrlimit(lim)[1]                # never above a limit the parent already has
    if cur != resource.RLIM_INFINITY:
      soft, hard = min(soft, cur), min(hard, cur)
    resource.setrlimit(lim, (soft, hard))

  import _imp

  def no_dynamic(spec, *unused):
    # An ImportError, not a kill: optional C speed-ups (json, ...) fall back to pure Python.
    raise ImportError(f'refused: loading compiled extension {spec.name!r} ({spec.origin}) in the sandbox')

  _imp.create_dynamic = no_dynamic
  # The hook's state lives in its closure only (not in this frame, which the program can reach).
  hook, mark_loaded = _make_hook(tuple(request['read_roots']) + (os.getcwd(),), refuse)
  sys.addaudithook(hook)
  del hook

  import types
  module = types.ModuleType('untrusted')     # a real module, so dataclasses & co. find the namespace
  sys.modules['untrusted'] = module
  ns = module.__dict__
  send(READY)
  try:
    code = compile(request['source'], UNTRUSTED_FILENAME, 'exec')
    exec(code, ns)  # pylint: disable=exec-used
    mark_loaded()
    meta, arrays = task(ns, request['args'])
    arrays = [np.asarray(a) for a in arrays]
    frame = _frame({'status': 'ok', 'meta': meta}, arrays)
  except MemoryError as e:
    frame = _frame({'status': 'error', 'reason': f'MemoryError (memory limit of '
                    f'{request["memory_bytes"] >> 20} MiB): {e}'})
  except BaseException as e:  # pylint: disable=broad-except  # everything the program raises is reported
    frame = _frame({'status': 'error', 'reason': f'{type(e).__name__}: {e}'[:2000]})
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except Exception:  # pylint: disable=broad-except  # the program may have replaced or closed them
      pass
  send(frame)
  os._exit(0)


def _make_hook(read_roots: tuple[str, ...], refuse):
  """(audit hook, mark_loaded). The hook uses only references bound here, so a program that patches
  os/posixpath cannot fool it; mark_loaded() switches on the compile/exec refusal (one way only)."""
  loaded = False
  getcwd, readlink, lstat, fsenc = os.getcwd, os.readlink, os.lstat, sys.getfilesystemencoding()
  import stat as _stat
  islnk = _stat.S_ISLNK
  getframe = sys._getframe  # pylint: disable=protected-access
  modules, builtin_names = sys.modules, frozenset(sys.builtin_module_names)
  write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
  roots = tuple(r.rstrip('/') + '/' for r in read_roots)
  posix_path_type = pathlib.PosixPath

  def norm(p: str) -> str:
    if not p.startswith('/'):
      p = getcwd() + '/' + p
    out = []
    for part in p.split('/'):
      if part in ('', '.'):
        continue
      if part == '..':
        if out:
          out.pop()
      else:
        out.append(part)
    return '/' + '/'.join(out)

  def resolve(p: str) -> str:
    """realpath with the captured primitives (the program cannot create symlinks)."""
    p = norm(p)
    for _ in range(40):
      parts, cur, changed = p.strip('/').split('/'), '', False
      for i, part in enumerate(parts):
        cur = cur + '/' + part
        try:
          if islnk(lstat(cur).st_mode):
            target = readlink(cur)
            base = cur.rsplit('/', 1)[0] or '/'
            p = norm((target if target.startswith('/') else base + '/' + target) + '/' +
                     '/'.join(parts[i + 1:]))
            changed = True
            break
        except OSError:
          break
      if not changed:
        return p
    return p

  def as_path(p):
    t = type(p)
    if t is bytes:
      return p.decode(fsenc, 'surrogateescape')
    if t is str:
      return p
    if t is posix_path_type:
      return str(p)
    return None

  def readable(p) -> bool:
    q = as_path(p)
    if q is None or '\x00' in q:
      return False
    q = resolve(q) + '/'
    return any(q.startswith(r) for r in roots)

  def from_untrusted() -> bool:
    """Whether the Python frame that raised the event is the program's own code."""
    try:
      return getframe(2).f_code.co_filename == UNTRUSTED_FILENAME
    except ValueError:                       # no Python caller (raised from C at the stack's base)
      return False

  def shown(x) -> str:
    try:
      return repr(x)[:200]
    except Exception:  # pylint: disable=broad-except  # a program's object may have a hostile __repr__
      return '<unprintable>'

  def hook(event, args):
    if event in _PASS:
      if loaded and event in ('compile', 'exec', 'code.__new__') and from_untrusted():
        refuse(f'refused: {event} of new code by the program after it was loaded')
      return
    if event == 'open':
      path, mode, flags = args
      if type(path) is int:
        return
      writing = (isinstance(mode, str) and any(c in mode for c in 'wax+')) or (
          mode is None and isinstance(flags, int) and flags & write_flags)
      if writing:
        refuse(f'refused: open({shown(path)}, {shown(mode if mode is not None else flags)}) for writing '
               '(the sandbox allows no file writes)')
      if not readable(path):
        refuse(f'refused: open({shown(path)}, {shown(mode)}) outside the sandbox')
      return
    if event in ('os.listdir', 'os.scandir'):
      path = args[0] if args and args[0] is not None else '.'
      if type(path) is not int and readable(path):
        return
      refuse(f'refused: {event}({shown(path)}) outside the sandbox')
    if event == 'import':
      name = args[0]
      if name in builtin_names and name not in modules and name not in _SAFE_NEW_BUILTINS:
        refuse(f'refused: import of built-in module {name!r} in the sandbox')
      return
    what = next((c for p, c in _CATEGORIES if event.startswith(p)), 'not allowed')
    refuse(f'refused: {event}({", ".join(shown(a) for a in args)}) ({what} in the sandbox)')

  def mark_loaded():
    nonlocal loaded
    loaded = True

  return hook, mark_loaded


def call(namespace: dict, args: dict):
  """A generic task: `namespace[args['function']](*args['args'])` as one float64 array per call.

  args: {'function': name, 'calls': [[arg, ...], ...]} (JSON values). Returns ({}, [array per call]).
  """
  fn = namespace[args['function']]
  return {}, [np.asarray(fn(*a), np.float64) for a in args['calls']]
