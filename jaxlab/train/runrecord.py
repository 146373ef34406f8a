"""The run record: what a workdir holds, so that rerunning a command never destroys its results.

Every experiment binary's ``run(config, workdir)`` is wrapped by :func:`recorded`, and every run inside a
sweep (a model of a comparison, a stage of a recipe) goes through :func:`reuse_or_run`. Both keep one file,
``<workdir>/run.json``, written atomically (a temporary file, then ``os.replace``)::

  {"format": 1, "status": "running" | "finished" | "failed", "config": {...the config as JSON...},
   "results": {...what the run returned, once computed...}, "created": "...", "started": "...",
   "finished": "...", "jaxlab_version": "0.1.0", "git_commit": "<sha or null>", "git_dirty": bool,
   "command": [...sys.argv...], "history": [{"started": ..., "changed": [...keys...]}, ...]}

Rules:

* a workdir whose record says ``finished`` for the same config is not run again: the wrapped call returns
  the recorded results and writes nothing (results files stay byte-identical, no TensorBoard event file is
  added, nothing is re-measured); a binary prints one line ``run in WORKDIR is finished (results in ...);
  nothing to do``;
* a workdir that holds a record of another config is a :class:`ConfigMismatch` (a ValueError naming the
  differing keys), never a silent overwrite, except for the keys a binary declares ``continuable`` (e.g.
  ``total_steps``: train on from the last checkpoint; ``models``: add models to a sweep);
* results files are written with :func:`write_json` (atomic), which refuses to replace a number of the file
  already there by a null.

Only process 0 writes; every process reads.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import ml_collections
from absl import logging

from jaxlab.train import runtime

RECORD = "run.json"
FORMAT = 1
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class ConfigMismatch(ValueError):
  """A workdir holds a run of another config."""


class NullResult(ValueError):
  """A results file write would replace a real number by a null."""


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _is_writer() -> bool:
  return jax.process_index() == 0


def to_json(config: ml_collections.ConfigDict | Mapping[str, Any] | None) -> dict:
  """A config as plain JSON values (tuples become lists; anything else not JSON becomes its repr)."""
  if config is None:
    return {}
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return json.loads(json.dumps(d, sort_keys=True, default=repr))


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(d, dict) and d:
    out = {}
    for k, v in d.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: d}


def config_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """Dotted keys whose values differ between two JSON configs (present in one only counts)."""
  a, b = _flatten(dict(old)), _flatten(dict(new))
  return sorted(k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def _continuable(key: str, continuable: Iterable[str]) -> bool:
  return any(key == c or key.startswith(c + ".") for c in continuable)


def _show(v: Any) -> str:
  return "(absent)" if v is _MISSING else json.dumps(v)


def _git() -> tuple[str | None, bool | None]:
  """(commit, dirty) of the checkout jaxlab runs from, or (None, None) when jaxlab is not run from a git
  checkout (e.g. pip-installed: the folder above site-packages/jaxlab may belong to another repository)."""
  if not os.path.exists(os.path.join(_ROOT, ".git")):
    return None, None
  try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_ROOT, capture_output=True, text=True, timeout=10)
    if commit.returncode != 0:
      return None, None
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=_ROOT,
                            capture_output=True, text=True, timeout=10)
    return commit.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
  except (OSError, subprocess.SubprocessError):
    return None, None


def _atomic_write_text(path: str, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and ``os.replace`` (never half a file)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def lost_numbers(old: Any, new: Any, path: str = "") -> list[str]:
  """Paths where ``old`` holds a real number and ``new`` holds null (or nothing) instead."""
  if isinstance(old, bool):
    return []
  if isinstance(old, (int, float)):
    return [path or "<root>"] if new is None and not (isinstance(old, float) and math.isnan(old)) else []
  if isinstance(old, dict):
    if not isinstance(new, dict):
      return [path or "<root>"] if new is None else []
    out = []
    for k, v in old.items():
      out += lost_numbers(v, new.get(k), f"{path}.{k}" if path else str(k))
    return out
  if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
    out = []
    for i, (a, b) in enumerate(zip(old, new)):
      out += lost_numbers(a, b, f"{path}[{i}]")
    return out
  return []


def write_json(path: str, obj: Any, indent: int | None = 2, *, text_suffix: str = "") -> None:
  """Writes a results file atomically; refuses (NullResult) to replace a number already there by a null.

  Only process 0 writes (other processes return).
  """
  if not _is_writer():
    return
  text = json.dumps(obj, indent=indent) + text_suffix
  if os.path.exists(path):
    try:
      with open(path, encoding="utf-8") as f:
        old = json.load(f)
    except (OSError, ValueError):
      old = None
    lost = lost_numbers(old, json.loads(text)) if old is not None else []
    if lost:
      raise NullResult(f"{path}: refusing to replace the numbers at {', '.join(lost[:5])}"
                       f"{' ...' if len(lost) > 5 else ''} by null")
  _atomic_write_text(path, text)


def read(workdir: str) -> dict | None:
  """The record of ``workdir``, or None when there is none."""
  path = os.path.join(workdir, RECORD)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      rec = json.load(f)
  except ValueError as e:
    raise ValueError(f"{path}: the run record is not valid JSON ({e}); move it away to start over") from None
  if not isinstance(rec, dict) or "config" not in rec or "status" not in rec:
    raise ValueError(f"{path}: not a jaxlab run record (no 'config'/'status'); move it away to start over")
  return rec


class Run:
  """One run in one workdir: opened against a config, then started, finished (or failed).

  ``finished`` is true when the workdir's record says finished for this config; ``results`` are then the
  recorded results. A record of another config raises ConfigMismatch on opening (keys in ``continuable``
  may differ: the run goes on in the same workdir and its record takes the new config).
  """

  def __init__(self, workdir: str, config, *, continuable: Iterable[str] = ()):
    self.workdir = workdir
    self.path = os.path.join(workdir, RECORD)
    self.config = to_json(config)
    self.previous = read(workdir)
    self.changed: list[str] = []
    self.finished = False
    self.results: Any = None
    self._workdir_existed = os.path.isdir(workdir)
    self._entries_before: set[str] = set(os.listdir(workdir)) if self._workdir_existed else set()
    if self.previous is None:
      return
    diff = config_diff(self.previous["config"], self.config)
    fixed = [k for k in diff if not _continuable(k, continuable)]
    if fixed:
      old, new = _flatten(self.previous["config"]), _flatten(self.config)
      shown = ", ".join(f"{k} {_show(old.get(k, _MISSING))} -> {_show(new.get(k, _MISSING))}" for k in fixed[:6])
      more = f" and {len(fixed) - 6} more" if len(fixed) > 6 else ""
      status = self.previous["status"]
      raise ConfigMismatch(f"{workdir} holds a {status} run of another config ({shown}{more}): use another "
                           "workdir, or rerun with the config it was run with")
    self.changed = diff
    if not diff and self.previous["status"] == "finished":
      self.finished, self.results = True, self.previous.get("results")

  def _write(self, rec: dict) -> None:
    if _is_writer():
      _atomic_write_text(self.path, json.dumps(rec, indent=1, allow_nan=True))

  def start(self) -> None:
    """Writes the record with status 'running' (keeps the creation time and history of an earlier run)."""
    commit, dirty = _git()
    prev = self.previous or {}
    history = list(prev.get("history", []))
    if self.previous is not None:
      history.append({"started": prev.get("started"), "status": prev.get("status"), "changed": self.changed})
    self.record = {"format": FORMAT, "status": "running", "config": self.config, "results": prev.get("results"),
                   "created": prev.get("created", _now()), "started": _now(), "finished": None,
                   "jaxlab_version": _version(), "git_commit": commit, "git_dirty": dirty,
                   "command": list(sys.argv), "history": history}
    self._write(self.record)

  def finish(self, results: Any, files: Iterable[str] = ()) -> None:
    """Records the results (JSON values) and status 'finished'; ``files`` name the results files."""
    rec = dict(self.record, status="finished", results=to_plain(results), finished=_now(),
               files=sorted(files))
    lost = lost_numbers(self.record.get("results"), rec["results"]) if self.previous else []
    if lost:
      raise NullResult(f"{self.path}: refusing to replace the recorded numbers at {', '.join(lost[:5])} by null")
    self.record = rec
    self._write(rec)
    self.finished, self.results = True, rec["results"]

  def fail(self, error: BaseException) -> None:
    """After an error: a run that wrote nothing leaves the workdir as it was; otherwise status 'failed'."""
    if not _is_writer():
      return
    entries = set(os.listdir(self.workdir)) - {RECORD} if os.path.isdir(self.workdir) else set()
    if self.previous is None and entries <= self._entries_before:
      if os.path.exists(self.path):
        os.remove(self.path)
      if not self._workdir_existed and os.path.isdir(self.workdir) and not os.listdir(self.workdir):
        os.rmdir(self.workdir)
      return
    self._write(dict(self.record, status="failed", error=f"{type(error).__name__}: {error}", finished=_now()))


def to_plain(obj: Any) -> Any:
  """Results as JSON values (numpy scalars and arrays become numbers and lists; NaN stays NaN)."""
  return json.loads(json.dumps(obj, default=_default, allow_nan=True))


def _default(x):
  if hasattr(x, "tolist"):
    return x.tolist()
  if hasattr(x, "to_dict"):
    return x.to_dict()
  return repr(x)


@functools.lru_cache(maxsize=1)
def _version() -> str:
  import jaxlab  # pylint: disable=import-outside-toplevel
  return jaxlab.__version__


def reuse_or_run(workdir: str, config, compute: Callable[[], Any], *, continuable: Iterable[str] = (),
                 files: Iterable[str] = ()) -> Any:
  """Per-run reuse inside a sweep: the recorded results of a finished run of ``config`` in ``workdir``,
  else ``compute()`` (which may resume from the workdir's checkpoints), recorded before it is returned."""
  run = Run(workdir, config, continuable=continuable)
  if run.finished:
    logging.info("Reusing the finished run in %s", workdir)
    return run.results
  os.makedirs(workdir, exist_ok=True)
  run.start()
  try:
    out = compute()
  except BaseException as e:
    run.fail(e)
    raise
  run.finish(out, files)
  return out


def results_files(workdir: str) -> list[str]:
  """The results files a finished run left in its workdir (results*.json, *.md, *.png, *.csv, *.txt)."""
  if not os.path.isdir(workdir):
    return []
  keep = (".json", ".md", ".png", ".csv", ".txt", ".msgpack")
  return sorted(f for f in os.listdir(workdir) if f.endswith(keep) and f != RECORD and not f.startswith("."))


def recorded(fn: Callable | None = None, *, continuable: Iterable[str] = ()):
  """Decorator for a binary's ``run(config, workdir)``: the run record around the whole run.

  A rerun of a finished run prints one line and returns the recorded results without doing anything; a
  workdir of another config is a ConfigMismatch; otherwise the run goes (or resumes) and its results are
  recorded. ``continuable`` names the config keys that may change between runs in one workdir.
  """
  keys = tuple(continuable)

  def wrap(run_fn):
    @functools.wraps(run_fn)
    def wrapper(config, workdir: str, *args, **kwargs):
      runtime.initialize()  # before the first jax.process_index(): multi-host start must come first
      run = Run(workdir, config, continuable=keys)
      if run.finished:
        files = run.previous.get("files") or []
        where = ", ".join(os.path.join(workdir, f) for f in files) if files else os.path.join(workdir, RECORD)
        print(f"run in {workdir} is finished (results in {where}); nothing to do", flush=True)
        return run.results
      if run.changed:
        logging.info("Continuing the run in %s with changed keys %s", workdir, run.changed)
      os.makedirs(workdir, exist_ok=True)
      run.start()
      try:
        out = run_fn(config, workdir, *args, **kwargs)
      except BaseException as e:
        run.fail(e)
        raise
      run.finish(out, results_files(workdir))
      return out

    wrapper.continuable = keys
    wrapper.run_record = True
    return wrapper

  return wrap(fn) if fn is not None else wrap
