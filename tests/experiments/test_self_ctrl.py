"""experiments/self_ctrl: the coins domain on hand cases, the identity-line R² and mode rule, and the tiny
config end to end (SFT + one Self-CTRL arm + evaluation + report; one device)."""

import json

import jax
import numpy as np
import pytest

from experiments.self_ctrl import coins
from experiments.self_ctrl import main
from experiments.self_ctrl.configs import default
from jaxlab.rl import consistency


def test_coins_split_names_and_program():
  cs = coins.make_coins(0)
  assert [coins.coin_name(i) for i in (0, 25, 26, 99)] == ["Coin_A", "Coin_Z", "Coin_AA", "Coin_CV"]
  assert len({c.name for c in cs}) == 100
  assert [sum(c.group == g for c in cs) for g in coins.GROUPS] == [50, 40, 10]
  hold = sorted(c.bias for c in cs if c.group == "holdout")
  np.testing.assert_allclose(hold, np.linspace(0.1, 0.9, 10))
  assert all(0.1 <= c.bias <= 0.9 for c in cs)
  assert consistency.parse_program_bias(coins.program_text(0.372)) == 0.37
  tok = coins.tokenizer(cs)
  assert tok.decode(tok.encode(coins.program_text(0.9))) == coins.program_text(0.9)


def test_r2_identity_and_mode():
  t = np.array([0.2, 0.4, 0.6, 0.8])
  assert coins.r2_identity(t, t) == 1.0
  assert coins.r2_identity(np.full(4, 0.5), t) == pytest.approx(0.0)              # the mean predictor: 0
  assert coins.r2_identity(t + 0.1, t) == pytest.approx(1 - 0.04 / 0.2)           # an offset is penalised
  assert coins.mode_of([0.3, 0.3, 0.5]) == 0.3
  assert coins.mode_of([0.1, 0.5, 0.5, 0.9, 0.9, None]) == 0.5   # tie: the value nearest the mean 0.58
  assert coins.mode_of([None]) is None


# tiny: ~1k-param model, 3 SFT + 2 Self-CTRL steps
def test_tiny_config_runs(tmp_path):
  cfg = default.get_config("tiny")
  cfg.arms = ("sft", "selfctrl")
  out = main.run(cfg, str(tmp_path), devices=[jax.devices()[0]])
  assert set(out["arms"]) == {"sft", "selfctrl"}
  res = json.loads((tmp_path / "results.json").read_text())
  assert "holdout/mode_vs_rollout" in res["arms"]["selfctrl"]["mean"]
  assert (tmp_path / "scatter.png").exists() and "| selfctrl |" in (tmp_path / "results.md").read_text()
  ev = json.loads((tmp_path / "seed0" / "selfctrl" / "eval" / "run.json").read_text())
  assert len(ev["results"]["coins"]) == 100
