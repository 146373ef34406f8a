"""What the trainer checks before it trains (issue 13, item 4): the default config, checkpointable data,
the first batch's size, config values naming their keys; and what a run tells its user."""

import os
import re

import jax
import numpy as np
import pytest

from jaxlab.train import Trainer, default_config, train, validate_config
from jaxlab.train import checkpoint as ckpt_lib
from jaxlab.train import trainer as trainer_lib
from tests.train.helpers import base_config, make_task


def one_device():
  return [jax.devices()[0]]


def test_default_config_has_every_trainer_key_documented():
  c = default_config()
  assert set(trainer_lib.REQUIRED_KEYS) <= set(c.keys())
  validate_config(c, check_devices=True)
  source = open(trainer_lib.__file__.replace("trainer.py", "config.py"), encoding="utf-8").read()
  for line in source.splitlines():  # one comment per field
    if re.match(r"\s+c\.[\w.]+ = ", line) and "ConfigDict()" not in line:
      assert "  # " in line, line
  c2 = default_config()
  c2.total_steps = 7
  assert default_config().total_steps != 7  # a fresh dict each call


def test_plain_generator_is_refused_before_anything_is_written(tmp_path):
  task = make_task(16)
  task.train_data = (b for b in [{"x": np.zeros((16, 8), np.float32), "y": np.zeros((16, 4), np.float32)}] * 4)
  with pytest.raises(TypeError, match=r"Task.train_data is a generator, which cannot be checkpointed"):
    Trainer(base_config(checkpoint_every=2), str(tmp_path / "wd"), task, devices=one_device())
  assert not os.path.exists(tmp_path / "wd")
  # Without checkpoints a plain iterator is fine.
  result = train(base_config(total_steps=2), str(tmp_path / "wd2"), task, devices=one_device())
  assert int(result.state.step) == 2


def test_first_batch_of_the_wrong_size_is_refused(tmp_path):
  task = make_task(8)  # yields batches of 8 while the config says 16
  with pytest.raises(ValueError, match=r"'x' has leading dimension 8, but config.batch_size=16 means 16"):
    train(base_config(batch_size=16), str(tmp_path), task, devices=one_device())
  assert not os.path.exists(tmp_path / "checkpoints" / "1")


@pytest.mark.parametrize("overrides,match", [
    ({"total_steps": -5}, r"cfg.total_steps=-5 must be positive"),
    ({"optimizer.schedule": "cosine"}, r"cfg.optimizer.schedule='cosine' is not one of"),
    ({"mesh": {"data": 1, "model": 2}}, r"cfg.mesh has unknown axes \['model'\]"),
    ({"ema_decay": 1.5}, r"cfg.ema_decay=1.5 must be in \[0, 1\)"),
    ({"optimizer.learning_rate": -1.0}, r"cfg.optimizer.learning_rate=-1.0 must be a number ≥ 0"),
])
def test_config_values_name_their_key(overrides, match):
  with pytest.raises(ValueError, match=match):
    validate_config(base_config(**overrides), prefix="cfg")


def test_batch_against_the_devices_names_the_key():
  assert jax.device_count() == 8  # tests/conftest.py
  with pytest.raises(ValueError, match=r"cfg.sft.batch_size=12 is not divisible by the data-parallel size 8"):
    validate_config(base_config(batch_size=12, mesh=dict(data=-1, fsdp=1, tensor=1)), prefix="cfg.sft",
                    check_devices=True)


def test_run_summary_names_the_workdir_files(tmp_path, capsys):
  train(base_config(total_steps=2, checkpoint_every=2), str(tmp_path), make_task(16), devices=one_device())
  out = capsys.readouterr().out  # printed: no absl.app in this process
  assert "step 2/2 | loss" in out
  last = out.strip().splitlines()[-1]
  assert last.startswith(f"Workdir {tmp_path}:") and "metrics.jsonl" in last and "checkpoints/ (steps [2])" in last
  assert trainer_lib.describe_workdir(str(tmp_path / "none"), []).endswith("nothing written")


def test_checkpoint_error_is_one_line_with_the_cause():
  long_spec = "x" * 600
  e = ValueError('OUT_OF_RANGE: Error opening "zarr" driver: Error reading "step/.zarray" in OCDBT database at local '
                 'file "/w/checkpoints/6/state/": Error reading Byte range [0, 4979) of local file '
                 '"/w/checkpoints/6/state/d/f37a": Requested byte range [0, 4979) is not valid for value of size 100 '
                 f"[tensorstore_spec='{long_spec}'] [source locations='a.cc:1']")
  cause = ckpt_lib.describe_cause(e)
  assert cause == "Requested byte range [0, 4979) is not valid for value of size 100 in /w/checkpoints/6/state/d/f37a"
