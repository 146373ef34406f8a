r"""Starts N local processes of one command as a multi-process JAX job (jax.distributed on localhost).

  python -m jaxlab.launch --num_processes=2 -- python -m experiments.lm.main \
      --config=experiments/lm/configs/default.py:tiny --workdir=workdirs/lm_2proc

Each child gets the coordinator environment that ``jaxlab.train.runtime.initialize`` reads:
``JAX_COORDINATOR_ADDRESS=127.0.0.1:<port>``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` and
``JAXLAB_HEARTBEAT_TIMEOUT`` (seconds after which the coordination service declares a silent process dead),
plus ``--xla_force_host_platform_device_count=<devices_per_process>`` in ``XLA_FLAGS`` and
``JAX_PLATFORMS=cpu`` when ``--devices_per_process`` is given (CPU collectives across processes go through
gloo). On a real cluster the same binaries take their coordinator from SLURM / TPU / MPI instead; this
launcher is the one-machine stand-in for tests and for trying a multi-host run on a laptop.

Every line a child prints is forwarded with a ``[i]`` prefix. When one child fails (non-zero exit or a
signal), the launcher names it and waits ``--grace`` seconds for the others, which JAX's coordination service
stops on its own after the heartbeat timeout (or at once, when a collective loses its peer); any still
running then are terminated. The launcher's exit code is the first failing child's (128 + signal for a
signal), else 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on right now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return int(s.getsockname()[1])


def child_env(base: dict[str, str], *, process_id: int, num_processes: int, port: int,
              devices_per_process: int | None, heartbeat_timeout: int) -> dict[str, str]:
  """The environment of child ``process_id``: ``base`` plus the coordinator variables."""
  env = dict(base)
  env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(num_processes),
             JAX_PROCESS_ID=str(process_id), JAXLAB_HEARTBEAT_TIMEOUT=str(heartbeat_timeout),
             PYTHONUNBUFFERED="1")
  if devices_per_process:
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices_per_process}"])
    env["JAX_PLATFORMS"] = "cpu"
  return env


def _forward(stream, prefix: str, out) -> None:
  for line in iter(stream.readline, b""):
    out.write(prefix + line.decode(errors="replace"))
    out.flush()
  stream.close()


def _exit_code(rc: int) -> int:
  return 128 - rc if rc < 0 else rc


def launch(command: Sequence[str], num_processes: int, *, devices_per_process: int | None = None,
           port: int = 0, heartbeat_timeout: int = 30, grace: float = 60.0, out=None) -> int:
  """Runs ``command`` as ``num_processes`` local processes of one JAX job; returns the exit code."""
  out = out or sys.stdout
  port = port or free_port()
  procs: list[subprocess.Popen] = []
  threads = []
  for i in range(num_processes):
    env = child_env(dict(os.environ), process_id=i, num_processes=num_processes, port=port,
                    devices_per_process=devices_per_process, heartbeat_timeout=heartbeat_timeout)
    p = subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    procs.append(p)
    t = threading.Thread(target=_forward, args=(p.stdout, f"[{i}] ", out), daemon=True)
    t.start()
    threads.append(t)

  def stop(sig: int) -> None:
    for p in procs:
      if p.poll() is None:
        p.send_signal(sig)

  def on_signal(signum, _frame):  # Ctrl-C / SIGTERM to the launcher reach every child
    stop(signum)

  previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
  first_failure: tuple[int, int] | None = None
  deadline = None
  try:
    while any(p.poll() is None for p in procs):
      for i, p in enumerate(procs):
        rc = p.poll()
        if rc not in (None, 0) and first_failure is None:
          first_failure = (i, rc)
          how = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
          out.write(f"jaxlab.launch: process {i} {how}; waiting up to {grace:.0f} s for the other "
                    f"{num_processes - 1} to stop\n")
          out.flush()
          deadline = time.monotonic() + grace
      if deadline is not None and time.monotonic() > deadline:
        running = [i for i, p in enumerate(procs) if p.poll() is None]
        out.write(f"jaxlab.launch: processes {running} still running {grace:.0f} s after process "
                  f"{first_failure[0]} failed; terminating them\n")
        out.flush()
        stop(signal.SIGTERM)
        try:
          for p in procs:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
          stop(signal.SIGKILL)
        break
      time.sleep(0.1)
    for p in procs:
      p.wait()
    if deadline is not None:
      out.write(f"jaxlab.launch: all processes stopped {time.monotonic() - deadline + grace:.1f} s after process "
                f"{first_failure[0]} failed\n")
      out.flush()
  finally:
    for s, h in previous.items():
      signal.signal(s, h)
    for t in threads:
      t.join(timeout=5)
  if first_failure is None:
    bad = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode]
    first_failure = bad[0] if bad else None
  return 0 if first_failure is None else _exit_code(first_failure[1])


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  """(launcher options, the command after ``--``); a bad option is one line naming it (exit code 2)."""
  argv = list(argv)
  if "--" not in argv:
    raise SystemExit("jaxlab.launch: put the command after '--', e.g. python -m jaxlab.launch --num_processes=2 "
                     "-- python -m experiments.lm.main --config=... --workdir=...")
  split = argv.index("--")
  own, command = argv[:split], argv[split + 1:]
  if not command:
    raise SystemExit("jaxlab.launch: no command after '--'")
  parser = argparse.ArgumentParser(prog="python -m jaxlab.launch", description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_processes", type=int, default=2, help="local processes to start")
  parser.add_argument("--devices_per_process", type=int, default=2,
                      help="fake CPU devices per process (0: leave XLA_FLAGS and JAX_PLATFORMS alone)")
  parser.add_argument("--port", type=int, default=0, help="coordinator port on 127.0.0.1 (0: a free one)")
  parser.add_argument("--heartbeat_timeout", type=int, default=30,
                      help="seconds without a heartbeat after which JAX declares a process dead")
  parser.add_argument("--grace", type=float, default=60.0,
                      help="seconds the others may take to stop after one process fails")
  args = parser.parse_args(own)
  for name in ("num_processes", "heartbeat_timeout"):
    if getattr(args, name) < 1:
      parser.error(f"--{name}={getattr(args, name)} must be positive")
  if args.devices_per_process < 0 or args.port < 0 or args.grace < 0:
    parser.error("--devices_per_process, --port and --grace must be ≥ 0")
  return args, command


def main(argv: Sequence[str] | None = None) -> int:
  args, command = parse_args(sys.argv[1:] if argv is None else argv)
  return launch(command, args.num_processes, devices_per_process=args.devices_per_process or None, port=args.port,
                heartbeat_timeout=args.heartbeat_timeout, grace=args.grace)


if __name__ == "__main__":
  sys.exit(main())
