"""Entry test of experiments/lm: the tiny config trains, evaluates, samples, checkpoints and resumes;
bad command lines fail with one clear line."""

import json
import math
import os
import subprocess
import sys

import pytest

from experiments.lm import main as lm_main
from experiments.lm.configs import default
from jaxlab.train import metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_tiny_config_trains_and_resumes(tmp_path):
  cfg = default.get_config("tiny")
  out = lm_main.run(cfg, str(tmp_path))
  assert out["step"] == cfg.total_steps
  assert math.isfinite(out["val_perplexity"]) and out["val_perplexity"] > 1
  assert math.isclose(out["val_perplexity"], math.exp(out["val_nll"]), rel_tol=1e-6)
  assert out["sample"].startswith(cfg.sample.prompt) and len(out["sample"]) > len(cfg.sample.prompt)
  assert json.load(open(tmp_path / "results.json"))["step"] == cfg.total_steps
  logged = metrics.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in logged if "train/loss" in r] == [2, 4, 6]
  assert any("eval/perplexity" in r for r in logged)
  # The same command with more steps continues from the last checkpoint, not from step 0.
  cfg2 = default.get_config("tiny")
  cfg2.total_steps = 8
  out2 = lm_main.run(cfg2, str(tmp_path))
  assert out2["step"] == 8
  logged = metrics.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in logged if "train/loss" in r] == [2, 4, 6, 8]


def _run_cli(*args, workdir):
  cmd = [sys.executable, "-m", "experiments.lm.main", "--config=experiments/lm/configs/default.py:tiny",
         f"--workdir={workdir}", *args]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_unknown_config_key_is_a_clear_error(tmp_path):
  proc = _run_cli("--config.model.embed_dimm=32", workdir=tmp_path)
  assert proc.returncode != 0
  assert "embed_dimm" in proc.stderr
  assert not os.path.exists(tmp_path / "checkpoints")


def test_missing_corpus_file_is_a_clear_error(tmp_path):
  missing = tmp_path / "no_such_corpus.txt"
  proc = _run_cli("--config.data.corpus=files", f"--config.data.text_files=('{missing}',)", workdir=tmp_path)
  assert proc.returncode == 1
  assert "error: FileNotFoundError" in proc.stderr and "no_such_corpus.txt" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_bad_config_value_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match=r"config.model.family='bert'"):
    cfg = default.get_config("tiny")
    cfg.model.family = "bert"
    lm_main.run(cfg, str(tmp_path))
