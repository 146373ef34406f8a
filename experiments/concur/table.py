"""The CONCUR outcome table on real models: a cached, resumable precompute.

Every (model, method) cell runs once, over all tasks in full batches, through
jaxlab.train.runrecord.reuse_or_run in ``<workdir>/table/<model>/<method>``; a rerun (or a resumed,
interrupted run) reuses every finished cell and loads a model only when one of its cells is missing. The
in-house arithmetic specialist is trained (jaxlab.routing.specialist) and evaluated in
``<workdir>/table/specialist``.

The result is a `jaxlab.routing.table.OutcomeTable` (one row per task, per strategy its correctness, model
FLOPs and wall seconds), written as RouterBench-style CSV by the caller.
"""

from __future__ import annotations

import os
import time

import ml_collections
import numpy as np
from absl import logging

from jaxlab.routing import outcomes, specialist
from jaxlab.routing import table as table_lib
from jaxlab.routing import tasks as tasks_lib
from jaxlab.train import default_config
from jaxlab.train import runrecord


def _cell_config(tc: ml_collections.ConfigDict, model: str, method: str) -> dict:
  return dict(model=model, method=method, families=list(tc.families) + list(tc.ood_families),
              sc_prompt=str(tc.sc_prompt), n=int(tc.n_per_family), seed=int(tc.seed),
              direct_tokens=int(tc.direct_tokens), cot_tokens=int(tc.cot_tokens),
              temperature=float(tc.temperature), batch_size=int(tc.batch_size), prompt_len=int(tc.prompt_len))


def _strategy_order(name: str) -> tuple:
  model, method = name.split('/')
  return (model == 'specialist', model, ('direct', 'cot', 'sc2', 'sc4').index(method))


def specialist_config(tc: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c = default_config()
  c.seed = int(tc.seed)
  c.total_steps = int(tc.specialist_steps)
  c.batch_size = int(tc.specialist_batch)
  c.log_every = max(1, int(tc.specialist_steps) // 5)
  c.optimizer.learning_rate = 3e-3
  c.optimizer.warmup_steps = min(50, int(tc.specialist_steps) // 10)
  c.optimizer.weight_decay = 0.01
  return c


def specialist_cell(tc: ml_collections.ConfigDict, workdir: str, all_tasks) -> dict:
  """The specialist's cell (trained, then run on every task), cached in <workdir>/table/specialist."""
  families = list(tc.families) + list(tc.ood_families)
  spec_cfg = specialist_config(tc)

  def run_specialist():
    t0 = time.perf_counter()
    mcfg, params, train_wall = specialist.train(spec_cfg, os.path.join(workdir, 'table', 'specialist', 'train'),
                                                size=str(tc.specialist_size))
    t1 = time.perf_counter()
    answers = specialist.answer(mcfg, params, [t.question for t in all_tasks])
    per = (time.perf_counter() - t1) / len(all_tasks)
    recs = {t.id: dict(correct=bool(t.correct(a)), answer=a, tokens=n, seconds=per,
                       flops=specialist.answer_flops(mcfg, p, n) if p else 0.)
            for t, (a, p, n) in zip(all_tasks, answers)}
    logging.info('specialist: trained in %.1f s, acc %.3f', train_wall,
                 float(np.mean([r['correct'] for r in recs.values()])))
    return {'records': recs, 'train_seconds': train_wall, 'wall': time.perf_counter() - t0,
            'params': int(mcfg.num_params())}

  spec = runrecord.reuse_or_run(os.path.join(workdir, 'table', 'specialist'),
                                dict(runrecord.to_json(spec_cfg), n=int(tc.n_per_family), families=families,
                                     size=str(tc.specialist_size)),
                                run_specialist)
  return spec


def lm_cells(tc: ml_collections.ConfigDict, workdir: str, models: list[str], all_tasks,
             cells: dict | None = None) -> dict:
  """Runs (or reuses) every (model, method) cell of `models`; fills `cells` {strategy: {task id: record}}
  and returns the cells' wall seconds. A model is loaded only when one of its cells is missing."""
  cells = {} if cells is None else cells
  loaded: dict[str, object] = {}
  cell_seconds = {}

  def chat(model: str):
    if model not in loaded:
      from jaxlab.agents import chat as chat_lib  # pylint: disable=import-outside-toplevel
      loaded.clear()  # one model in memory at a time
      loaded[model] = chat_lib.load(model)
    return loaded[model]

  for model in models:
    for method in tc.methods[model]:
      cfg = _cell_config(tc, model, method)

      def compute(model=model, method=method):
        t0 = time.perf_counter()
        res = outcomes.run_model_method(
            chat(model), all_tasks, method, direct_tokens=int(tc.direct_tokens), cot_tokens=int(tc.cot_tokens),
            temperature=float(tc.temperature), seed=int(tc.seed), batch_size=int(tc.batch_size),
            prompt_len=int(tc.prompt_len), sc_prompt=str(tc.sc_prompt))
        res['_wall'] = time.perf_counter() - t0
        logging.info('table cell %s/%s: %.1f s, acc %s', model, method, res['_wall'],
                     {k: round(float(np.mean([r['correct'] for r in v.values()])), 3)
                      for k, v in res.items() if k != '_wall'})
        return res

      res = runrecord.reuse_or_run(os.path.join(workdir, 'table', model, method), cfg, compute)
      cell_seconds[f'{model}/{method}'] = res.get('_wall')
      for name, recs in res.items():
        if name != '_wall':
          cells.setdefault(f'{model}/{name}', {}).update(recs)
  return cell_seconds


def build(tc: ml_collections.ConfigDict, workdir: str) -> tuple[table_lib.OutcomeTable, dict]:
  """The outcome table of config block `tc` (see configs/default.py, `table`) and timing facts."""
  t_start = time.perf_counter()
  families = list(tc.families) + list(tc.ood_families)
  all_tasks = tasks_lib.make_tasks(families, int(tc.n_per_family), int(tc.seed))
  cells: dict[str, dict[str, dict]] = {}
  cell_seconds = lm_cells(tc, workdir, list(tc.models), all_tasks, cells)

  spec = specialist_cell(tc, workdir, all_tasks)
  cells['specialist/direct'] = spec['records']
  strategies = sorted(cells, key=_strategy_order)
  table = table_lib.OutcomeTable(
      task_ids=[t.id for t in all_tasks], families=[t.family for t in all_tasks],
      prompts=[t.question for t in all_tasks], strategies=strategies,
      correct=np.array([[cells[s][t.id]['correct'] for s in strategies] for t in all_tasks], np.float32),
      flops=np.array([[cells[s][t.id]['flops'] for s in strategies] for t in all_tasks], np.float64),
      seconds=np.array([[cells[s][t.id]['seconds'] for s in strategies] for t in all_tasks], np.float64))
  facts = {'cell_seconds': cell_seconds, 'specialist_train_seconds': spec['train_seconds'],
           'specialist_params': spec['params'], 'build_call_seconds': time.perf_counter() - t_start,
           'precompute_seconds': float(sum(v for v in cell_seconds.values() if v)) + float(spec['wall'])}
  return table, facts
