"""Checkpointing with orbax's CheckpointManager.

A checkpoint at ``<workdir>/checkpoints/<step>/`` holds three items:

* ``state``  – the TrainState (params, optimiser state, step, RNG, EMA), saved as sharded arrays and
  restored straight into the run's shardings (an abstract target of ShapeDtypeStructs with shardings);
* ``data``   – the grain iterator state, so a resumed run sees exactly the batches it would have seen;
* ``config`` – the run's config as JSON, for the record and for a loud error when a resume uses a config
  whose model does not match;
* ``meta``   – optional JSON (e.g. ``frozen_id``, the base weights that LoRA adapters were trained on).

Saving is asynchronous and atomic: orbax writes into a temporary folder and renames it only after every
item is committed, so a crash mid-save leaves the previous checkpoint as the latest one. Restoring never
falls back to a fresh start silently: any failure to read the latest checkpoint raises CheckpointError
naming the folder and what is wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be used; the message names the path and the problem."""


def _path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _shape_table(tree) -> dict[str, tuple[tuple[int, ...], str]]:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  return {_path_str(p): (tuple(x.shape), str(x.dtype)) for p, x in leaves}


def describe_mismatch(stored: Mapping[str, tuple], expected: Mapping[str, tuple], limit: int = 8) -> str:
  """Human-readable difference between two {path: (shape, dtype)} tables ('' when they agree)."""
  lines = []
  missing = sorted(set(expected) - set(stored))
  extra = sorted(set(stored) - set(expected))
  changed = sorted(k for k in set(stored) & set(expected) if stored[k] != expected[k])
  if missing:
    lines.append(f"missing in checkpoint: {missing[:limit]}" + (" ..." if len(missing) > limit else ""))
  if extra:
    lines.append(f"not expected by the model: {extra[:limit]}" + (" ..." if len(extra) > limit else ""))
  for k in changed[:limit]:
    lines.append(f"{k}: checkpoint has shape/dtype {stored[k]}, the run expects {expected[k]}")
  return "; ".join(lines)


class Checkpointer:
  """Thin wrapper over ``ocp.CheckpointManager`` with jaxlab's three items and loud errors."""

  def __init__(self, directory: str, *, max_to_keep: int = 3, save_interval_steps: int = 1,
               async_save: bool = True):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        item_handlers={"state": ocp.StandardCheckpointHandler(), "data": grain.checkpoint.CheckpointHandler(),
                       "config": ocp.JsonCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, save_interval_steps=save_interval_steps,
                                             enable_async_checkpointing=async_save, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state, data_iter=None, config: ml_collections.ConfigDict | None = None,
           force: bool = False, meta: Mapping[str, Any] | None = None) -> bool:
    items: dict[str, Any] = {"state": ocp.args.StandardSave(state)}
    if meta is not None:
      items["meta"] = ocp.args.JsonSave(dict(meta))
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    if config is not None:
      items["config"] = ocp.args.JsonSave(json.loads(config.to_json_best_effort()))
    return self._manager.save(int(step), args=ocp.args.Composite(**items), force=force)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def _step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def check_compatible(self, step: int, abstract_state) -> None:
    """Raises CheckpointError when the stored state's tree or shapes differ from ``abstract_state``."""
    where = self._step_dir(step)
    try:
      stored_meta = self._manager.item_metadata(step)["state"]
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f"checkpoint {where} is unreadable: its metadata could not be read "
                            f"({type(e).__name__}: {e}). Delete it or point --workdir elsewhere.") from e
    if stored_meta is None:
      raise CheckpointError(f"checkpoint {where} has no 'state' item (incomplete or not a jaxlab checkpoint)")
    tree = getattr(stored_meta, "tree", stored_meta)
    stored = _shape_table(tree)
    expected = _shape_table(abstract_state)
    diff = describe_mismatch(stored, expected)
    if diff:
      raise CheckpointError(f"checkpoint {where} does not match this run's model/optimiser: {diff}. "
                            "Resume with the config that wrote it, or use a new --workdir.")

  def restore_meta(self, step: int) -> dict[str, Any]:
    """The ``meta`` item saved at ``step`` ({} when that checkpoint has none)."""
    if not os.path.isdir(os.path.join(self._step_dir(step), "meta")):
      return {}
    return dict(self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])

  def restore(self, step: int, abstract_state, data_iter=None):
    """Restores (state, config_dict) at ``step`` into the shardings of ``abstract_state``.

    ``data_iter`` (a grain iterator) is restored in place when given.
    """
    self.check_compatible(step, abstract_state)
    items: dict[str, Any] = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    items["config"] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f"checkpoint {self._step_dir(step)} could not be restored "
                            f"({type(e).__name__}: {str(e)[:500]}). The files are damaged or incomplete; "
                            "delete that step folder to resume from an earlier one, or use a new --workdir.") from e
    return restored["state"], restored.get("config")
