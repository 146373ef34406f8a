r"""Ahead-of-time compilation of an experiment's train step for a TPU slice, on a machine without one.

  python -m jaxlab.train.aot --config=experiments/lm/configs/default.py:paper --topology=v5p:4x4x4

libtpu (``pip install -e ".[tpu]"``) describes any TPU topology without the chips
(``jax.experimental.topologies.get_topology_desc``); XLA compiles against those abstract devices as it would
on the pod. The experiment's task is built abstractly: ``jax.eval_shape`` of its ``init_params`` (no weights)
and ShapeDtypeStructs for the global batch (no data), then the trainer's own train step
(``jaxlab.train.step.make_train_step``, the optimiser of ``config.optimizer``, the shardings of the logical
rules on ``config.mesh``) is lowered and compiled. The report: per-device argument / output / temp memory
against the chip's HBM, the step's FLOPs (XLA's count, per device and in all), and the collectives in the
optimised HLO.

The task builder is ``abstract_task(config) -> AbstractTask`` in ``experiments/<name>/aot_task.py``, found from
the config's path; ``--task=module:function`` names another.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from jaxlab.train import mesh as mesh_lib
from jaxlab.train import optim
from jaxlab.train import step as step_lib
from jaxlab.train import trainer

# HBM per chip by device_kind (Google Cloud TPU system architecture pages): v4 32 GiB, v5e 16 GiB,
# v5p 95 GiB, v6e (Trillium) 32 GiB.
HBM_BYTES = {"TPU v4": 32 * 2**30, "TPU v5 lite": 16 * 2**30, "TPU v5e": 16 * 2**30, "TPU v5": 95 * 2**30,
             "TPU v5p": 95 * 2**30, "TPU v6 lite": 32 * 2**30, "TPU v6e": 32 * 2**30}
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")


@dataclasses.dataclass
class AbstractTask:
  """What the AOT compile needs of an experiment: the trainer's Task without weights or data.

  Attributes:
    init_params: ``rng -> params`` as in trainer.Task (boxed with logical names); only traced (eval_shape).
    loss_fn: ``(params, batch, rng[, frozen]) -> (loss, metrics)`` as in trainer.Task.
    batch: the global batch, ``{name: jax.ShapeDtypeStruct([batch_size, ...])}``.
    frozen_params: optional abstract (or boxed abstract) frozen weights, as trainer.Task.frozen_params.
    tokens_per_example: for the report (sequence length for an LM).
    trainer_config: the config holding the trainer's keys (batch_size, mesh, optimizer, ...) when it is not the
      experiment config itself (psm keeps them in ``config.train``); None = the experiment config.
  """
  init_params: Callable[[jax.Array], Any]
  loss_fn: step_lib.LossFn
  batch: Mapping[str, jax.ShapeDtypeStruct]
  frozen_params: Any = None
  tokens_per_example: int = 1
  trainer_config: ml_collections.ConfigDict | None = None


def topology_devices(topology: str) -> list:
  """The abstract devices of a TPU topology name such as 'v5p:4x4x4' or 'v5e:16x16' (needs libtpu).

  libtpu takes a process-wide lock file (libtpu_lockfile in the temp folder) unless told that several processes may load it;
  an AOT compile never drives a chip, so several may run at once (ALLOW_MULTIPLE_LIBTPU_LOAD=1 is set here
  unless the environment says otherwise)."""
  from jax.experimental import topologies  # pylint: disable=import-outside-toplevel
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  try:
    return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(f"--topology={topology!r}: libtpu could not describe it ({str(e).splitlines()[0]}). Install "
                       "the TPU compiler with pip install -e '.[tpu]'; names look like v5p:4x4x4, v5e:16x16, "
                       "v4:2x2x2") from e


def _unbox(tree):
  return jax.tree.map(lambda x: getattr(x, "value", x), tree, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def count_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(_unbox(tree))))


def collectives(hlo_text: str) -> dict[str, int]:
  """Counts of each collective op in optimised HLO text (async '-start' forms counted once)."""
  out = {}
  for op in COLLECTIVES:
    n = len(re.findall(rf"= [^=]*? {op}(?:-start)?\(", hlo_text))
    if n:
      out[op] = n
  return out


def compile_train_step(config: ml_collections.ConfigDict, task: AbstractTask, devices: Sequence) -> dict:
  """Lowers and compiles the trainer's train step for ``devices`` on ``config.mesh``; returns the report."""
  t0 = time.perf_counter()
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  rules = mesh_lib.rules_from_config(config.get("sharding_rules"))
  mesh_lib.check_batch_divisible(int(config.batch_size), mesh, int(config.get("num_microbatches", 1)))
  tx, schedule = optim.make_optimizer(config.optimizer, int(config.total_steps))
  ema = float(config.get("ema_decay", 0.0))
  rng = jax.random.PRNGKey(int(config.seed))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(task.init_params, rng)
    param_shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, rules)
    abstract_state = jax.eval_shape(
        lambda r: step_lib.init_train_state(nn.unbox(task.init_params(r)), tx, r, use_ema=ema > 0), rng)
  # Outside the mesh context: optax traces the optimiser's init eagerly, which must not target TPU devices.
  shardings = trainer.state_shardings(abstract_state, param_shardings, tx, mesh)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    batch_sharding = mesh_lib.batch_sharding(mesh)
    frozen, frozen_shardings = (), ()
    if task.frozen_params is not None:
      fs = nn.logical_to_mesh_sharding(nn.get_partition_spec(task.frozen_params), mesh, rules)
      frozen_shardings = (fs,)
      frozen = (jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                             _unbox(task.frozen_params), fs),)
    step_fn = step_lib.make_train_step(task.loss_fn, tx, schedule, num_microbatches=int(config.get(
        "num_microbatches", 1)), ema_decay=ema)
    jitted = jax.jit(step_fn, in_shardings=(shardings, batch_sharding, *frozen_shardings),
                     out_shardings=(shardings, mesh_lib.replicated(mesh)), donate_argnums=0)
    state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings)
    batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sharding) for k, v in task.batch.items()}
    compiled = jitted.lower(state, batch, *frozen).compile()
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  kind = devices[0].device_kind
  arg, out, tmp = (int(getattr(mem, f"{k}_size_in_bytes", 0)) for k in ("argument", "output", "temp"))
  alias = int(getattr(mem, "alias_size_in_bytes", 0))
  total = arg + out - alias + tmp
  hbm = HBM_BYTES.get(kind)
  flops = float(cost.get("flops", 0.0)) if cost else 0.0
  return {"devices": len(devices), "device_kind": kind, "mesh": dict(mesh.shape),
          "params": count_params(boxed), "batch": {k: list(v.shape) for k, v in task.batch.items()},
          "argument_bytes": arg, "output_bytes": out, "alias_bytes": alias, "temp_bytes": tmp, "total_bytes": total,
          "hbm_bytes": hbm, "fits": None if hbm is None else total <= hbm,
          "flops_per_device": flops, "flops_total": flops * len(devices),
          "collectives": collectives(compiled.as_text()), "compile_seconds": round(time.perf_counter() - t0, 1)}


def _gib(b) -> str:
  return "?" if b is None else f"{b / 2**30:.2f} GiB"


def format_report(r: Mapping[str, Any], topology: str) -> str:
  lines = [f"{topology}: {r['devices']} × {r['device_kind']}, mesh {r['mesh']}, {r['params']:,} parameters, "
           f"global batch {r['batch']}",
           f"per-device memory: arguments {_gib(r['argument_bytes'])}, outputs {_gib(r['output_bytes'])} "
           f"(aliased {_gib(r['alias_bytes'])}), temp {_gib(r['temp_bytes'])}, total {_gib(r['total_bytes'])} "
           f"of {_gib(r['hbm_bytes'])} HBM: " + {True: "fits", False: "DOES NOT FIT", None: "HBM unknown"}[r["fits"]],
           f"FLOPs per step: {r['flops_per_device']:.3e} per device, {r['flops_total']:.3e} in all",
           "collectives in the optimised HLO: " + (", ".join(f"{k} ×{v}" for k, v in r["collectives"].items())
                                                   or "none"),
           f"compiled in {r['compile_seconds']} s"]
  return "\n".join(lines)


def load_config(spec: str) -> ml_collections.ConfigDict:
  """``path/to/config.py[:arg]`` -> get_config(arg), as absl's config_flags reads it."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise SystemExit(f"--config={spec!r}: no such file {path!r}")
  module_spec = importlib.util.spec_from_file_location("_jaxlab_aot_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def default_task_builder(config_path: str) -> str:
  """experiments/<name>/configs/x.py -> 'experiments.<name>.aot_task:abstract_task'."""
  parts = os.path.normpath(config_path.partition(":")[0]).split(os.sep)
  if "configs" not in parts or parts.index("configs") < 1:
    raise SystemExit(f"--config={config_path!r} is not under experiments/<name>/configs/: name the builder with "
                     "--task=module:function")
  i = parts.index("configs")
  return ".".join(parts[:i]) + ".aot_task:abstract_task"


def load_builder(spec: str) -> Callable[[ml_collections.ConfigDict], AbstractTask]:
  module, _, fn = spec.partition(":")
  try:
    return getattr(importlib.import_module(module), fn or "abstract_task")
  except (ImportError, AttributeError) as e:
    raise SystemExit(f"--task={spec!r}: {e}") from None


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
  """``key.sub=value`` strings (values parsed as JSON where they parse, else kept as strings)."""
  for item in overrides:
    key, sep, value = item.partition("=")
    if not sep:
      raise SystemExit(f"--set {item!r}: expected key=value")
    try:
      parsed = json.loads(value)
    except ValueError:
      parsed = value
    node, *rest = key.split(".")
    target = config
    path = [node, *rest]
    for k in path[:-1]:
      if k not in target:
        raise SystemExit(f"--set {item!r}: the config has no key {key!r}")
      target = target[k]
    if path[-1] not in target:
      raise SystemExit(f"--set {item!r}: the config has no key {key!r}")
    target[path[-1]] = parsed


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m jaxlab.train.aot", description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True, help="experiment config, path[:variant]")
  parser.add_argument("--topology", required=True, help="TPU topology, e.g. v5p:4x4x4")
  parser.add_argument("--task", default="", help="module:function building the AbstractTask (default: from --config)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
  parser.add_argument("--json", default="", help="also write the report as JSON to this file")
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  jax.config.update("jax_platforms", "cpu")  # the host's backend stays CPU; TPU devices are only described
  config = load_config(args.config)
  apply_overrides(config, args.set)
  builder = load_builder(args.task or default_task_builder(args.config))
  devices = topology_devices(args.topology)
  task = builder(config)
  report = compile_train_step(task.trainer_config or config, task, devices)
  report["topology"], report["config"] = args.topology, args.config
  print(format_report(report, args.topology), flush=True)
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
