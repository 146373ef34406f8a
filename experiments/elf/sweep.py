r"""Sampling sweeps on trained experiments/elf runs: guidance scale, SDE vs ODE, steps, run comparisons.

  python -m experiments.elf.sweep --config=experiments/elf/configs/sweep.py:guidance --workdir=workdirs/sweep_guidance

For every run in `config.runs` (workdirs of experiments.elf.main; their config and EMA weights come from
the latest checkpoint) and every sampling setting in `config.settings`, draws `config.num_samples`
samples with the same seed, decodes them to text and scores them with the evaluators of `config.eval`
(generative perplexity and entropy, always both). Writes workdir/results.json, a markdown table
workdir/results.md and the sample texts under workdir/samples/.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from experiments.elf import data as data_lib
from experiments.elf import evaluators
from experiments.elf import main as elf_main
from jaxlab.nn.diffusion import elf
from jaxlab.train import runrecord, runtime

app_flags.define()


def load_run(workdir: str):
  """(run config, model, objective, EMA params, data without latents) of a trained run."""
  state, cfg = evaluators.latest_state(workdir)
  data = data_lib.prepare(cfg.data, workdir, need_latents=False)
  model, obj = elf_main.build_model(cfg, data.vocab_size)
  return cfg, model, obj, evaluators.eval_params(state), data, int(state['step'])


def reference_rows(data: data_lib.ElfData, n: int, seq_len: int, seed: int, evs) -> list[dict]:
  """Two reference rows: held-out corpus windows, and i.i.d. draws from the training unigram distribution
  (word salad with the corpus' token frequencies: what a generator that learned nothing but frequencies gives)."""
  held_out = data.decode(data.to_compact(data.val_windows[:n]))
  counts = np.bincount(data.to_compact(data.train_windows[:, 1:-1]).ravel(), minlength=data.vocab_size)
  draws = np.random.default_rng(seed).choice(data.vocab_size, size=(n, seq_len - 2), p=counts / counts.sum())
  unigram = data.decode(draws)
  blank = {'method': '-', 'num_steps': '-', 'guidance': '-', 'schedule': '-', 'seconds': 0.}
  return [{'run': 'data (held-out windows)', **blank, 'scores': evaluators.score(evs, held_out)},
          {'run': 'unigram (i.i.d. training frequencies)', **blank, 'scores': evaluators.score(evs, unigram)}]


def table(rows: list[dict], names: list[str]) -> str:
  head = '| run | method | steps | w | grid |' + ''.join(f' {n} gen ppl | {n} entropy |' for n in names)
  lines = [head, '|' + '---|' * (5 + 2 * len(names))]
  for r in rows:
    cells = [r['run'], r['method'], str(r['num_steps']), str(r['guidance']), r['schedule']]
    for n in names:
      s = r['scores'].get(n)
      cells += [f"{s['perplexity']:.1f}", f"{s['entropy']:.3f}"] if s else ['', '']
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  runtime.initialize()
  os.makedirs(os.path.join(workdir, 'samples'), exist_ok=True)
  if not config.runs:
    raise ValueError('config.runs is empty: name at least one trained run workdir')
  ev_cfg = ml_collections.ConfigDict({'eval': config.eval.to_dict(), 'data': {'cache_dir': config.cache_dir}})
  evs = evaluators.from_config(ev_cfg)
  rows, t_start = [], time.time()
  for i, run_dir in enumerate(config.runs):
    cfg, model, obj, params, data, step = load_run(run_dir)
    name = os.path.basename(os.path.normpath(run_dir))
    seq_len = int(cfg.data.seq_len)
    if i == 0 and config.reference:
      rows += reference_rows(data, int(config.num_samples), int(cfg.data.seq_len), int(config.seed), evs)
    is_elf = isinstance(model, elf.Elf)
    settings = [dict(s) for s in config.settings] if is_elf else sorted(
        {s['num_steps'] for s in config.settings})
    done_mdlm = set()
    for s in settings:
      if not is_elf:
        s = {'method': 'ancestral', 'num_steps': s, 'guidance': '-', 'schedule': 'uniform'}
        if s['num_steps'] in done_mdlm:
          continue
        done_mdlm.add(s['num_steps'])
      t0 = time.time()
      sample_cfg = ml_collections.ConfigDict(dict(num_samples=int(config.num_samples), batch=int(config.batch),
                                                  seed=int(config.seed), gamma=float(config.gamma),
                                                  num_steps=int(s['num_steps']), method=s['method'],
                                                  guidance=1.0, schedule=s['schedule']))
      if is_elf:
        sample_cfg.guidance = float(s['guidance'])
      toks = elf_main.sample_tokens(model, obj, params, data, sample_cfg, seq_len)
      t_sample = time.time() - t0
      texts = data.decode(toks)
      tag = f"{name}_{s['method']}_{s['num_steps']}_w{s['guidance']}_{s['schedule']}"
      if jax.process_index() == 0:
        runrecord.atomic_write_bytes(os.path.join(workdir, 'samples', tag + '.txt'), ('\n'.join(texts) + '\n').encode())
      row = {'run': f'{name} (step {step})', **s, 'scores': evaluators.score(evs, texts),
             'sample_seconds': t_sample, 'seconds': time.time() - t0}
      logging.info('%s: %s', tag, json.dumps(row['scores']))
      rows.append(row)
  names = [e.name for e in evs]
  results = {'rows': rows, 'config': config.to_dict(), 'wall_seconds': time.time() - t_start}
  runrecord.write_json(os.path.join(workdir, 'results.json'), results)
  if jax.process_index() == 0:
    runrecord.atomic_write_bytes(os.path.join(workdir, 'results.md'), (table(rows, names) + '\n').encode())
  logging.info('\n%s', table(rows, names))
  return results


main = app_flags.main_for(run)


if __name__ == '__main__':
  app_flags.run(main)
