"""Entry tests of experiments/rlcr and experiments/multi_answer (tiny configs) and the SmolLM2 RLCR run (slow)."""

import json
import os

import jax
import numpy as np
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
def test_smollm2_rlcr_step(tmp_path):
  """SmolLM2-135M-Instruct as the RLCR policy: one GRPO step on CPU, one device (a minute or two)."""
  cfg = rlcr_default.get_config("smollm2")
  cfg.task.num_rl = 2
  cfg.rl.total_steps, cfg.rl.eval_every, cfg.rl.checkpoint_every = 1, 1, 1
  cfg.rl.grpo.prompts_per_step = 2    # 8 completions
  cfg.rl.grpo.max_new_tokens = 32     # room for the calculation and both tags
  out = real_model.run(cfg, str(tmp_path), devices=[jax.devices()[0]])
  assert out["steps"] == 1 and len(out["per_step"]) == 1 and out["source"] == "basic_arithmetic"
  row = out["per_step"][0]
  for key in ("reward/format", "reward/accuracy", "reward/brier", "reward/total", "advantage/std", "kl",
              "rollout/seconds", "rollout/logprob_seconds"):
    assert key in row, key
  assert np.isfinite(row["loss"]) and row["rollout/tokens_per_sec"] > 0
  assert row["reward/format"] > 0 and row["advantage/std"] > 0   # the prompt gets well-formed, varied answers
  assert out["param_update_norm"] > 0                             # so the policy gradient moved the params
  assert len(out["samples"]) == 2 and os.path.exists(tmp_path / "real_model.json")
