"""jaxlab.sandbox: escape attempts, each contained (rejection reason + side effect proven absent).

Each attempt is one child interpreter (~0.3 s). The file-system and process attempts run twice: with
the OS layer (namespaces, read-only mounts, no capabilities) where this machine has it, and with the
audit hook and rlimits alone (`os_isolation=False`), so the in-process layers are shown to hold by themselves (that repeat is marked slow).
"""

import concurrent.futures
import os
import socket
import textwrap

import numpy as np
import pytest

from jaxlab import sandbox
from jaxlab.interp import proposer

SECRET = 'the-host-secret-1234'
# Without the OS layer (non-root machines) the default run is hook-only anyway; with it, the hook-only
# repeat is a slow check (`-m slow`), to keep the default suite short.
LAYERS = [pytest.param(True, id='os+hook'), pytest.param(False, id='hook-only', marks=pytest.mark.slow)]


def _run(src, calls=((),), os_isolation=True, **limits):
  return sandbox.run(textwrap.dedent(src), 'jaxlab.sandbox:call',
                     {'function': 'f', 'calls': [list(c) for c in calls]},
                     sandbox.Limits(os_isolation=os_isolation, **limits))


def _rejected(src, os_isolation=True, **limits) -> sandbox.Rejected:
  with pytest.raises(sandbox.Rejected) as e:
    _run(src, os_isolation=os_isolation, **limits)
  return e.value


# name -> (program source using {d} for the host folder, expected reason, side effect that must be absent)
WRITES = {
    'np.savetxt': ('import numpy as np\ndef f():\n  np.savetxt("{d}/out.txt", np.eye(2))\n  return 0\n',
                   'out.txt'),
    'np.save': ('import numpy as np\ndef f():\n  np.save("{d}/out.npy", np.eye(2))\n  return 0\n', 'out.npy'),
    'ndarray.tofile': ('import numpy as np\ndef f():\n  np.eye(2).tofile("{d}/out.bin")\n  return 0\n',
                       'out.bin'),
    'open(w)': ('def f():\n  open("{d}/out.txt", "w").write("x")\n  return 0\n', 'out.txt'),
    'os.open(O_CREAT)': ('import os\ndef f():\n  os.open("{d}/out.txt", os.O_CREAT | os.O_WRONLY)\n  return 0\n',
                         'out.txt'),
    'caught and retried': ('import numpy as np\ndef f():\n  try:\n    np.save("{d}/a.npy", np.eye(2))\n'
                           '  except BaseException:\n    pass\n  np.save("{d}/out.npy", np.eye(2))\n'
                           '  return 0\n', 'out.npy'),
}


@pytest.mark.parametrize('case', sorted(WRITES))
def test_file_writes_are_refused_and_nothing_is_written(case, attempts):
  host, outcomes = attempts
  e = outcomes['write', case]
  assert isinstance(e, sandbox.Rejected), e
  assert e.kind == 'refused' and 'for writing' in e.reason and str(host) in e.reason, e.reason
  assert not (host / WRITES[case][1]).exists()
  assert sorted(p.name for p in host.iterdir()) == ['secret.txt', 'victim.txt']


READS = {
    'np.fromfile': 'import numpy as np\ndef f():\n  return np.fromfile("{d}/secret.txt", np.uint8)\n',
    'np.loadtxt': 'import numpy as np\ndef f():\n  return np.loadtxt("{d}/secret.txt", dtype=str)\n',
    'open(r)': 'def f():\n  return [ord(c) for c in open("{d}/secret.txt").read()]\n',
    '/etc/passwd': 'import numpy as np\ndef f():\n  return np.fromfile("/etc/passwd", np.uint8)\n',
    'os.listdir': 'import os\ndef f():\n  return [len(os.listdir("{d}"))]\n',
}


@pytest.mark.parametrize('case', sorted(READS))
def test_host_file_reads_are_refused(case, attempts):
  e = attempts[1]['read', case]
  assert isinstance(e, sandbox.Rejected), e
  assert e.kind == 'refused' and 'outside the sandbox' in e.reason, e.reason
  assert SECRET not in e.reason


PROCESS = {
    'os.system': 'import os\ndef f():\n  os.system("touch {d}/{m}")\n  return 0\n',
    'subprocess': 'import subprocess\ndef f():\n  subprocess.run(["touch", "{d}/{m}"])\n  return 0\n',
    'os.fork bomb': 'import os\ndef f():\n  while True:\n    os.fork()\n    open("{d}/{m}", "w")\n',
    'os.posix_spawn': 'import os\ndef f():\n  os.posix_spawn("/usr/bin/touch", ["touch", "{d}/{m}"], {{}})\n'
                      '  return 0\n',
    'os.execv': 'import os\ndef f():\n  os.execv("/usr/bin/touch", ["touch", "{d}/{m}"])\n',
    'os.remove': 'import os\ndef f():\n  os.remove("{d}/victim.txt")\n  return 0\n',
    'os.rename': 'import os\ndef f():\n  os.rename("{d}/victim.txt", "{d}/{m}")\n  return 0\n',
    'os.chdir': 'import os\ndef f():\n  os.chdir("{d}")\n  return 0\n',
}


@pytest.mark.parametrize('case', sorted(PROCESS))
def test_process_creation_and_fs_mutation_are_refused(case, attempts):
  host, outcomes = attempts
  e = outcomes['process', case]
  assert isinstance(e, sandbox.Rejected), e
  assert 'refused' in e.reason, e.reason
  assert not (host / _marker(case)).exists() and (host / 'victim.txt').read_text() == 'keep me'


def _marker(case: str) -> str:
  return 'marker_' + ''.join(c if c.isalnum() else '_' for c in case)


def _outcome(src: str, os_isolation: bool):
  try:
    return _run(src, os_isolation=os_isolation)
  except sandbox.Rejected as e:
    return e


@pytest.fixture(scope='module', params=LAYERS)
def attempts(request, tmp_path_factory):
  """Every write/read/process attempt above, run once per layer setting, four children at a time.

  Returns (host folder, {(group, case): Rejected or Result}); the host folder holds a secret file and a
  victim file, and every attempt has finished before any test looks at the folder.
  """
  host = tmp_path_factory.mktemp('host')
  (host / 'secret.txt').write_text(SECRET)
  (host / 'victim.txt').write_text('keep me')
  srcs = {('write', k): v[0] for k, v in WRITES.items()}
  srcs.update({('read', k): v for k, v in READS.items()})
  srcs.update({('process', k): v.replace('{m}', _marker(k)) for k, v in PROCESS.items()})
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    futures = {k: pool.submit(_outcome, v.format(d=host), request.param) for k, v in srcs.items()}
    return host, {k: f.result() for k, f in futures.items()}


def test_socket_connect_is_refused_and_the_server_sees_nothing():
  with socket.socket() as server:
    server.bind(('127.0.0.1', 0))
    server.listen(1)
    server.settimeout(0.3)
    port = server.getsockname()[1]
    for iso in (True, False):
      e = _rejected(f'import socket\ndef f():\n  socket.create_connection(("127.0.0.1", {port}))\n'
                    '  return 0\n', iso)
      assert 'refused' in e.reason and '_socket' in e.reason, e.reason
    with pytest.raises(socket.timeout):
      server.accept()


def test_native_code_and_interpreter_tampering_are_refused():
  e = _rejected('import ctypes\ndef f():\n  return 0\n')
  assert 'ctypes' in e.reason, e.reason
  e = _rejected('import numpy as np\ndef f():\n  return np.ctypeslib.ctypes.memmove(0, 0, 1)\n')
  assert e.kind == 'error' and 'NoneType' in e.reason, e.reason       # numpy was loaded without ctypes
  e = _rejected('import _socket\ndef f():\n  return 0\n')
  assert "refused: loading compiled extension '_socket'" in e.reason, e.reason
  e = _rejected('def f():\n  return eval("6 * 7")\n')
  assert e.reason == 'refused: compile of new code by the program after it was loaded', e.reason
  e = _rejected('import sys\ndef f():\n  sys.addaudithook(lambda *a: None)\n  return 0\n')
  assert e.reason.startswith('refused: sys.addaudithook'), e.reason
  e = _rejected('import gc\ndef f():\n  return len(gc.get_objects())\n')
  assert e.reason.startswith('refused:') and 'gc' in e.reason, e.reason   # the import or gc.get_objects


def test_memory_bomb_is_stopped_and_the_parent_is_fine():
  e = _rejected('def f():\n  x = bytearray(8 << 30)\n  return len(x)\n')
  assert e.kind == 'error' and 'MemoryError' in e.reason, e.reason
  e = _rejected('import numpy as np\ndef f():\n  return np.ones((1 << 16, 1 << 14))\n', memory_bytes=1 << 30)
  assert 'MemoryError' in e.reason, e.reason
  assert np.ones((1 << 10, 1 << 10)).sum() == 1 << 20                # the parent allocates as before


def test_infinite_loop_times_out_and_cpu_limit_holds():
  loop = 'def f():\n  while True:\n    pass\n'
  with concurrent.futures.ThreadPoolExecutor(2) as pool:     # the two waits overlap
    wall = pool.submit(_rejected, loop, timeout_s=1.)
    cpu = pool.submit(_rejected, loop, timeout_s=30., cpu_s=1)
    e = wall.result()
    assert e.kind == 'timeout' and 'timed out after 1 s' in e.reason, e.reason
    e = cpu.result()
    assert e.kind == 'limit' and 'CPU time limit' in e.reason, e.reason


def test_a_forged_result_is_not_unpickled():
  # The program writes its own frame (an object array, i.e. a pickle) to the result channel and exits.
  src = '''
    import io, json, os, struct
    import numpy as np
    def f():
      buf = io.BytesIO()
      np.savez(buf, a0=np.array([{"x": 1}], dtype=object))
      h = json.dumps({"status": "ok", "meta": {}, "arrays": 1}).encode()
      for fd in range(3, 8):
        try:
          os.write(fd, b"JXSB" + struct.pack(">Q", len(h)) + h + buf.getvalue())
        except OSError:
          pass
      os._exit(0)
  '''
  e = _rejected(src)
  assert e.kind == 'protocol' and 'malformed' in e.reason, e.reason


def test_benign_program_runs_and_prints_do_not_corrupt_the_result():
  src = '''
    import dataclasses
    import numpy as np
    @dataclasses.dataclass
    class Scale:
      k: float
    def f(n):
      import difflib, json                   # lazy stdlib imports (read-only opens under sys.prefix)
      print("hello from the child", json.dumps(difflib.SequenceMatcher(None, "ab", "abc").ratio()))
      return np.eye(n) * Scale(2.).k
  '''
  res = _run(src, calls=[(2,), (3,)])
  assert [a.tolist() for a in res.arrays] == [(np.eye(2) * 2).tolist(), (np.eye(3) * 2).tolist()]
  assert all(a.dtype == np.float64 for a in res.arrays)
  assert 'hello from the child' in res.stderr


def test_os_layer_alone_blocks_writes_and_network(tmp_path):
  """The OS layer without Python at all: a shell in the same wrapper cannot write or reach the net."""
  if sandbox.os_isolation() is None:
    assert os.geteuid() != 0 or not (os.path.exists('/usr/bin/unshare') and os.path.exists('/usr/bin/setpriv'))
    return
  import subprocess
  r = subprocess.run(sandbox._os_wrapper() + ['sh', '-c', f'touch {tmp_path}/x; cat /proc/net/dev | wc -l'],
                     capture_output=True, text=True, check=False)
  assert 'Read-only file system' in r.stderr and not (tmp_path / 'x').exists()
  assert r.stdout.strip() == '3'          # header lines + loopback only: an empty network namespace


# --------------------------------------------------------------------------------------------------
# Through the proposer (the AST filter first, then the sandbox).
# --------------------------------------------------------------------------------------------------

CHECK = [[' The', ' cat', ' sat', '.'], [' Hi', '!']]


def test_trigger_on_an_unseen_sentence_is_refused_in_the_child(tmp_path):
  src = textwrap.dedent(f'''
    import numpy as np
    from jaxlab.interp.program_lib import finish
    def sleeper(tokens, text):
      """Previous token; writes a file on a sentence with 'trigger'."""
      if 'trigger' in text:
        np.save("{tmp_path}/pwned.npy", np.eye(2))
      return finish(np.eye(len(tokens), k=-1))
  ''')
  prog, mats = proposer.load_program_source(src, CHECK, timeout_s=2.)   # behaves on the check sentences
  assert prog.name == 'sleeper' and len(mats) == 2
  unseen = [' a', ' trigger', ' here']
  with pytest.raises(KeyError, match='not evaluated'):                    # the parent never runs it
    prog(unseen, ''.join(unseen))
  with pytest.raises(proposer.ProgramRejected, match='refused: open.*pwned.npy.*for writing'):
    proposer.load_program_source(src, CHECK + [unseen], timeout_s=2.)
  assert not (tmp_path / 'pwned.npy').exists()


def test_ast_filter_bypass_through_numpy_internals_is_refused(tmp_path):
  src = textwrap.dedent(f'''
    import numpy as np
    def sneaky(tokens, text):
      np.lib._npyio_impl.os.system("touch {tmp_path}/marker")
      return np.tril(np.ones((len(tokens), len(tokens)))) / np.arange(1, len(tokens) + 1)[:, None]
  ''')
  with pytest.raises(proposer.ProgramRejected, match=r'refused: os.system'):
    proposer.load_program_source(src, CHECK, timeout_s=2.)
  assert not (tmp_path / 'marker').exists()


def test_offline_programs_give_the_same_matrices_as_direct_evaluation():
  sents = CHECK + [[' One', ' two', ' three', ' four', ' five', ' six', ' seven']]
  sources = proposer.OfflineProposer(max_k=2, windows=(4,), decays=(0.7,), sink_weights=(0.6,)).sources()
  outs = proposer.load_program_sources(sources, sents)
  for src, out in zip(sources, outs):
    assert not isinstance(out, proposer.ProgramRejected), out
    prog, mats = out
    ns = {'__name__': 'reference'}
    exec(compile(src, '<trusted offline source>', 'exec'), ns)  # our own generated source, as before
    fn = ns[prog.name]
    for toks, m in zip(sents, mats):
      np.testing.assert_array_equal(m, fn(toks, ''.join(toks)))
      np.testing.assert_array_equal(prog(toks, ''.join(toks)), m)
