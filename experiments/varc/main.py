r"""VARC on ARC-1: offline pretraining of a ViT on the training tasks, then per-task test-time training
and multi-view voting on evaluation tasks.

  # 1. offline pretraining (jaxlab trainer, grain pipeline, checkpoints/resume in the workdir):
  python -m experiments.varc.main --config=experiments/varc/configs/pretrain.py:tiny --workdir=workdirs/varc_pre
  # 2. TTT + evaluation from the pretrained weights (or from scratch with the 'scratch' option):
  python -m experiments.varc.main --config=experiments/varc/configs/ttt.py:tiny \
      --config.init_from=workdirs/varc_pre/params.msgpack --workdir=workdirs/varc_ttt

Pretraining writes params.msgpack (the final weights) beside the checkpoints. TTT writes results.json
(per-task scores, errors, timings, summary) and PNG renderings of the first `num_renders` tasks. Both keep
the run record workdir/run.json (jaxlab.train.runrecord): a rerun of a finished run changes nothing.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import os
import time

import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags, logging

from jaxlab.data import arc as arc_lib
from jaxlab.data import arc_canvas as cv
from jaxlab.evals import arc as arc_eval
from jaxlab.nn.vision import vit
from jaxlab.train import runrecord, runtime, trainer

from experiments.varc import data as data_lib
from experiments.varc import render
from experiments.varc import ttt as ttt_lib

app_flags.define()


def load_tasks(cfg: ml_collections.ConfigDict, split: str) -> dict[str, arc_lib.ArcTask]:
  if cfg.data.task_dir:
    return arc_lib.load_folder(cfg.data.task_dir)
  return arc_lib.load_arc1(split, cfg.data.cache_dir or None)


def pretrain(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Offline training on every demonstration pair of the ARC-1 training tasks, in the jaxlab trainer."""
  tasks = load_tasks(config, 'train')
  if config.data.skip_too_large:
    fits = {k: t for k, t in tasks.items() if cv.max_scale(t.max_side, int(config.model.canvas)) >= 1}
    logging.info('Skipping %d of %d tasks whose grids do not fit the canvas', len(tasks) - len(fits), len(tasks))
    tasks = fits
  if config.data.max_tasks:
    tasks = dict(list(tasks.items())[:int(config.data.max_tasks)])
  ts = data_lib.offline_taskset(tasks, int(config.data.views_per_task), int(config.seed))
  mcfg = ttt_lib.model_config(config, len(ts.pairs))
  model = vit.VarcViT(mcfg)
  logging.info('Offline training: %d tasks x %d views = %d task tokens, %d pairs', len(tasks),
               config.data.views_per_task, len(ts.pairs), sum(len(p) for p in ts.pairs))
  c = mcfg.canvas
  data = data_lib.offline_dataset(ts, c, mcfg.patch, int(config.batch_size), int(config.seed),
                                  augment=bool(config.data.augment))
  task = trainer.Task(
      init_params=lambda rng: model.init(rng, jnp.zeros((1, c, c), jnp.int32), jnp.zeros((1,), jnp.int32))['params'],
      loss_fn=ttt_lib.make_loss_fn(model), train_data=data, tokens_per_example=mcfg.num_patches + 1)
  t0 = time.time()
  result = trainer.train(config, workdir, task)
  params = flax.serialization.to_bytes(jax.device_get(result.state.params))
  if jax.process_index() == 0:
    runrecord.atomic_write_bytes(os.path.join(workdir, 'params.msgpack'), params)
  summary = dict(result.train_metrics, wall_seconds=time.time() - t0, num_task_tokens=len(ts.pairs),
                 task_ids=list(tasks))
  runrecord.write_json(os.path.join(workdir, 'pretrain_summary.json'), summary, indent=1)
  logging.info('Pretraining done: %s', {k: v for k, v in summary.items() if k != 'task_ids'})
  return summary


def load_pretrained(path: str, template) -> dict:
  """Loads params.msgpack; the task-token table may have any number of rows (TTT replaces it)."""
  with open(path, 'rb') as f:
    raw = flax.serialization.msgpack_restore(f.read())
  got = jax.tree.map(np.shape, {k: v for k, v in raw.items() if k != 'task_embed'})
  want = jax.tree.map(np.shape, {k: v for k, v in template.items() if k != 'task_embed'})
  if got != want:
    raise ValueError(f'{path}: parameter shapes do not match the configured model.')
  return jax.tree.map(jnp.asarray, raw)


def run_ttt(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """TTT + multi-view evaluation on the configured evaluation tasks, one independent run per task."""
  tasks = load_tasks(config, 'eval')
  ids = list(config.data.task_ids) or list(tasks)
  mcfg = ttt_lib.model_config(config, int(config.ttt.num_pseudo_tasks))
  runner = ttt_lib.TTTRunner(mcfg, config.ttt)
  init = runner.init_params(jax.random.PRNGKey(int(config.seed)))
  if config.init_from:
    init = load_pretrained(config.init_from, init)
    logging.info('TTT starts from %s', config.init_from)
  else:
    logging.info('TTT from scratch (no offline training)')
  logging.info('Parameters:\n%s', trainer.param_count_table(init))

  def run_one(tid: str) -> arc_eval.TaskResult:
    if tid not in tasks:
      raise KeyError(f'unknown task id {tid}')
    t0 = time.time()
    res = runner.run(tasks[tid], init, int(config.seed) + ids.index(tid))
    res.info['metrics']['wall_seconds'] = time.time() - t0
    logging.info('%s: %s (%s)', tid, res.scores, {k: round(v, 3) for k, v in res.info['metrics'].items()})
    return res

  t0 = time.time()
  results = arc_eval.evaluate_tasks(ids, run_one, ('pass@1', 'pass@2', 'single_pass@1', 'single_pass@2'))
  summary = arc_eval.summarize(results)
  summary['wall_seconds'] = time.time() - t0
  ok = [r for r in results if r.error is None]
  summary['mean_task_seconds'] = float(np.mean([r.info['metrics']['wall_seconds'] for r in ok])) if ok else 0.
  logging.info('Summary: %s', summary)
  os.makedirs(workdir, exist_ok=True)
  out = dict(summary=summary, config=config.to_dict(), tasks=[
      dict(task_id=r.task_id, scores=r.scores, error=r.error, metrics=r.info.get('metrics')) for r in results])
  runrecord.write_json(os.path.join(workdir, 'results.json'), out, indent=1)
  for r in ok[:int(config.num_renders)]:
    render.render_task(tasks[r.task_id], r, os.path.join(workdir, f'{r.task_id}.png'))
  return out


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  config = flags.FLAGS.config
  if config.mode not in ('pretrain', 'ttt'):
    app_flags.fail(f"--config.mode={config.mode!r} is not one of 'pretrain', 'ttt'")
  if config.mode == 'ttt' and config.init_from:
    app_flags.check_input_file(config.init_from, '--config.init_from')
  if config.data.task_dir and not os.path.isdir(config.data.task_dir):
    app_flags.fail(f'--config.data.task_dir={config.data.task_dir}: no such folder')


@runrecord.recorded(continuable=('total_steps',))
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Pretraining or TTT + evaluation (config.mode); recorded in workdir/run.json, so a finished run is not
  run again."""
  runtime.initialize()
  logging.info('Config:\n%s', config)
  if config.mode not in ('pretrain', 'ttt'):
    raise ValueError(f"config.mode={config.mode!r} is not one of 'pretrain', 'ttt'")
  os.makedirs(workdir, exist_ok=True)
  if config.mode == 'pretrain':
    return pretrain(config, workdir)
  return run_ttt(config, workdir)


main = app_flags.main_for(run)


if __name__ == '__main__':
  app_flags.run(main, validate)
