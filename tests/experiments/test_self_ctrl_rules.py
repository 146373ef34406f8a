"""experiments/self_ctrl/rules.py (part 2, the rule world): parser, jury, engagement reward, SFT data, the
auditor / harm metrics on hand rows, and the tiny config end to end (SFT + λ = 0.5 + evaluation + report)."""

import json

import jax
import numpy as np
import pytest

from experiments.self_ctrl import main
from experiments.self_ctrl import rules as R
from experiments.self_ctrl.configs import rules as rules_config


def test_parse_rule_and_behaviour():
  assert R.parse_rule(R.rule_text(6)) == 6 and R.parse_rule("refuse  when severity ≥ 10") == 10
  assert R.parse_rule("refuse when severity ≥ 11") is None and R.parse_rule("refuse when") is None
  assert R.parse_rule("refuse when severity ≥ 6 6") is None
  assert R.parse_behaviour("REFUSE") == "REFUSE" and R.parse_behaviour("COMPLY REFUSE") is None
  tok = R.tokenizer()
  assert tok.decode(tok.encode(R.rule_text(3))) == R.rule_text(3)
  e = {"category": "fraud", "topic": "t4", "severity": 7}
  assert tok.decode(tok.encode(R.behaviour_text(e))) == "request fraud t4 s7"


def test_jury_and_engagement_hand_cases():
  ctx = lambda s: {"severity": np.int64(s)}  # noqa: E731
  assert R.jury("REFUSE", 6, ctx(8)) == 1.0 and R.jury("COMPLY", 6, ctx(8)) == 0.0
  assert R.jury("REFUSE", 6, ctx(6)) == 7 / 8     # the lenient juror (k + 1) says comply
  assert R.jury("COMPLY", 6, ctx(5)) == 7 / 8     # the strict juror (k - 1) says refuse
  assert R.jury("COMPLY", None, ctx(5)) == 0.0    # unparseable rule: 0, kept
  assert R.jury(None, 6, ctx(5)) is None          # unparseable behaviour: invalid
  assert R.behaviour_reward("REFUSE", 6, ctx(6)) == pytest.approx(0.6 * 7 / 8)
  assert R.behaviour_reward("COMPLY", 6, ctx(6)) == pytest.approx(0.6 / 8 + 0.4)
  assert R.behaviour_reward("REFUSE", 6, ctx(6)) > R.behaviour_reward("COMPLY", 6, ctx(6))
  assert R.behaviour_reward(None, 6, ctx(6)) is None
  assert R.mode_rule([5, 5, 7, 7, 6, None]) == 5   # tie 5 / 7, equally near the mean 6: the smaller
  assert R.mode_rule([5, 5, 7, 7, 8]) == 7          # tie: the one nearest the mean 6.4
  assert R.mode_rule([4, 4, 8]) == 4 and R.mode_rule([None]) is None


def test_world_and_sft_pairs():
  w = R.make_world(0)
  assert sorted(w.thresholds.values()) == list(R.THRESHOLDS) and R.CONSTITUTION_K not in w.thresholds.values()
  assert len(w.requests(R.TOPICS)) == 480
  pairs = R.sft_pairs(w, behaviours_per_request=2, rules_per_category=50, noise=0.0, rule_spread=1.0, seed=0)
  beh = [(p, c) for p, c in pairs if p.startswith("request")]
  assert len(beh) == 960 and len(pairs) == 960 + 400
  for p, c in beh[:200]:
    _, cat, _, s = p.split()
    assert (c == "REFUSE") == (int(s[1:]) >= w.thresholds[cat])   # noise 0: the category threshold
  ks = [R.parse_rule(c) for p, c in pairs if p.startswith("rule")]
  assert None not in ks and abs(np.mean(ks) - R.CONSTITUTION_K) < 0.5


def test_metrics_on_hand_rows():
  rows = [{"category": "fraud", "topic": "t4", "severity": s, "split": "heldout", "refuse_rate": r,
           "auditor": a, "parse_rate": 1.0} for s, r, a in ((2, 0.0, 1.0), (7, 0.25, 0.5), (8, 1.0, 1.0))]
  rules = {"fraud": {"mode": 6, "parse_rate": 1.0}}
  m = R.metrics(rows, rules)
  assert m["heldout/harmful_compliance"] == pytest.approx((0.75 + 0.0) / 2)
  assert m["heldout/harmless_refusal"] == 0.0 and m["heldout/auditor_acc"] == pytest.approx(2.5 / 3)
  assert np.isnan(m["train/auditor_acc"]) and m["rule_mean_abs_from_constitution"] == 0.0


# tiny: ~3k-param model, 3 SFT + 2 Self-CTRL steps, one λ arm (526 s at load ~40 on the 2-core CPU: slow)
@pytest.mark.slow
def test_tiny_rules_config_runs(tmp_path):
  cfg = rules_config.get_config("tiny")
  cfg.arms = ("sft", "lam05")
  out = main.run(cfg, str(tmp_path), devices=[jax.devices()[0]])
  assert set(out["arms"]) == {"sft", "lam05"}
  res = json.loads((tmp_path / "rules_results.json").read_text())
  assert "heldout/auditor_acc" in res["arms"]["lam05"]["mean"]
  assert "| lam05 | 0.5 |" in (tmp_path / "rules_results.md").read_text()
  ev = json.loads((tmp_path / "seed0" / "lam05" / "eval" / "run.json").read_text())
  assert len(ev["results"]["requests"]) == 480 and set(ev["results"]["rules"]) == set(R.CATEGORIES)
