"""Metric writing (JSONL + TensorBoard event files), the progress line, and FLOP accounting.

TensorBoard files are written with the ``tensorboard`` package's own event writer and summary protos, so
no TensorFlow is needed. Only process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging


class MetricWriter:
  """Writes scalars to ``<workdir>/metrics.jsonl`` and TensorBoard events under ``<workdir>/tb``."""

  def __init__(self, workdir: str, *, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._jsonl = None
    self._tb = None
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
      try:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self._tb = EventFileWriter(os.path.join(workdir, "tb"))
      except ImportError:  # tensorboard is a declared dependency; stay usable without it.
        logging.warning("tensorboard is not installed: metrics go to metrics.jsonl only")

  def write(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
    if not self.enabled:
      return
    values = {f"{prefix}{k}": float(v) for k, v in scalars.items()}
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      from tensorboard.compat.proto import event_pb2, summary_pb2
      summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=k, simple_value=v)
                                           for k, v in values.items() if math.isfinite(v)])
      self._tb.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


def read_jsonl(path: str) -> list[dict]:
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def last_logged(workdir: str, step: int, prefix: str) -> dict[str, float]:
  """The metrics logged under ``prefix`` at ``step`` in ``<workdir>/metrics.jsonl`` (prefix removed; the
  last line of that step wins), or {} when there are none."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return {}
  out: dict[str, float] = {}
  for row in read_jsonl(path):
    if row.get("step") == step and any(k.startswith(prefix) for k in row):
      out = {k[len(prefix):]: v for k, v in row.items() if k.startswith(prefix)}
  return out


def measure_matmul_peak(n: int = 2048, dtype=jnp.float32, repeats: int = 5) -> float:
  """Measured FLOP/s of a square matmul on the default device: the denominator of MFU."""
  a = jnp.ones((n, n), dtype)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  best = math.inf
  for _ in range(repeats):
    t0 = time.perf_counter()
    f(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n ** 3 / best


def compiled_flops(compiled) -> float | None:
  """FLOPs of a compiled executable from XLA's cost analysis (None when unavailable)."""
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0] if analysis else None
  if not analysis or "flops" not in analysis:
    return None
  return float(analysis["flops"])


class Progress:
  """Tracks throughput between log points and prints one progress line with an ETA."""

  def __init__(self, total_steps: int, start_step: int, examples_per_step: int, tokens_per_step: int,
               flops_per_step: float | None, peak_flops: float | None):
    self.total, self.examples, self.tokens = total_steps, examples_per_step, tokens_per_step
    self.flops, self.peak = flops_per_step, peak_flops
    self._t, self._step = time.perf_counter(), start_step

  def reset(self, step: int) -> None:
    """Restarts the clock (e.g. after compilation or an eval pass, which are not training time)."""
    self._t, self._step = time.perf_counter(), step

  def update(self, step: int) -> dict[str, float]:
    now = time.perf_counter()
    dt, ds = now - self._t, step - self._step
    self._t, self._step = now, step
    if ds <= 0 or dt <= 0:
      return {}
    out = {"steps_per_sec": ds / dt, "examples_per_sec": ds * self.examples / dt,
           "tokens_per_sec": ds * self.tokens / dt}
    if self.flops:
      out["model_tflops_per_sec"] = ds * self.flops / dt / 1e12
      if self.peak:
        out["mfu"] = ds * self.flops / dt / self.peak
    return out

  def line(self, step: int, metrics: Mapping[str, float]) -> str:
    sps = metrics.get("steps_per_sec", 0.0)
    eta = (self.total - step) / sps if sps > 0 else float("nan")
    parts = [f"step {step}/{self.total}", f"loss {metrics.get('loss', float('nan')):.4f}"]
    if "steps_per_sec" in metrics:
      parts.append(f"{sps:.2f} steps/s")
      parts.append(f"{metrics['tokens_per_sec']:.0f} tok/s")
    if "mfu" in metrics:
      parts.append(f"MFU {100 * metrics['mfu']:.1f}%")
    parts.append(f"ETA {format_seconds(eta)}")
    return " | ".join(parts)


def format_seconds(s: float) -> str:
  if not np.isfinite(s):
    return "?"
  s = int(round(s))
  return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
