"""Trainer: sharded == single device, resume == uninterrupted, accumulation == big batch, loud errors."""

import os

import jax
import numpy as np
import pytest

from jaxlab.train import CheckpointError, Trainer, train
from tests.train.helpers import base_config, make_task

def one_device():
  return [jax.devices()[0]]


def params_np(state):
  return jax.tree.map(np.asarray, jax.device_get(state.params))


def assert_trees_close(a, b, atol=1e-5):
  for (pa, xa), (pb, xb) in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)):
    assert pa == pb
    np.testing.assert_allclose(xa, xb, atol=atol, rtol=1e-5, err_msg=jax.tree_util.keystr(pa))


@pytest.mark.parametrize("mesh", [dict(data=8, fsdp=1, tensor=1), dict(data=2, fsdp=4, tensor=1),
                                  dict(data=2, fsdp=1, tensor=4)])
def test_sharded_matches_single_device(tmp_path, mesh):
  assert jax.device_count() == 8
  ref = train(base_config(total_steps=3), str(tmp_path / "one"), make_task(16), devices=one_device())
  shd = Trainer(base_config(total_steps=3, mesh=mesh), str(tmp_path / "many"), make_task(16))
  res = shd.run()
  np.testing.assert_allclose(res.train_metrics["loss"], ref.train_metrics["loss"], atol=1e-5)
  assert_trees_close(params_np(res.state), params_np(ref.state))
  # The parameters really are sharded as the rules say.
  kernel = res.state.params["wi"]["kernel"]
  spec = kernel.sharding.spec
  if mesh["fsdp"] > 1:
    assert spec[0] == "fsdp"
  if mesh["tensor"] > 1:
    assert spec[1] == "tensor"


def test_resume_equals_uninterrupted(tmp_path):
  n = 3
  full_task = make_task(8, dropout=True)
  full = train(base_config(total_steps=2 * n, batch_size=8), str(tmp_path / "full"), full_task,
               devices=one_device())
  work = str(tmp_path / "resumed")
  first_task = make_task(8, dropout=True)
  train(base_config(total_steps=n, batch_size=8, checkpoint_every=n), work, first_task, devices=one_device())
  second_task = make_task(8, dropout=True)  # a fresh process would build a fresh iterator
  res = train(base_config(total_steps=2 * n, batch_size=8, checkpoint_every=n), work, second_task,
              devices=one_device())
  assert res.start_step == n
  seen = first_task.train_data.seen + second_task.train_data.seen
  assert len(seen) == 2 * n
  for a, b in zip(seen, full_task.train_data.seen):
    np.testing.assert_array_equal(a["x"], b["x"])
  assert_trees_close(params_np(res.state), params_np(full.state), atol=1e-6)
  assert int(res.state.step) == 2 * n


def test_gradient_accumulation_equals_big_batch(tmp_path):
  big = train(base_config(total_steps=1, batch_size=16), str(tmp_path / "a"), make_task(16), devices=one_device())
  acc = train(base_config(total_steps=1, batch_size=16, num_microbatches=4), str(tmp_path / "b"), make_task(16),
              devices=one_device())
  np.testing.assert_allclose(acc.train_metrics["loss"], big.train_metrics["loss"], atol=1e-6)
  np.testing.assert_allclose(acc.train_metrics["grad_norm"], big.train_metrics["grad_norm"], rtol=1e-5)
  assert_trees_close(params_np(acc.state), params_np(big.state), atol=1e-6)


def test_accumulation_sharded(tmp_path):
  big = train(base_config(total_steps=1, batch_size=16), str(tmp_path / "a"), make_task(16), devices=one_device())
  acc = train(base_config(total_steps=1, batch_size=16, num_microbatches=2, mesh=dict(data=8, fsdp=1, tensor=1)),
              str(tmp_path / "b"), make_task(16))
  assert_trees_close(params_np(acc.state), params_np(big.state), atol=1e-6)


def test_eval_and_metrics_files(tmp_path):
  task = make_task(16)
  res = train(base_config(total_steps=2, eval_every=2, ema_decay=0.9), str(tmp_path), task, devices=one_device())
  # Eval runs on the EMA params and averages over every eval example (2 batches × 16).
  assert res.eval_metrics["weight"] == 32
  batches = task.eval_data()
  preds = [task.model.apply({"params": res.state.ema_params}, b["x"]) for b in batches]
  expected = np.mean([np.mean(np.asarray(p) ** 2) for p in preds])
  np.testing.assert_allclose(res.eval_metrics["mse"], expected, rtol=1e-5)
  lines = open(os.path.join(tmp_path, "metrics.jsonl")).read().splitlines()
  assert any('"train/loss"' in line and '"train/grad_norm"' in line and '"train/tokens_per_sec"' in line
             for line in lines)
  assert os.listdir(tmp_path / "tb"), "TensorBoard event file missing"
  assert res.state.ema_params is not None


def test_mesh_not_dividing_devices_is_clear(tmp_path):
  with pytest.raises(ValueError, match=r"config.mesh .* needs 3 devices but 8"):
    Trainer(base_config(mesh=dict(data=3, fsdp=1, tensor=1)), str(tmp_path), make_task(16))
  with pytest.raises(ValueError, match=r"does not divide the 8"):
    Trainer(base_config(mesh=dict(data=-1, fsdp=3, tensor=1)), str(tmp_path), make_task(16))


def test_batch_not_divisible_is_clear(tmp_path):
  with pytest.raises(ValueError, match=r"config.batch_size=12 .* not divisible by the data-parallel size 8"):
    Trainer(base_config(batch_size=12, mesh=dict(data=8, fsdp=1, tensor=1)), str(tmp_path), make_task(12))


def test_bad_optimizer_name_is_clear(tmp_path):
  with pytest.raises(ValueError, match=r"config.optimizer.name='adamx'"):
    Trainer(base_config(**{"optimizer.name": "adamx"}), str(tmp_path), make_task(16), devices=one_device())


def _corrupt(step_dir):
  for root, _, files in os.walk(step_dir / "state"):
    for f in files:
      path = os.path.join(root, f)
      with open(path, "r+b") as fh:
        fh.write(b"\x00garbage" * 8)


def test_corrupted_checkpoint_is_loud(tmp_path):
  train(base_config(total_steps=2, checkpoint_every=2), str(tmp_path), make_task(16), devices=one_device())
  _corrupt(tmp_path / "checkpoints" / "2")
  with pytest.raises(CheckpointError, match=r"checkpoints/2"):
    train(base_config(total_steps=4, checkpoint_every=2), str(tmp_path), make_task(16), devices=one_device())


def test_mismatched_checkpoint_is_loud(tmp_path):
  train(base_config(total_steps=2, checkpoint_every=2), str(tmp_path), make_task(16), devices=one_device())
  # Same workdir, different optimiser state layout (SGD with momentum instead of AdamW).
  with pytest.raises(CheckpointError, match=r"does not match"):
    train(base_config(total_steps=4, checkpoint_every=2, **{"optimizer.name": "sgd"}), str(tmp_path),
          make_task(16), devices=one_device())
