"""The one jaxlab trainer: experiments supply a Task (init, loss, data); they never copy this loop.

Phases, top to bottom: mesh → data checks → shape-only init (jax.eval_shape) → shardings from the
logical rules → jitted step with donated state → restore (or sharded init) → loop (log, eval, save).

Restarting the same command with the same workdir resumes from the latest checkpoint: params, optimiser
state, step, RNG and the data iterator's position come back, so N + N steps equal 2N uninterrupted steps.
A checkpoint that cannot be read is a loud CheckpointError, never a silent restart from step 0.

On-policy training (GRPO and friends) plugs in through ``Task.rollout``: each step, the trainer draws the next
item of ``train_data`` (e.g. a batch of prompts), hands it with the *current* state to the rollout callback,
which samples from the policy on the training mesh and returns the batch the jitted step trains on, plus host
metrics (rewards, lengths, rollout tokens/s) that are logged with the step's metrics. Sampling noise comes
from ``RolloutContext.rng`` = fold_in(state.rng, step), and the prompt iterator is checkpointed as any
``train_data``, so an interrupted RL run resumes exactly too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import flags as absl_flags
from absl import logging

from jaxlab.train import checkpoint as ckpt_lib
from jaxlab.train import mesh as mesh_lib
from jaxlab.train import metrics as metrics_lib
from jaxlab.train import optim
from jaxlab.train import runtime
from jaxlab.train import step as step_lib

Batch = Mapping[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class RolloutContext:
  """What a rollout callback gets besides the state and the next ``train_data`` item.

  Attributes:
    step: the number of updates applied so far (the batch built now trains update ``step + 1``).
    rng: a key that depends only on (config.seed, step): fold_in(state.rng, step) folded with a constant,
      so rollout noise never reuses the train step's dropout key.
    mesh: the training mesh (the callback runs inside the trainer's mesh + logical-rules scope).
    batch_sharding: the sharding of a batch array over the data axes.
  """
  step: int
  rng: jax.Array
  mesh: jax.sharding.Mesh
  batch_sharding: jax.sharding.NamedSharding


RolloutFn = Callable[[step_lib.TrainState, Batch, RolloutContext], tuple[Batch, Mapping[str, float]]]
_ROLLOUT_SALT = 0x5eed  # folded into the step key for rollouts


@dataclasses.dataclass
class Task:
  """What an experiment hands to the trainer.

  Attributes:
    init_params: ``rng -> params``; may return flax-boxed params (nn.with_logical_partitioning), whose
      logical names give the parameter shardings. Called under jax.eval_shape first, then jitted.
    loss_fn: ``(params, batch, rng) -> (mean loss, dict of scalar metrics)``.
    train_data: a grain iterator (get_state/set_state) yielding this host's share of each global batch as
      a dict of numpy arrays with a leading batch dimension.
    eval_step: optional ``(params, batch) -> dict of sums`` with a 'weight' entry; means are reported.
    eval_data: optional zero-argument callable returning a fresh iterable of eval batches: global batches,
      the same on every process (in a multi-process run each process feeds its own rows of them).
    tokens_per_example: for tokens/s (sequence length for an LM, 1 otherwise).
    flops_per_example: model FLOPs of one example's forward+backward (e.g. 6·N·T + attention for an LM);
      None falls back to XLA's cost analysis of the compiled step.
    eval_finalize: optional ``means -> extra metrics`` (e.g. perplexity = exp(mean NLL)).
    on_eval: optional host-side hook ``(state, step) -> dict`` run after each eval (e.g. sampling).
    rollout: optional ``(state, item, RolloutContext) -> (batch, host_metrics)``: builds each step's batch
      from the current state (on-policy RL); ``item`` is ``next(train_data)``. ``batch`` holds the global
      batch (numpy or jax arrays); ``host_metrics`` are floats averaged over each logging window.
    frozen_params: optional pytree of weights the loss reads but never trains (the base model under LoRA
      adapters; may be boxed for its shardings). Placed on the mesh once and passed to the jitted step as a
      separate, non-donated argument: ``loss_fn(params, batch, rng, frozen)``, ``eval_step(params, batch,
      frozen)``. It has no optimiser state and is not checkpointed (``state.params`` are the trainable ones).
    frozen_id: a path or name of ``frozen_params``; saved with every checkpoint and checked on resume.
  """
  init_params: Callable[[jax.Array], Any]
  loss_fn: step_lib.LossFn
  train_data: Iterator[Batch]
  eval_step: step_lib.EvalFn | None = None
  eval_data: Callable[[], Iterable[Batch]] | None = None
  tokens_per_example: int = 1
  flops_per_example: float | None = None
  eval_finalize: Callable[[dict[str, float]], Mapping[str, float]] | None = None
  on_eval: Callable[[step_lib.TrainState, int], Mapping[str, float]] | None = None
  rollout: RolloutFn | None = None
  frozen_params: Any = None
  frozen_id: str = ""


@dataclasses.dataclass
class TrainResult:
  state: step_lib.TrainState
  train_metrics: dict[str, float]
  eval_metrics: dict[str, float]
  start_step: int


REQUIRED_KEYS = ("seed", "total_steps", "batch_size", "log_every", "eval_every", "checkpoint_every", "mesh",
                 "optimizer")


def validate_config(config: ml_collections.ConfigDict, prefix: str = "config", *, require: bool = True,
                    check_devices: bool = False) -> None:
  """Checks the trainer's part of a config (see jaxlab.train.default_config); each error names the key.

  ``require=False`` checks only the keys present (stage blocks that inherit the rest); ``check_devices``
  also checks the batch against the data-parallel size when the mesh spans all of this process's devices
  (cheap: no mesh is built; the Trainer checks the mesh against the devices it is given).
  """
  missing = [k for k in REQUIRED_KEYS if k not in config]
  if missing and require:
    raise ValueError(f"{prefix} is missing trainer keys {missing} (see jaxlab.train.default_config())")

  def number(key, kind=int):
    try:
      return kind(config[key])
    except (TypeError, ValueError):
      raise ValueError(f"{prefix}.{key}={config[key]!r} is not a number") from None

  for key in ("total_steps", "batch_size", "log_every", "num_microbatches"):
    if key in config and number(key) <= 0:
      raise ValueError(f"{prefix}.{key}={config[key]} must be positive")
  for key in ("eval_every", "checkpoint_every", "keep_checkpoints"):
    if key in config and number(key) < 0:
      raise ValueError(f"{prefix}.{key}={config[key]} must be ≥ 0 (0 disables)")
  ema = number("ema_decay", float) if "ema_decay" in config else 0.0
  if not 0.0 <= ema < 1.0:
    raise ValueError(f"{prefix}.ema_decay={ema} must be in [0, 1)")
  opt = config.get("optimizer")
  if opt is not None:
    if opt.get("name", "adamw") not in optim.OPTIMIZERS:
      raise ValueError(f"{prefix}.optimizer.name={opt.get('name')!r} is not one of {optim.OPTIMIZERS}")
    if opt.get("schedule", "constant") not in optim.SCHEDULES:
      raise ValueError(f"{prefix}.optimizer.schedule={opt.get('schedule')!r} is not one of {optim.SCHEDULES}")
    lr = opt.get("learning_rate", 1.0)
    if not isinstance(lr, (int, float)) or lr < 0:
      raise ValueError(f"{prefix}.optimizer.learning_rate={lr!r} must be a number ≥ 0")
  mesh_cfg = config.get("mesh")
  if mesh_cfg is not None:
    unknown = sorted(set(dict(mesh_cfg)) - set(mesh_lib.MESH_AXES))
    if unknown:
      raise ValueError(f"{prefix}.mesh has unknown axes {unknown}; the axes are {mesh_lib.MESH_AXES}")
    try:
      shape = mesh_lib.resolve_mesh_shape(mesh_cfg, jax.device_count()) if check_devices else None
    except ValueError:
      shape = None  # a binary may train on fewer devices than it sees (psm uses one): the Trainer checks
    if shape is not None:
      if "batch_size" in config:
        dp = int(np.prod([s for s, a in zip(shape, mesh_lib.MESH_AXES) if a in mesh_lib.BATCH_AXES]))
        micro = int(config.get("num_microbatches", 1))
        if int(config.batch_size) % (dp * micro):
          raise ValueError(f"{prefix}.batch_size={config.batch_size} is not divisible by the data-parallel size "
                           f"{dp} (data×fsdp on {jax.device_count()} devices) × num_microbatches={micro}")


def check_checkpointable(train_data: Any, what: str = "Task.train_data") -> None:
  """A checkpointing run saves the data iterator's position: it must be a grain iterator (get_state/set_state)."""
  if not (callable(getattr(train_data, "get_state", None)) and callable(getattr(train_data, "set_state", None))):
    raise TypeError(f"{what} is a {type(train_data).__name__}, which cannot be checkpointed: checkpointing runs "
                    "need a grain iterator with get_state/set_state (e.g. iter(grain.MapDataset.source(...)"
                    ".batch(...)), or a grain.DatasetIterator subclass); or set config.checkpoint_every=0")


def check_batch(batch: Batch, global_batch_size: int, what: str = "the first batch of Task.train_data") -> None:
  """Every array's leading dimension must be this host's share of ``config.batch_size``."""
  local = global_batch_size // jax.process_count()
  for k, v in batch.items():
    want = global_batch_size if isinstance(v, jax.Array) else local
    n = np.shape(v)[0] if np.ndim(v) else None
    if n != want:
      raise ValueError(f"{what}: {k!r} has leading dimension {n}, but config.batch_size={global_batch_size} "
                       f"means {want} examples per batch on this host ({jax.process_count()} process(es))")


def state_shardings(abstract_state: step_lib.TrainState, param_shardings, tx, mesh) -> step_lib.TrainState:
  """Shardings for a TrainState: optimiser leaves that mirror params get the params' shardings.

  Partitioned optimisers (Muon: matrices vs Adam-handled vectors) keep `optax.MaskedNode` placeholders
  in the params-shaped parts of their state; those stay placeholders.
  """
  repl = mesh_lib.replicated(mesh)
  opt = optax.tree_map_params(tx, lambda x, s: x if isinstance(x, optax.MaskedNode) else s,
                              abstract_state.opt_state, param_shardings,
                              transform_non_params=lambda _: repl,
                              is_leaf=lambda x: isinstance(x, (jax.sharding.Sharding, optax.MaskedNode)))
  return step_lib.TrainState(step=repl, params=param_shardings, opt_state=opt, rng=repl,
                             ema_params=param_shardings if abstract_state.ema_params is not None else None)


def param_count_table(params) -> str:
  """Parameter counts per top-level module and in total, as a small text table."""
  rows: dict[str, int] = {}
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    top = str(getattr(path[0], "key", path[0])) if path else "<root>"
    rows[top] = rows.get(top, 0) + int(np.prod(x.shape))
  width = max([len(k) for k in rows] + [5])
  lines = [f"{k:<{width}}  {v:>12,}" for k, v in rows.items()]
  lines.append(f"{'total':<{width}}  {sum(rows.values()):>12,}")
  return "\n".join(lines)


def to_global(batch: Batch, sharding: jax.sharding.NamedSharding) -> dict[str, jax.Array]:
  """Host-local numpy batch -> global jax.Arrays sharded over the batch axes (jax.Arrays are resharded)."""
  def convert(v):
    if isinstance(v, jax.Array):
      return v if v.sharding == sharding else jax.device_put(v, sharding)
    return jax.make_array_from_process_local_data(sharding, np.asarray(v))
  return {k: convert(v) for k, v in batch.items()}


def host_rows(batch: Batch) -> Batch:
  """This process's rows of a global numpy batch that every process holds whole (eval batches); jax.Arrays
  and single-process runs pass through."""
  n, i = jax.process_count(), jax.process_index()
  if n == 1:
    return batch
  out = {}
  for k, v in batch.items():
    if isinstance(v, jax.Array):
      out[k] = v
      continue
    rows = np.shape(v)[0]
    if rows % n:
      raise ValueError(f"an eval batch's {k!r} has {rows} rows, which the {n} processes cannot split evenly")
    out[k] = np.asarray(v)[i * rows // n:(i + 1) * rows // n]
  return out


def evaluate(eval_fn, params, batches: Iterable[Batch], sharding) -> dict[str, float]:
  """Sums ``eval_fn`` over the batches on device; one host transfer at the end.

  Each batch is global and the same on every process (each feeds its own rows, see ``host_rows``)."""
  total = None
  for batch in batches:
    sums = eval_fn(params, to_global(host_rows(batch), sharding))
    total = sums if total is None else jax.tree.map(jnp.add, total, sums)
  if total is None:
    raise ValueError("the eval data produced no batches")
  return step_lib.reduce_eval_sums(jax.device_get(total))


def mean_host_metrics(history: list[Mapping[str, float]]) -> dict[str, float]:
  """Means of per-step metrics over a logging window (a key missing from some steps averages the rest)."""
  keys = sorted({k for h in history for k in h})
  return {k: float(np.mean([h[k] for h in history if k in h])) for k in keys}


class Trainer:
  """Builds everything for a Task under a config; ``run()`` trains to ``config.total_steps``."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, task: Task,
               devices: list[jax.Device] | None = None):
    validate_config(config)
    if int(config.checkpoint_every):
      check_checkpointable(task.train_data)
    runtime.quiet_libraries()
    self.config, self.workdir, self.task = config, os.path.abspath(workdir), task
    # Phase 1: mesh and rules (``devices`` restricts the mesh, e.g. to one device in tests).
    self.mesh = mesh_lib.make_mesh(config.mesh, devices)
    self.rules = mesh_lib.rules_from_config(config.get("sharding_rules"))
    self.num_micro = int(config.get("num_microbatches", 1))
    mesh_lib.check_batch_divisible(int(config.batch_size), self.mesh, self.num_micro)
    self.batch_sharding = mesh_lib.batch_sharding(self.mesh)
    # Phase 2: optimiser.
    self.tx, self.schedule = optim.make_optimizer(config.optimizer, int(config.total_steps))
    self.ema_decay = float(config.get("ema_decay", 0.0))
    rng = jax.random.PRNGKey(int(config.seed))
    self.init_rng, self.train_rng = jax.random.split(rng)
    # Phase 3: shape-only init and shardings.
    with self.scope():
      boxed = jax.eval_shape(task.init_params, self.init_rng)
      param_shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), self.mesh, self.rules)
      self.abstract_state = jax.eval_shape(self._init_state, self.init_rng)
      self.shardings = state_shardings(self.abstract_state, param_shardings, self.tx, self.mesh)
      frozen_shardings = ()
      if task.frozen_params is not None:
        frozen_shardings = (nn.logical_to_mesh_sharding(nn.get_partition_spec(task.frozen_params), self.mesh,
                                                        self.rules),)
    self.frozen = ()
    if task.frozen_params is not None:  # placed once; plain values (unbox would constrain under the mesh)
      values = jax.tree.map(lambda x: getattr(x, "value", x), task.frozen_params,
                            is_leaf=lambda x: isinstance(x, nn.Partitioned))
      self.frozen = (jax.device_put(values, frozen_shardings[0]),)
    # Phase 4: jitted steps (state donated).
    step_fn = step_lib.make_train_step(task.loss_fn, self.tx, self.schedule, num_microbatches=self.num_micro,
                                       ema_decay=self.ema_decay)
    self.train_step = jax.jit(step_fn, in_shardings=(self.shardings, self.batch_sharding, *frozen_shardings),
                              out_shardings=(self.shardings, mesh_lib.replicated(self.mesh)), donate_argnums=0)
    self.eval_step = None
    if task.eval_step is not None:
      self.eval_step = jax.jit(task.eval_step,
                               in_shardings=(self.shardings.params, self.batch_sharding, *frozen_shardings),
                               out_shardings=mesh_lib.replicated(self.mesh))
    self.checkpointer = ckpt_lib.Checkpointer(os.path.join(workdir, "checkpoints"),
                                              max_to_keep=int(config.get("keep_checkpoints", 3)))

  def scope(self) -> contextlib.ExitStack:
    """Mesh + logical rules context, active while tracing model code."""
    stack = contextlib.ExitStack()
    stack.enter_context(jax.set_mesh(self.mesh))
    stack.enter_context(nn.logical_axis_rules(self.rules))
    return stack

  def _init_state(self, rng):
    params = nn.unbox(self.task.init_params(rng))
    return step_lib.init_train_state(params, self.tx, self.train_rng, use_ema=self.ema_decay > 0)

  def abstract_with_shardings(self):
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        self.abstract_state, self.shardings)

  def init_or_restore(self) -> step_lib.TrainState:
    """Restores the latest checkpoint in the workdir (loud on failure) or initialises sharded state."""
    latest = self.checkpointer.latest_step()
    if latest is not None:
      state, _ = self.checkpointer.restore(latest, self.abstract_with_shardings(), self.task.train_data)
      if self.task.frozen_id:
        stored = self.checkpointer.restore_meta(latest).get("frozen_id")
        if stored != self.task.frozen_id:
          raise ckpt_lib.CheckpointError(
              f"checkpoint {self.checkpointer.directory}/{latest} was trained on frozen weights {stored!r}, "
              f"this run supplies {self.task.frozen_id!r}. Use the same base weights or a new --workdir.")
      return state
    with self.scope():
      return jax.jit(self._init_state, out_shardings=self.shardings)(self.init_rng)

  def rollout(self, state, item: Batch, step: int) -> tuple[Batch, Mapping[str, float]]:
    """Runs ``task.rollout`` for update ``step + 1`` inside the mesh scope (see RolloutContext)."""
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, step), _ROLLOUT_SALT)
    ctx = RolloutContext(step=step, rng=rng, mesh=self.mesh, batch_sharding=self.batch_sharding)
    with self.scope():
      batch, host_metrics = self.task.rollout(state, item, ctx)
    return batch, dict(host_metrics)

  def params_for_eval(self, state):
    return state.ema_params if state.ema_params is not None else state.params

  def run_eval(self, state) -> dict[str, float]:
    if self.eval_step is None or self.task.eval_data is None:
      return {}
    with self.scope():
      eval_fn = lambda p, b: self.eval_step(p, b, *self.frozen)  # noqa: E731
      means = evaluate(eval_fn, self.params_for_eval(state), self.task.eval_data(), self.batch_sharding)
    if self.task.eval_finalize is not None:
      means.update(self.task.eval_finalize(means))
    return means

  def finished_result(self, state, step: int) -> TrainResult:
    """The result of a training that was already finished in this workdir, without writing anything.

    The last logged train metrics come back from metrics.jsonl; the eval (and ``on_eval``) is recomputed
    on the restored state, which gives the numbers of the finished run. No TensorBoard event file, no
    metrics line, no checkpoint and no peak measurement are added.
    """
    _report("Training in %s is finished (step %d of %d): nothing to train", self.workdir, step,
            int(self.config.total_steps))
    train_metrics = metrics_lib.last_logged(self.workdir, step, "train/")
    eval_metrics = self.run_eval(state)
    if self.task.on_eval is not None:
      eval_metrics.update(self.task.on_eval(state, step) or {})
    self.checkpointer.close()
    return TrainResult(state=state, train_metrics=train_metrics, eval_metrics=eval_metrics, start_step=step)

  def run(self) -> TrainResult:
    cfg, task = self.config, self.task
    total = int(cfg.total_steps)
    try:  # the checkpointer's async threads are closed even when the restore fails
      state = self.init_or_restore()
    except BaseException:
      self.checkpointer.close()
      raise
    start = int(jax.device_get(state.step))
    if start >= total:
      return self.finished_result(state, start)
    if start:
      _report("Resumed from %s at step %d", self.checkpointer.directory, start)
    writer = metrics_lib.MetricWriter(self.workdir)
    logging.info("Parameters:\n%s", param_count_table(state.params))
    global_batch = int(cfg.batch_size)
    flops = task.flops_per_example * global_batch if task.flops_per_example else None
    peak = float(cfg.get("peak_flops_per_device", 0.0)) or None
    if peak is None and cfg.get("measure_peak", True):
      peak = metrics_lib.measure_matmul_peak()
      logging.info("Measured matmul peak: %.1f GFLOP/s per device", peak / 1e9)
    peak_total = peak * self.mesh.size if peak else None
    progress = metrics_lib.Progress(total, start, global_batch, global_batch * task.tokens_per_example,
                                    flops, peak_total)
    train_metrics: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    pending: list[dict] = []
    pending_host: list[Mapping[str, float]] = []
    compiled = None
    try:
      for step in range(start, total):
        item = next(task.train_data)
        if task.rollout is not None:
          item, host_metrics = self.rollout(state, item, step)
          pending_host.append(host_metrics)
        if compiled is None and task.rollout is None:
          check_batch(item, global_batch)
        batch = to_global(item, self.batch_sharding)
        if compiled is None:
          t0 = time.perf_counter()
          with self.scope():
            compiled = self.train_step.lower(state, batch, *self.frozen).compile()
          if flops is None:
            per_device = metrics_lib.compiled_flops(compiled)
            flops = per_device * self.mesh.size if per_device else None
            progress.flops = flops
          logging.info("Compiled the train step in %.1f s", time.perf_counter() - t0)
          progress.reset(step)
        state, m = compiled(state, batch, *self.frozen)
        pending.append(m)
        done = step + 1
        if done % int(cfg.log_every) == 0 or done == total:
          host = jax.device_get(pending)
          train_metrics = mean_host_metrics(host + pending_host)
          train_metrics.update(progress.update(done))
          pending, pending_host = [], []
          writer.write(done, train_metrics, prefix="train/")
          _report("%s", progress.line(done, train_metrics))
        if (int(cfg.eval_every) and done % int(cfg.eval_every) == 0) or done == total:
          eval_metrics = self.run_eval(state)
          if task.on_eval is not None:
            eval_metrics.update(task.on_eval(state, done) or {})
          if eval_metrics:
            writer.write(done, eval_metrics, prefix="eval/")
            _report("eval @ %d: %s", done, {k: round(v, 4) for k, v in eval_metrics.items()})
          progress.reset(done)
        if int(cfg.checkpoint_every) and (done % int(cfg.checkpoint_every) == 0 or done == total):
          self.checkpointer.save(done, state, task.train_data, cfg,
                                 meta={"frozen_id": task.frozen_id} if task.frozen_id else None)
    finally:
      steps = self.checkpointer.all_steps()
      self.checkpointer.close()
      writer.close()
    _report("%s", describe_workdir(self.workdir, steps))
    return TrainResult(state=state, train_metrics=train_metrics, eval_metrics=eval_metrics, start_step=start)


def _report(fmt: str, *args) -> None:
  """A progress line: absl's log inside an absl app; printed as well from a plain script, where absl's
  logging is silent below WARNING (its handler is set up by absl.app)."""
  logging.info(fmt, *args)
  if not absl_flags.FLAGS.is_parsed() and jax.process_index() == 0:
    print(fmt % args, flush=True)


def describe_workdir(workdir: str, checkpoint_steps: list[int]) -> str:
  """One line naming what a run left in its workdir."""
  parts = []
  for name, what in (("results.json", "results"), ("metrics.jsonl", "metrics, one JSON row per log/eval step"),
                     ("tb", f"TensorBoard: tensorboard --logdir {os.path.join(workdir, 'tb')}")):
    if os.path.exists(os.path.join(workdir, name)):
      parts.append(f"{name} ({what})")
  if checkpoint_steps:
    parts.append(f"checkpoints/ (steps {sorted(checkpoint_steps)})")
  return f"Workdir {workdir}: " + ("; ".join(parts) if parts else "nothing written")


def train(config: ml_collections.ConfigDict, workdir: str, task: Task,
          devices: list[jax.Device] | None = None) -> TrainResult:
  """Builds a Trainer and runs it to ``config.total_steps`` (resuming when the workdir has checkpoints)."""
  return Trainer(config, workdir, task, devices).run()
