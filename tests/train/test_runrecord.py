"""The run record (jaxlab.train.runrecord) and the trainer's finished-training path: a rerun never destroys
results, a config mismatch names its keys, nothing replaces a number by a null."""

import json
import os

import jax
import ml_collections
import pytest

from jaxlab.train import runrecord, train
from tests.train.helpers import base_config, make_task


def config(**kw):
  c = ml_collections.ConfigDict({"lr": 0.1, "total_steps": 4, "model": {"width": 8, "sizes": (1, 2)}})
  c.update(kw)
  return c


def make_run(calls, out=None):
  @runrecord.recorded(continuable=("total_steps",))
  def run(cfg, workdir):
    calls.append(cfg.total_steps)
    res = out if out is not None else {"loss": 0.5, "steps": cfg.total_steps}
    runrecord.write_json(os.path.join(workdir, "results.json"), res)
    return res
  return run


def test_finished_run_is_not_run_again(tmp_path, capsys):
  calls, wd = [], str(tmp_path / "wd")
  run = make_run(calls)
  first = run(config(), wd)
  rec = json.load(open(os.path.join(wd, "run.json")))
  assert rec["status"] == "finished" and rec["results"] == first
  assert rec["config"] == {"lr": 0.1, "total_steps": 4, "model": {"width": 8, "sizes": [1, 2]}}
  assert rec["files"] == ["results.json"] and rec["jaxlab_version"] and rec["started"] and rec["finished"]
  assert "git_commit" in rec and "command" in rec
  before = {f: open(os.path.join(wd, f), "rb").read() for f in os.listdir(wd)}
  capsys.readouterr()
  again = run(config(), wd)
  assert again == first and calls == [4]
  assert capsys.readouterr().out == (f"run in {wd} is finished (results in {os.path.join(wd, 'results.json')}); "
                                     "nothing to do\n")
  assert {f: open(os.path.join(wd, f), "rb").read() for f in os.listdir(wd)} == before  # byte-identical


def test_config_mismatch_names_the_keys(tmp_path):
  calls, wd = [], str(tmp_path)
  run = make_run(calls)
  run(config(), wd)
  with pytest.raises(runrecord.ConfigMismatch, match=r"lr 0.1 -> 0.2, model.sizes \[1, 2\] -> \[1, 3\]"):
    run(config(lr=0.2, model={"width": 8, "sizes": (1, 3)}), wd)
  with pytest.raises(runrecord.ConfigMismatch, match=r"extra \(absent\) -> 1"):
    run(config(extra=1), wd)
  assert calls == [4]
  # A continuable key may change: the run goes on and its record takes the new config.
  assert run(config(total_steps=8), wd)["steps"] == 8 and calls == [4, 8]
  rec = runrecord.read(wd)
  assert rec["config"]["total_steps"] == 8 and rec["history"][-1]["changed"] == ["total_steps"]


def test_failure_before_writing_leaves_the_workdir_as_it_was(tmp_path):
  @runrecord.recorded
  def bad(cfg, workdir):
    raise ValueError("config.lr must be positive")

  wd = tmp_path / "new"
  with pytest.raises(ValueError, match="config.lr"):
    bad(config(), str(wd))
  assert not wd.exists()   # nothing was written: no record, no workdir

  @runrecord.recorded
  def crashes(cfg, workdir):
    open(os.path.join(workdir, "partial.txt"), "w").close()
    raise RuntimeError("killed")

  with pytest.raises(RuntimeError):
    crashes(config(), str(wd))
  rec = runrecord.read(str(wd))
  assert rec["status"] == "failed" and "killed" in rec["error"]
  calls = []
  assert make_run(calls)(config(), str(wd))["loss"] == 0.5 and calls == [4]   # same config: runs again
  with pytest.raises(runrecord.ConfigMismatch, match="finished run of another config"):
    make_run(calls)(config(lr=1.0), str(wd))


def test_results_never_lose_a_number(tmp_path):
  path = str(tmp_path / "results.json")
  runrecord.write_json(path, {"val_perplexity": 30.9, "sample": "ROMEO:", "eval": {"nll": 3.4}, "n": None})
  for bad in ({"val_perplexity": None, "sample": "x", "eval": {"nll": 3.4}},
              {"val_perplexity": 30.9, "sample": "x", "eval": {}}):
    with pytest.raises(runrecord.NullResult, match="val_perplexity|eval.nll"):
      runrecord.write_json(path, bad)
  runrecord.write_json(path, {"val_perplexity": 29.0, "sample": None, "eval": {"nll": 3.3}, "n": 1})
  assert json.load(open(path))["val_perplexity"] == 29.0
  assert [f for f in os.listdir(tmp_path) if f != "results.json"] == []   # no temporary files left
  assert runrecord.lost_numbers([1.0, {"a": 2}], [1.0, {"a": None}]) == ["[1].a"]


def test_reuse_or_run_inside_a_sweep(tmp_path):
  calls = []
  for name in ("a", "b", "a"):
    runrecord.reuse_or_run(str(tmp_path / name), {"run": name}, lambda name=name: calls.append(name) or {"x": 1})
  assert calls == ["a", "b"]


def test_finished_training_is_returned_without_writing(tmp_path):
  """The trainer restores a finished training: same metrics, no new metrics line, event file or checkpoint."""
  cfg = base_config(total_steps=3, eval_every=3, checkpoint_every=3)
  first = train(cfg, str(tmp_path), make_task(16), devices=[jax.devices()[0]])
  files = sorted(os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs)
  jsonl = open(tmp_path / "metrics.jsonl", "rb").read()
  again = train(cfg, str(tmp_path), make_task(16), devices=[jax.devices()[0]])
  assert again.start_step == 3 and int(again.state.step) == 3
  assert again.train_metrics == first.train_metrics and first.train_metrics["loss"] > 0
  assert again.eval_metrics == first.eval_metrics and "mse" in first.eval_metrics
  assert sorted(os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs) == files
  assert open(tmp_path / "metrics.jsonl", "rb").read() == jsonl
