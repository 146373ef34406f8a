"""Real multi-process training: jaxlab.launch starts processes joined by jax.distributed (gloo on CPU).

The fast tests check the launcher alone (environment, output, failure handling) with plain Python children.
The slow ones run the trainer on the tiny LM (tests/train/multiprocess_worker.py): 2 processes × 2 devices
against 1 process × 4 devices, exact resume after both are killed, and a clear bounded exit when one dies.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from jaxlab import launch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_launcher(args, command, timeout=600):
  t0 = time.monotonic()
  p = subprocess.run([sys.executable, "-m", "jaxlab.launch", *args, "--", *command], cwd=ROOT, capture_output=True,
                     text=True, timeout=timeout)
  return p.returncode, p.stdout + p.stderr, time.monotonic() - t0


def test_child_env_sets_the_coordinator_and_devices():
  env = launch.child_env({"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --foo"}, process_id=1,
                         num_processes=3, port=1234, devices_per_process=2, heartbeat_timeout=7)
  assert env["JAX_COORDINATOR_ADDRESS"] == "127.0.0.1:1234"
  assert (env["JAX_NUM_PROCESSES"], env["JAX_PROCESS_ID"], env["JAXLAB_HEARTBEAT_TIMEOUT"]) == ("3", "1", "7")
  assert env["XLA_FLAGS"] == "--foo --xla_force_host_platform_device_count=2"
  assert env["JAX_PLATFORMS"] == "cpu"


def test_runtime_reads_the_launcher_environment(monkeypatch):
  from jaxlab.train import runtime
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "1")
  monkeypatch.setenv("JAXLAB_HEARTBEAT_TIMEOUT", "9")
  assert runtime.distributed_kwargs() == {"num_processes": 2, "process_id": 1, "heartbeat_timeout_seconds": 9}
  monkeypatch.setenv("JAX_PROCESS_ID", "one")
  with pytest.raises(ValueError, match="JAX_PROCESS_ID='one' is not an integer"):
    runtime.distributed_kwargs()


def test_launcher_runs_every_process_and_prefixes_output():
  rc, out, _ = run_launcher(["--num_processes=3"], [sys.executable, "-c",
                            "import os; print('id', os.environ['JAX_PROCESS_ID'], os.environ['JAX_NUM_PROCESSES'])"])
  assert rc == 0, out
  assert sorted(line for line in out.splitlines() if " id " in line) == [f"[{i}] id {i} 3" for i in range(3)]


def test_launcher_reports_a_failure_and_stops_the_others():
  code = "import os, sys, time\nif os.environ['JAX_PROCESS_ID'] == '1': sys.exit(3)\ntime.sleep(60)"
  rc, out, wall = run_launcher(["--num_processes=2", "--grace=1"], [sys.executable, "-c", code])
  assert rc == 3
  assert "jaxlab.launch: process 1 exited with code 3" in out
  assert "processes [0] still running 1 s after process 1 failed; terminating them" in out
  assert wall < 30


@pytest.mark.parametrize("argv, message", [
    (["--num_processes=2", "python"], "put the command after '--'"),
    (["--num_processes=2", "--"], "no command after '--'"),
])
def test_launcher_bad_command_line(argv, message):
  with pytest.raises(SystemExit, match=message):
    launch.parse_args(argv)


def test_launcher_bad_option_names_it(capsys):
  with pytest.raises(SystemExit):
    launch.parse_args(["--num_processes=0", "--", "true"])
  assert "--num_processes=0 must be positive" in capsys.readouterr().err


# ---- the trainer across processes (slow: each launch compiles the step in every process) ----

WORKER = [sys.executable, "-m", "tests.train.multiprocess_worker"]


def losses(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def indices(workdir, process):
  with open(os.path.join(workdir, f"indices_{process}.json"), encoding="utf-8") as f:
    return json.load(f)


def params(workdir):
  with np.load(os.path.join(workdir, "params.npz")) as z:
    return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The uninterrupted runs: 1 process × 4 devices, 2 processes × 2 devices (6 steps each)."""
  base = tmp_path_factory.mktemp("multiprocess")
  out = {}
  for name, args in (("one", ["--num_processes=1", "--devices_per_process=4"]),
                     ("two", ["--num_processes=2", "--devices_per_process=2"])):
    workdir = str(base / name)
    rc, log, _ = run_launcher(args, WORKER + [f"--workdir={workdir}"])
    assert rc == 0, log[-3000:]
    out[name] = workdir
  out["base"] = base
  return out


@pytest.mark.slow
def test_two_processes_equal_one_and_read_only_their_share(runs):
  one, two = losses(runs["one"]), losses(runs["two"])
  assert sorted(one) == sorted(two) == list(range(1, 7))
  np.testing.assert_allclose([two[s] for s in sorted(two)], [one[s] for s in sorted(one)], atol=1e-5)
  ref = indices(runs["one"], 0)
  p0, p1 = indices(runs["two"], 0), indices(runs["two"], 1)
  assert (ref["process_count"], ref["devices"], p0["process_count"], p0["devices"]) == (1, 4, 2, 4)
  import grain  # pylint: disable=import-outside-toplevel
  stream = grain.MapDataset.source(list(range(ref["num_windows"]))).shuffle(seed=0).repeat(None)
  for step in range(6):  # host i of n reads elements i, i+n, ... of the one global stream
    assert ref["batches"][step] == [stream[k] for k in range(8 * step, 8 * step + 8)]
    assert p0["batches"][step] == [stream[k] for k in range(8 * step, 8 * step + 8, 2)]
    assert p1["batches"][step] == [stream[k] for k in range(8 * step + 1, 8 * step + 8, 2)]
  for k, v in params(runs["two"]).items():
    np.testing.assert_allclose(v, params(runs["one"])[k], atol=1e-5, err_msg=k)


@pytest.mark.slow
def test_both_killed_and_restarted_continue_exactly(runs):
  workdir = str(runs["base"] / "killed")
  rc, log, _ = run_launcher(["--num_processes=2"], WORKER + [f"--workdir={workdir}", "--die_at=3"])
  assert rc != 0, log[-3000:]
  assert "was killed by signal 9" in log
  assert os.path.isfile(os.path.join(workdir, "checkpoints", "3", "data", "process_1-of-2.json"))
  assert not os.path.exists(os.path.join(workdir, "params.npz"))
  rc, log, _ = run_launcher(["--num_processes=2"], WORKER + [f"--workdir={workdir}"])
  assert rc == 0, log[-3000:]
  assert indices(workdir, 0)["start_step"] == indices(workdir, 1)["start_step"] == 3
  assert indices(workdir, 1)["batches"] == indices(runs["two"], 1)["batches"][3:]
  resumed, full = losses(workdir), losses(runs["two"])
  assert [resumed[s] for s in (4, 5, 6)] == [full[s] for s in (4, 5, 6)]
  a, b = params(workdir), params(runs["two"])
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_one_process_killed_the_other_exits_with_a_clear_error(runs):
  workdir = str(runs["base"] / "one_dies")
  rc, log, _ = run_launcher(["--num_processes=2", "--heartbeat_timeout=10", "--grace=300"],
                               WORKER + [f"--workdir={workdir}", "--die_at=3", "--die_process=1", "--total_steps=60"],
                               timeout=400)
  assert rc != 0
  assert "jaxlab.launch: process 1 was killed by signal 9" in log
  assert "terminating them" not in log  # process 0 stopped by itself, not by the launcher
  survivor = "\n".join(line for line in log.splitlines() if line.startswith("[0] "))
  assert ("another task died" in survivor or "Connection closed by peer" in survivor
          or "unhealthy" in survivor), survivor[-3000:]
  assert not os.path.exists(os.path.join(workdir, "params.npz"))
  stopped = [line for line in log.splitlines() if line.startswith("jaxlab.launch: all processes stopped")]
  assert stopped and float(stopped[0].split()[4]) < 10 + 30, stopped  # heartbeat timeout + margin
