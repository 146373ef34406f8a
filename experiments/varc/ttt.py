"""VARC test-time training and multi-view inference for one ARC task at a time.

TTT (per task, independent, a Python loop over tasks): the task's demonstration pairs become
`num_pseudo_tasks` pseudo-tasks (geometric × colour variants), the task-token table is replaced by
fresh rows (one per pseudo-task), and ALL weights are fine-tuned with the generic jitted step
`jaxlab.train.step.make_train_step` (reused, not forked; compiled once and shared by every task, since
shapes do not change between tasks).

Inference: views = the first `view_tasks` pseudo-tasks × `draws` random scale/translation placements
of the test input; per view argmax → crop at the border → per-block majority downsample → undo colour
map and transform; vote on whole grids (jaxlab.evals.arc), keep the top 2. 'single view' is the first
view alone: the original task at the first placement.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab.data import arc as arc_lib
from jaxlab.data import arc_canvas as cv
from jaxlab.evals import arc as arc_eval
from jaxlab.nn.vision import vit
from jaxlab.train import optim
from jaxlab.train import step as step_lib

from experiments.varc import data as data_lib


def model_config(cfg: ml_collections.ConfigDict, num_tasks: int) -> vit.VitConfig:
  """The ViT config of `config.model` with `num_tasks` task-token rows."""
  m = cfg.model
  return vit.vit_config(m.size, canvas=int(m.canvas), patch=int(m.patch), dropout_rate=float(m.dropout_rate),
                        num_tasks=num_tasks, **dict(m.overrides))


def make_loss_fn(model: vit.VarcViT):
  """Task loss: masked per-pixel cross-entropy (dropout on, rng from the step)."""
  def loss_fn(params, batch, rng):
    logits = model.apply({'params': params}, batch['inputs'], batch['task_id'], batch['key_mask'],
                         deterministic=False, rngs={'dropout': rng})
    return vit.masked_cross_entropy(logits, batch['targets'], batch['loss_mask'])
  return loss_fn


def make_predict_fn(model: vit.VarcViT):
  @jax.jit
  def predict(params, inputs, task_id, key_mask):
    return jnp.argmax(model.apply({'params': params}, inputs, task_id, key_mask), axis=-1)
  return predict


@dataclasses.dataclass
class TTTRunner:
  """Compiles the TTT step and the predictor once; `run(task, init_params, seed)` handles one task.

  Attributes of `cfg` (config.ttt): num_pseudo_tasks, steps, batch_size, learning_rate, warmup_steps,
  augment (scale/translation), view_tasks, draws, grad_clip_norm.
  """
  model_cfg: vit.VitConfig
  cfg: ml_collections.ConfigDict

  def __post_init__(self):
    if self.cfg.get('loop', 'python') != 'python':
      raise ValueError(f"config.ttt.loop={self.cfg.loop!r}: only 'python' (one task after another) is implemented.")
    self.model = vit.VarcViT(dataclasses.replace(self.model_cfg, num_tasks=int(self.cfg.num_pseudo_tasks)))
    opt = ml_collections.ConfigDict(dict(
        name='adamw', learning_rate=float(self.cfg.learning_rate), schedule='warmup_cosine',
        warmup_steps=int(self.cfg.warmup_steps), weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8,
        grad_clip_norm=float(self.cfg.grad_clip_norm), end_lr_fraction=0.0))
    self.tx, schedule = optim.make_optimizer(opt, int(self.cfg.steps))
    self.step = jax.jit(step_lib.make_train_step(make_loss_fn(self.model), self.tx, schedule),
                        donate_argnums=0)
    self.predict = make_predict_fn(self.model)

  def init_params(self, rng: jax.Array) -> Any:
    c = self.model_cfg.canvas
    return nn.unbox(self.model.init(rng, jnp.zeros((1, c, c), jnp.int32), jnp.zeros((1,), jnp.int32))['params'])

  def train(self, task: arc_lib.ArcTask, params: Any, seed: int) -> tuple[Any, data_lib.TaskSet, dict]:
    """Fine-tunes all weights on the task's pseudo-tasks, starting from `params` with fresh task tokens."""
    cfg = self.cfg
    ts = data_lib.pseudo_tasks(task, int(cfg.num_pseudo_tasks), seed)
    cv.check_fits(ts.side, self.model_cfg.canvas)
    rng = jax.random.PRNGKey(seed)
    params = vit.fresh_task_tokens(params, int(cfg.num_pseudo_tasks), jax.random.fold_in(rng, 1))
    params = jax.tree.map(jnp.array, params)  # a private copy: the step donates it.
    state = step_lib.init_train_state(params, self.tx, jax.random.fold_in(rng, 2), use_ema=False)
    batches = data_lib.ttt_batches(ts, self.model_cfg.canvas, self.model_cfg.patch, int(cfg.batch_size), seed,
                                   augment=bool(cfg.augment))
    t0 = time.perf_counter()
    m = {}
    for _ in range(int(cfg.steps)):
      state, m = self.step(state, next(batches))
    m = {k: float(v) for k, v in jax.device_get(m).items()}
    m['ttt_seconds'] = time.perf_counter() - t0
    return state.params, ts, m

  def views(self, ts: data_lib.TaskSet, test_input: np.ndarray, seed: int):
    """(examples, [(view, scale, offset)]) for the configured views of one test input."""
    cfg, c, p = self.cfg, self.model_cfg.canvas, self.model_cfg.patch
    rng = np.random.default_rng(seed)
    side = max(ts.side, max(test_input.shape))
    n_draws = int(cfg.draws) if cfg.augment else 1
    exs, meta = [], []
    for j in range(min(int(cfg.view_tasks), len(ts.views))):
      v = ts.views[j]
      x = v.apply(test_input)
      for _ in range(n_draws):
        scale, offset = cv.sample_placement([(side, side)], c, rng, bool(cfg.augment), side=side)
        exs.append(cv.make_example(x, None, scale, offset, c, p, task_id=j))
        meta.append((v, scale, offset))
    return {k: np.stack([e[k] for e in exs]) for k in exs[0]}, meta

  def infer(self, params, ts: data_lib.TaskSet, test_input: np.ndarray, seed: int):
    """Ranked candidate grids for multi-view voting and for the single (first) view."""
    batch, meta = self.views(ts, test_input, seed)
    preds = np.asarray(self.predict(params, batch['inputs'], batch['task_id'], batch['key_mask']))
    grids = [cv.decode(pr, s, o, v) for pr, (v, s, o) in zip(preds, meta)]
    multi = [g for g, _ in arc_eval.vote(grids)]
    single = [g for g, _ in arc_eval.vote(grids[:1])]
    return multi, single, preds, meta

  def run(self, task: arc_lib.ArcTask, init_params: Any, seed: int) -> arc_eval.TaskResult:
    """TTT then inference and pass@1/pass@2 (multi-view and single view) for one task."""
    if any(y is None for _, y in task.test):
      raise ValueError(f'task {task.task_id} has test inputs without ground truth: cannot score it.')
    params, ts, m = self.train(task, init_params, seed)
    t0 = time.perf_counter()
    multi, single, preds = [], [], []
    for i, (x, _) in enumerate(task.test):
      mu, si, pr, meta = self.infer(params, ts, x, seed * 1000 + i)
      multi.append(mu)
      single.append(si)
      preds.append((pr[0], meta[0]))
    truths = [y for _, y in task.test]
    scores = {'pass@1': arc_eval.task_score(multi, truths, 1), 'pass@2': arc_eval.task_score(multi, truths, 2),
              'single_pass@1': arc_eval.task_score(single, truths, 1),
              'single_pass@2': arc_eval.task_score(single, truths, 2)}
    m['infer_seconds'] = time.perf_counter() - t0
    return arc_eval.TaskResult(task.task_id, scores, info=dict(metrics=m, top=multi, first_view=preds))
