"""jaxlab.rl.recipe.sft_then_grpo: every stage is recorded; a rerun reuses finished stages and adding an arm
runs only that arm (training replaced by stand-ins: the trainer's own resume is tested in tests/train)."""

import types

import ml_collections
import pytest

from jaxlab.rl import recipe
from jaxlab.train import runrecord


def test_stages_are_reused_and_only_new_arms_run(tmp_path, monkeypatch):
  trained = []
  monkeypatch.setattr(recipe, "run_sft", lambda config, workdir, model, records, devices=None:
                      trained.append(("sft", workdir.rsplit("/", 1)[-1])) or {"w": len(records)})
  monkeypatch.setattr(recipe, "run_grpo", lambda config, workdir, **kw: trained.append(
      ("grpo", workdir.rsplit("/", 1)[-1], kw["params"]["w"])) or types.SimpleNamespace(
          state=types.SimpleNamespace(params={"w": kw["params"]["w"] + 1})))
  evaluated = []

  def evaluate(name, params, sft_name):
    evaluated.append(name)
    return {"model": name, "w": params["w"], "from": sft_name}

  arms = {a: recipe.Arm(reward_fn=None, weights={}, sampling=None, sft=s)
          for a, s in (("a", "sft_x"), ("b", "sft_x"), ("c", "sft_y"))}
  sft_records = {"sft_x": lambda: [0, 0], "sft_y": lambda: [0, 0, 0]}
  cfg = ml_collections.ConfigDict({"seed": 0, "arms": ("a",), "rl": {"total_steps": 2}})

  def go():
    return recipe.sft_then_grpo(cfg, str(tmp_path), model=None, sft_records=sft_records, rl_records=[],
                                arms=arms, decode=None, evaluate=evaluate)

  out = go()
  assert out == {"sft_x": {"model": "sft_x", "w": 2, "from": "sft_x"}, "a": {"model": "a", "w": 3, "from": "sft_x"}}
  assert trained == [("sft", "sft_x"), ("grpo", "a", 2)] and evaluated == ["sft_x", "a"]
  trained.clear(), evaluated.clear()
  assert go() == out and trained == [] and evaluated == []     # a rerun trains and evaluates nothing
  cfg.arms = ("a", "b", "c")                                   # add arms: only they run
  out = go()
  # sft_y is trained and evaluated; the finished sft_x is only restored (run_sft) because arm b starts from it.
  assert trained == [("sft", "sft_y"), ("sft", "sft_x"), ("grpo", "b", 2), ("grpo", "c", 3)]
  assert evaluated == ["sft_y", "b", "c"] and out["c"] == {"model": "c", "w": 4, "from": "sft_y"}
  cfg.rl.total_steps = 3                                       # any other key: a stage of another config
  with pytest.raises(runrecord.ConfigMismatch, match="rl.total_steps 2 -> 3"):
    go()
