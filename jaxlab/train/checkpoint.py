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
import re
import sys
from collections.abc import Mapping
from typing import Any

import grain
import jax
import ml_collections
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be used; the message (one line) names the path, the step and the cause."""


def describe_cause(e: BaseException, limit: int = 240) -> str:
  """The cause of an orbax/TensorStore read failure in a few words: the innermost message and the file.

  TensorStore's messages nest every layer ("Error opening "zarr" driver: Error reading ... : Requested byte
  range [0, 4979) is not valid for value of size 100") and end with a ~500 character JSON spec; the cause is
  the last segment, the file the last ``local file "..."`` it names.
  """
  text = " ".join(str(e).split())
  text = re.split(r" \[(?:tensorstore_spec|source locations)=", text)[0]
  files = re.findall(r'local file "([^"]+)"', text)
  cause = text.rsplit(": ", 1)[-1].strip() or type(e).__name__
  if len(cause) > limit:
    cause = cause[:limit] + "..."
  where = f" in {files[-1]}" if files and files[-1] not in cause else ""
  return f"{cause}{where}"


def _is_late_event_loop_callback(unraisable) -> bool:
  exc = unraisable.exc_value
  return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def _silence_late_callbacks() -> None:
  """After a failed read, TensorStore completes the reads that orbax's asyncio.run abandoned and calls back
  into the closed event loop; Python prints each as an unraisable "Event loop is closed" traceback (a dozen
  per damaged checkpoint, some at exit). Those, and only those, are dropped; installed once per process."""
  previous = sys.unraisablehook
  if getattr(previous, "_jaxlab_filter", False):
    return

  def hook(unraisable):
    if not _is_late_event_loop_callback(unraisable):
      previous(unraisable)

  hook._jaxlab_filter = True  # type: ignore[attr-defined]
  sys.unraisablehook = hook


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
      _silence_late_callbacks()
      raise CheckpointError(f"checkpoint {where} (step {step}) is unreadable: {describe_cause(e)}. Delete that "
                            "step folder to resume from an earlier one, or use a new --workdir.") from e
    if stored_meta is None:
      raise CheckpointError(f"checkpoint {where} (step {step}) has no 'state' item (incomplete or not a jaxlab "
                            "checkpoint)")
    tree = getattr(stored_meta, "tree", stored_meta)
    stored = _shape_table(tree)
    expected = _shape_table(abstract_state)
    diff = describe_mismatch(stored, expected)
    if diff:
      raise CheckpointError(f"checkpoint {where} (step {step}) does not match this run's model/optimiser: {diff}. "
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
      _silence_late_callbacks()
      raise CheckpointError(f"checkpoint {self._step_dir(step)} (step {step}) could not be restored: "
                            f"{describe_cause(e)}. The files are damaged or incomplete; delete that step folder "
                            "to resume from an earlier one, or use a new --workdir.") from e
    return restored["state"], restored.get("config")
