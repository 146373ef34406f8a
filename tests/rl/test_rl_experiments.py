"""Entry tests of experiments/rlcr and experiments/multi_answer (tiny configs) and the SmolLM2 RLCR run (slow)."""

import json
import os

import jax
import pytest

from experiments.multi_answer import main as ma_main
from experiments.multi_answer.configs import default as ma_default
from experiments.rlcr import main as rlcr_main
from experiments.rlcr import real_model
from experiments.rlcr.configs import default as rlcr_default
from jaxlab.train import metrics


def test_rlcr_tiny_runs_and_reports(tmp_path):
  """SFT + one GRPO arm + evaluation + report (resume of the RL stage: tests/rl/test_rl_engine.py)."""
  cfg = rlcr_default.get_config("tiny")
  cfg.arms = ("rlcr",)
  cfg.eval.sets = ("id",)
  out = rlcr_main.run(cfg, str(tmp_path))
  assert set(out) == {"sft", "rlcr"}
  for name in out:
    s = out[name]["sets"]["id"]
    assert 0 <= s["accuracy"] <= 1 and 0 <= s["ece"] <= 1 and 0 < s["bayes_accuracy"] <= 1
    assert set(out[name]["voting"]["1"]) == {"majority", "weighted", "max_confidence"}
  assert (tmp_path / "reliability_id.png").exists() and "| rlcr |" in (tmp_path / "results.md").read_text()
  logged = metrics.read_jsonl(str(tmp_path / "rlcr" / "metrics.jsonl"))
  assert [r["step"] for r in logged if "train/loss" in r] == [1, 2]
  assert all("train/reward/brier" in r and "train/rollout/tokens_per_sec" in r and "train/kl" in r
             for r in logged if "train/loss" in r)
  with pytest.raises(ValueError, match="config.arms has unknown arms"):
    cfg.arms = ("rlhf",)
    rlcr_main.run(cfg, str(tmp_path))


@pytest.mark.slow
def test_multi_answer_tiny_all_arms(tmp_path):
  cfg = ma_default.get_config("tiny")
  out = ma_main.run(cfg, str(tmp_path))
  assert set(out) == {"oracle", "sft_single", "sft_multi", "rlvr_single", "multi_rlvr", "multi_rlcr"}
  assert out["oracle"]["topk_recall"] == 1.0 and out["oracle"]["confidence_abs_error"] == 0.0
  for key in ("pass@1", "pass@3", "coverage", "set_brier", "diversity", "tokens_per_set", "posterior_mass"):
    assert key in out["multi_rlcr"]
  assert json.load(open(tmp_path / "results.json"))["oracle"]["pass@3"] == out["oracle"]["coverage"]


@pytest.mark.slow
def test_smollm2_rlcr_steps(tmp_path):
  """SmolLM2-135M-Instruct as the RLCR policy on GSM8K: 2 GRPO steps on CPU (minutes)."""
  cfg = rlcr_default.get_config("smollm2")
  cfg.rl.total_steps, cfg.rl.eval_every, cfg.rl.checkpoint_every = 2, 2, 2
  cfg.rl.grpo.max_new_tokens = 16
  out = real_model.run(cfg, str(tmp_path), devices=[jax.devices()[0]])
  assert out["steps"] == 2 and len(out["per_step"]) == 2
  assert all(r["rollout/tokens_per_sec"] > 0 for r in out["per_step"])
  assert os.path.exists(tmp_path / "real_model.json")
