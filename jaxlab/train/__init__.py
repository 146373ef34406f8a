"""Mesh and sharding rules, train state, the jitted train step, the trainer, checkpoints, metrics.

``default_config()`` returns the trainer's keys (mesh, optimizer, intervals, ...) with their defaults and a
comment each; experiment configs build on it. Names are imported on first use (PEP 562), so a config file
that only needs ``default_config`` does not import JAX (binaries check a mistyped config key in a second).
"""

import importlib

_EXPORTS = {
    "CheckpointError": "checkpoint", "Checkpointer": "checkpoint",
    "default_config": "config",
    "DEFAULT_RULES": "mesh", "MESH_AXES": "mesh", "batch_sharding": "mesh", "make_mesh": "mesh",
    "make_optimizer": "optim", "make_schedule": "optim",
    "TrainState": "step", "make_train_step": "step",
    "RolloutContext": "trainer", "Task": "trainer", "Trainer": "trainer", "TrainResult": "trainer",
    "evaluate": "trainer", "train": "trainer", "validate_config": "trainer",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
  if name in _EXPORTS:
    value = getattr(importlib.import_module(f"jaxlab.train.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
  try:
    return importlib.import_module(f"jaxlab.train.{name}")
  except ModuleNotFoundError as e:
    if e.name != f"jaxlab.train.{name}":
      raise  # the submodule exists and one of its own imports failed
    raise AttributeError(f"module 'jaxlab.train' has no attribute {name!r}") from None


def __dir__():
  return sorted(set(globals()) | set(_EXPORTS))
