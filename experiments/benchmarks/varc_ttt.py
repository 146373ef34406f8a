r"""VARC test-time-training cost on CPU: TTT samples/s, wall time per task, and how it grows with the
number of pseudo-tasks and of inference views.

  python -m experiments.benchmarks.varc_ttt --task=6ea4a07e --out=workdirs/varc_ttt_bench.json

Model and canvas are the tiny CPU settings of experiments/varc/configs/ttt.py:tiny. For each
pseudo-task count P, TTT runs `--steps` steps (batch 8) and inference runs P x draws views; the
wall time of a paper-style TTT (`--epochs` passes over the P x demos pairs) is extrapolated from the
measured step rate. Compilation is timed separately (one warm-up run per shape).
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import app, flags, logging

from jaxlab.data import arc as arc_lib
from jaxlab.train import runtime

from experiments.varc import ttt as ttt_lib
from experiments.varc.configs import ttt as ttt_config

_TASK = flags.DEFINE_string('task', '6ea4a07e', 'ARC-1 evaluation task id.')
_STEPS = flags.DEFINE_integer('steps', 100, 'Measured TTT steps per setting.')
_PSEUDO = flags.DEFINE_list('pseudo_tasks', ['4', '16', '51'], 'Pseudo-task counts to measure.')
_DRAWS = flags.DEFINE_list('draws', ['1', '4', '10'], 'Placements per pseudo-task at inference.')
_EPOCHS = flags.DEFINE_integer('epochs', 100, 'Paper-style TTT epochs for the extrapolated wall time.')
_OUT = flags.DEFINE_string('out', '', 'Optional JSON output path.')


def measure(task: arc_lib.ArcTask, pseudo: int, draws: list[int], steps: int, epochs: int) -> dict:
  cfg = ttt_config.get_config('tiny')
  with cfg.unlocked():
    cfg.ttt.num_pseudo_tasks = pseudo
    cfg.ttt.view_tasks = pseudo
    cfg.ttt.steps = steps
  runner = ttt_lib.TTTRunner(ttt_lib.model_config(cfg, pseudo), cfg.ttt)
  init = runner.init_params(jax.random.PRNGKey(0))
  t0 = time.perf_counter()
  runner.train(task, init, seed=0)                         # warm-up: compiles the step
  compile_and_first = time.perf_counter() - t0
  params, ts, m = runner.train(task, init, seed=1)
  ttt_s = m['ttt_seconds']
  row = dict(pseudo_tasks=pseudo, steps=steps, batch=int(cfg.ttt.batch_size), ttt_seconds=ttt_s,
             samples_per_sec=steps * int(cfg.ttt.batch_size) / ttt_s,
             first_run_seconds_incl_compile=compile_and_first)
  pairs = pseudo * len(task.train)
  paper_steps = int(np.ceil(epochs * pairs / int(cfg.ttt.batch_size)))
  row.update(paper_epochs=epochs, paper_steps=paper_steps, paper_ttt_seconds_extrapolated=paper_steps * ttt_s / steps)
  x = task.test[0][0]
  for d in draws:
    with cfg.unlocked():
      cfg.ttt.draws = d
    runner.infer(params, ts, x, seed=0)                    # warm-up for this batch shape
    t0 = time.perf_counter()
    runner.infer(params, ts, x, seed=1)
    row[f'infer_seconds_views_{pseudo * d}'] = time.perf_counter() - t0
  return row


def main(argv):
  del argv
  runtime.initialize()
  task = arc_lib.load_arc1('eval')[_TASK.value]
  rows = []
  for p in _PSEUDO.value:
    row = measure(task, int(p), [int(d) for d in _DRAWS.value], _STEPS.value, _EPOCHS.value)
    logging.info('%s', row)
    print(json.dumps(row))
    rows.append(row)
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(dict(task=_TASK.value, device=jax.devices()[0].device_kind, rows=rows), f, indent=1)


if __name__ == '__main__':
  app.run(main)
