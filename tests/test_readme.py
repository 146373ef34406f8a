"""The README's "Using the library from your own code" script runs as written, from a plain Python process."""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def library_snippet() -> str:
  text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
  section = text.split("## Using the library from your own code", 1)[1]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_library_snippet_runs_as_written(tmp_path):
  (tmp_path / "snippet.py").write_text(library_snippet())
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  run = lambda: subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=600)
  proc = run()
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout
  # Progress without absl flags, the workdir's files named at the end, no orbax INFO chatter.
  assert re.search(r"^step 10/40 \| loss \d", out, re.M) and "step 40/40" in out, out
  workdir = tmp_path / "workdirs" / "my_run"
  assert f"Workdir {workdir}:" in out and "metrics.jsonl" in out and "tb (TensorBoard" in out, out
  assert "checkpoints/ (steps [40])" in out, out
  assert "orbax" not in (out + proc.stderr).lower(), out + proc.stderr
  final = float(re.search(r"final loss (\S+)", out).group(1))
  rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  first = rows[0]["train/loss"]
  assert final < 0.5 * first, (first, final)  # the toy sequence is learnt
  # The same script again finds the run finished (from its checkpoint) instead of training from step 0.
  again = run()
  assert again.returncode == 0, again.stderr[-3000:]
  assert "is finished (step 40 of 40)" in again.stdout and "step 10/40" not in again.stdout, again.stdout
