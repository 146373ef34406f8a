"""jaxlab.train.aot: the abstract task and the compile report (on CPU devices), the command line, and (slow,
needs libtpu: pip install -e '.[tpu]') two paper configs compiled for TPU slices."""

import importlib.util
import os
import subprocess
import sys

import jax
import pytest

from jaxlab.train import aot

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_lm_tiny_compiles_on_cpu_devices_with_a_report():
  config = aot.load_config("experiments/lm/configs/default.py:tiny")
  config.mesh = dict(data=2, fsdp=2, tensor=2)
  builder = aot.load_builder(aot.default_task_builder("experiments/lm/configs/default.py:tiny"))
  r = aot.compile_train_step(config, builder(config), jax.devices()[:8])
  assert r["devices"] == 8 and r["mesh"] == {"data": 2, "fsdp": 2, "tensor": 2}
  assert r["params"] == 98_624  # the tiny LM's count (vocab 384, d 64, 2 layers)
  assert r["argument_bytes"] > 0 and r["total_bytes"] >= r["argument_bytes"]
  assert r["flops_per_device"] > 0
  assert "all-reduce" in r["collectives"] or "all-gather" in r["collectives"]
  assert "per-device memory" in aot.format_report(r, "cpu:8")


def test_collectives_are_counted_from_hlo_text():
  hlo = ("  %all-reduce-start.1 = f32[4] all-reduce-start(f32[4] %x), replica_groups={}\n"
         "  %ag = f32[8] all-gather(f32[4] %y), dimensions={0}\n  %add = f32[4] add(%a, %b)\n")
  assert aot.collectives(hlo) == {"all-reduce": 1, "all-gather": 1}


def test_command_line_mistakes_name_the_flag():
  with pytest.raises(SystemExit, match="no such file"):
    aot.load_config("experiments/lm/configs/nope.py")
  with pytest.raises(SystemExit, match="not under experiments/<name>/configs/"):
    aot.default_task_builder("config.py")
  config = aot.load_config("experiments/lm/configs/default.py")
  aot.apply_overrides(config, ["mesh.fsdp=4", "model.dtype=bfloat16"])
  assert config.mesh["fsdp"] == 4 and config.model.dtype == "bfloat16"
  with pytest.raises(SystemExit, match="the config has no key 'model.width'"):
    aot.apply_overrides(config, ["model.width=3"])


def test_every_aot_task_builder_imports():
  for name in ("lm", "psm", "varc"):
    assert callable(aot.load_builder(f"experiments.{name}.aot_task:abstract_task"))


needs_libtpu = pytest.mark.skipif(importlib.util.find_spec("libtpu") is None and "libtpu" not in
                                  os.environ.get("PYTHONPATH", ""), reason="needs libtpu (pip install -e '.[tpu]')")


@pytest.mark.slow
@needs_libtpu
@pytest.mark.parametrize("config, topology, fits", [
    ("experiments/varc/configs/pretrain.py:paper", "v5p:2x2x1", True),
    ("experiments/psm/configs/lm.py:paper", "v5p:2x2x2", True),
])
def test_paper_config_compiles_for_its_slice(tmp_path, config, topology, fits):
  out = tmp_path / "report.json"
  p = subprocess.run([sys.executable, "-m", "jaxlab.train.aot", f"--config={config}", f"--topology={topology}",
                      f"--json={out}"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
  assert p.returncode == 0, p.stderr[-3000:]
  import json  # pylint: disable=import-outside-toplevel
  r = json.loads(out.read_text())
  assert r["device_kind"].startswith("TPU") and r["fits"] is fits
  assert r["flops_per_device"] > 0 and r["collectives"]
