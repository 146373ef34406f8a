r"""CONCUR (Chen, Li, Roth, Cafarella, Madden, Andreas; ICLR 2026): route each task to a computation strategy.

  python -m experiments.concur.main --config=experiments/concur/configs/default.py --workdir=workdirs/concur
  python -m experiments.concur.main --config=experiments/concur/configs/default.py:tiny \
      --workdir=workdirs/concur_tiny

1. The outcome table (experiments/concur/table.py; cached per (model, method) cell, resumable): SmolLM2-135M
   and Gemma 3 270M × decoding methods, plus an in-house arithmetic specialist, on reasoning-gym families;
   or `config.table_csv` (a RouterBench-style CSV); or, in the tiny run, a synthetic toy table.
2. Frozen MiniLM embeddings of the task prompts; ID families split train / val / test, OOD families test only.
3. CONCUR's per-strategy predictor pairs (3 seeds), the task-embedding-only ablation, a monolithic one-hot
   MLP, kNN; routed unconstrained (w sweep; w chosen on validation), with a global knapsack budget and a
   local per-task budget; baselines best single (chosen on validation), random, oracle.
4. The continual protocol in a fixed and a shuffled arrival order against the monolithic router retrained
   at every arrival.
Results: workdir/results.json, workdir/outcomes.csv, workdir/pareto.png.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import hashlib
import json
import os
import time

import ml_collections
import numpy as np
from absl import logging

from jaxlab.routing import baselines, continual, metrics, predictors, routers
from jaxlab.routing import table as table_lib
from jaxlab.train import runrecord

app_flags.define()

MODEL_DESCRIPTIONS = {
    'smollm2': 'SmolLM2-135M-Instruct, a 135M-parameter instruction-tuned Llama-architecture language model',
    'gemma3': 'Gemma 3 270M, a 270M-parameter base language model from Google with a large vocabulary',
    'specialist': 'a 0.1M-parameter character-level transformer trained only on integer arithmetic expressions',
    'toy_a': 'toy model a', 'toy_b': 'toy model b', 'toy_c': 'toy model c',
}
DECODING_DESCRIPTIONS = {
    'direct': 'answer directly with only the final answer, greedy decoding',
    'cot': 'think step by step before answering, greedy decoding',
    'sc2': 'self-consistency: majority vote over 2 sampled answers',
    'sc4': 'self-consistency: majority vote over 4 sampled answers',
}


def toy_table(n_per_family: int, seed: int) -> tuple[table_lib.OutcomeTable, list[str]]:
  """A synthetic table: 4 families (2 OOD), 3 toy models × direct/sc4; model m is good on family m."""
  rng = np.random.default_rng(seed)
  fams = ['alpha', 'beta', 'gamma', 'delta']
  words = {'alpha': 'add sum plus number', 'beta': 'letters word spell', 'gamma': 'family mother son',
           'delta': 'divisor common number'}
  strategies = [f'{m}/{d}' for m in ('toy_a', 'toy_b', 'toy_c') for d in ('direct', 'sc4')]
  ids, families, prompts, correct, flops = [], [], [], [], []
  for f_i, fam in enumerate(fams):
    for i in range(n_per_family):
      ids.append(f'{fam}/{i}')
      families.append(fam)
      prompts.append(f'{words[fam]} task {i} ' + ' '.join(rng.choice(words[fam].split(), 3)))
      skill = np.array([0.9 if m == f_i % 3 else 0.2 for m in range(3) for _ in range(2)])
      skill[1::2] = np.minimum(skill[1::2] + 0.05, 1.)
      correct.append((rng.uniform(size=6) < skill).astype(np.float32))
      flops.append(np.array([1., 4., 2., 8., 0.5, 2.]) * 1e9 * rng.uniform(0.9, 1.1, size=6))
  t = table_lib.OutcomeTable(ids, families, prompts, strategies, np.array(correct), np.array(flops),
                             np.array(flops) / 1e10)
  return t, ['gamma', 'delta']


def hash_embeddings(texts: list[str], dim: int = 64) -> np.ndarray:
  """Toy embeddings (tiny run only): normalised hashed bag of words."""
  out = np.zeros((len(texts), dim), np.float32)
  for i, t in enumerate(texts):
    for w in t.lower().split():
      out[i, int.from_bytes(hashlib.md5(w.encode()).digest()[:4], 'little') % dim] += 1.
  return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def embed(texts: list[str], embedder: str) -> np.ndarray:
  if embedder == 'hash':
    return hash_embeddings(texts)
  if embedder != 'minilm':
    raise ValueError(f"config.embedder must be 'minilm' or 'hash', got {embedder!r}")
  from jaxlab.data import text_latents  # pylint: disable=import-outside-toplevel
  enc, params, tok = text_latents.load_minilm()
  return text_latents.sentence_embeddings(enc, params, tok, list(texts))


def split_indices(table: table_lib.OutcomeTable, ood: list[str], fractions, seed: int) -> dict[str, np.ndarray]:
  """Per ID family a seeded train / val / test split; every OOD task in test_ood."""
  fam = np.array(table.families)
  out = {'train': [], 'val': [], 'test': [], 'test_ood': list(np.flatnonzero(np.isin(fam, ood)))}
  rng = np.random.default_rng(seed)
  for f in sorted(set(table.families) - set(ood)):
    idx = rng.permutation(np.flatnonzero(fam == f))
    a = int(round(fractions[0] * len(idx)))
    b = a + int(round(fractions[1] * len(idx)))
    out['train'] += list(idx[:a])
    out['val'] += list(idx[a:b])
    out['test'] += list(idx[b:])
  res = {k: np.array(sorted(v), np.int64) for k, v in out.items()}
  empty = [k for k in ('train', 'val', 'test') if not len(res[k])]
  if empty:
    raise ValueError(f'the split left {empty} empty: more tasks per family or other config.split fractions')
  return res


def strategy_infos(strategies: list[str], embedder: str) -> list[predictors.StrategyInfo]:
  models = sorted({s.split('/')[0] for s in strategies})
  decodings = sorted({s.split('/')[1] for s in strategies})
  texts = [MODEL_DESCRIPTIONS.get(m, m) for m in models] + [DECODING_DESCRIPTIONS.get(d, d) for d in decodings]
  emb = embed(texts, embedder)
  me, de = dict(zip(models, emb[:len(models)])), dict(zip(decodings, emb[len(models):]))
  return [predictors.StrategyInfo(s, models.index(s.split('/')[0]), decodings.index(s.split('/')[1]),
                                  me[s.split('/')[0]], de[s.split('/')[1]]) for s in strategies]


def _sweep(p, c, correct, cost, scale, ws):
  return [metrics.evaluate(routers.unconstrained(p, c / scale, w), correct, cost) | {'w': w} for w in ws]


def _mean_std(rows: list[dict], keys=('accuracy', 'cost')) -> dict:
  return {f'{k}_{s}': float(getattr(np, s)([r[k] for r in rows])) for k in keys for s in ('mean', 'std')}


@runrecord.recorded()
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t_start = time.time()
  os.makedirs(workdir, exist_ok=True)
  facts: dict = {}
  if config.table_csv:
    app_flags.check_input_file(config.table_csv, '--config.table_csv')
    table = table_lib.from_csv(config.table_csv)
    ood = list(config.table.ood_families)
  elif int(config.toy_tasks):
    table, ood = toy_table(int(config.toy_tasks), int(config.split_seed))
  else:
    from experiments.concur import table as build_lib  # pylint: disable=import-outside-toplevel
    table, facts = build_lib.build(config.table, workdir)
    ood = list(config.table.ood_families)
  table_lib.to_csv(table, os.path.join(workdir, 'outcomes.csv'))
  t_table = time.time()
  e_all = embed(table.prompts, config.embedder)
  sp = split_indices(table, ood, tuple(config.split), int(config.split_seed))
  Y, C = table.correct, table.flops
  S = len(table.strategies)
  infos = strategy_infos(table.strategies, config.embedder)
  scale = float(C[sp['train']].mean())  # one cost unit for every strategy: the mean training FLOPs
  seeds = [int(s) for s in config.seeds]
  ws = [float(w) for w in config.ws]
  fit_kw = dict(max_epochs=int(config.max_epochs), patience=int(config.patience),
                eval_every_epochs=int(config.eval_every_epochs))
  tr, va = sp['train'], sp['val']
  e = {k: e_all[v] for k, v in sp.items()}
  data = {k: (e[k], Y[v], C[v]) for k, v in sp.items()}

  # Predictors: every (seed, strategy) pair in one stacked trainer run per kind; then the ablations.
  t0 = time.time()
  routers_by = {}
  ablations = tuple(config.ablations)
  for name, task_only in (('concur', False), ('task_only', True))[:2 if 'task_only' in ablations else 1]:
    fa = predictors.fit_strategies('acc', infos, seeds, e['train'], Y[tr], e['val'], Y[va],
                                   os.path.join(workdir, 'fits', name, 'acc'), task_only=task_only,
                                   hidden=int(config.hidden), **fit_kw)
    fc = predictors.fit_strategies('cost', infos, seeds, e['train'], C[tr] / scale, e['val'], C[va] / scale,
                                   os.path.join(workdir, 'fits', name, 'cost'), task_only=task_only,
                                   hidden=int(config.hidden), **fit_kw)
    for s in seeds:
      r = continual.ConcurRouter(cost_scale=scale, seed=s, task_only=task_only)
      for info in infos:
        r.add_fits(info, fa[(s, info.name)], fc[(s, info.name)])
      routers_by[(name, s)] = r
  mono_a = mono_c = None
  if 'monolithic' in ablations:
    mono_a = baselines.fit_monolithic('acc', [(e['train'], Y[tr], e['val'], Y[va])], os.path.join(workdir, 'fits',
                                    'mono', 'acc'), seeds=seeds, **fit_kw)
    mono_c = baselines.fit_monolithic('cost', [(e['train'], C[tr] / scale, e['val'], C[va] / scale)],
                                      os.path.join(workdir, 'fits', 'mono', 'cost'), seeds=seeds, **fit_kw)
  fit_seconds = time.time() - t0
  k_nn = baselines.tune_knn(e['train'], Y[tr], C[tr], e['val'], Y[va])

  def predictions(method: str, i: int, s: int, part: str):
    if method in ('concur', 'task_only'):
      return routers_by[(method, s)].predict(e[part])
    if method == 'monolithic':
      return (baselines.predict_monolithic(mono_a[i], e[part], S),
              baselines.predict_monolithic(mono_c[i], e[part], S) * scale)
    return baselines.knn_predict(e['train'], Y[tr], C[tr], e[part], k_nn)

  # Baselines that need no predictor.
  best = baselines.best_single(Y[va], C[va])
  out: dict = {'strategies': table.strategies, 'num_tasks': {k: int(len(v)) for k, v in sp.items()},
               'ood_families': ood, 'cost_unit_flops': scale, 'knn_k': k_nn, 'table_facts': facts}
  per_strategy = {}
  for part in ('val', 'test', 'test_ood'):
    _, y, c = data[part]
    per_strategy[part] = {s: {'accuracy': float(y[:, j].mean()), 'cost': float(c[:, j].mean())}
                          for j, s in enumerate(table.strategies)}
  out['per_strategy'] = per_strategy
  base = {}
  for part in ('test', 'test_ood'):
    _, y, c = data[part]
    rnd = [metrics.evaluate(baselines.random_choice(len(y), S, 100 + i), y, c) for i in range(20)]
    base[part] = {'best_single': dict(strategy=table.strategies[best], **metrics.evaluate(np.full(len(y), best), y, c)),
                  'oracle': metrics.evaluate(metrics.oracle_choice(y, c), y, c),
                  'random': _mean_std(rnd)}
  out['baselines'] = base

  # Routers: unconstrained sweep and w chosen on validation; budgets (global knapsack vs local).
  cmax = float(C[tr].mean(0).max())
  budgets = [f * cmax for f in config.budget_fractions]
  methods = ('concur',) + tuple(m for m in ('task_only', 'monolithic', 'knn') if m in ablations)
  routed: dict = {}
  for method in methods:
    runs = {part: {'sweep': [], 'chosen': [], 'chosen_eq_cost': [], 'global': [], 'local': []}
            for part in ('test', 'test_ood')}
    for i, s in enumerate(seeds if method != 'knn' else seeds[:1]):
      pv, cv = predictions(method, i, s, 'val')
      _, yv, cvr = data['val']
      w_star = continual.best_w(pv, cv, yv, cvr, scale, ws)
      # the most accurate w on validation whose validation cost is <= the best single strategy's
      sweep_v = _sweep(pv, cv, yv, cvr, scale, ws)
      cap = float(cvr[:, best].mean())
      ok = [r for r in sweep_v if r['cost'] <= cap * (1 + 1e-9)]
      w_eq = min(ok, key=lambda r: (-r['accuracy'], r['cost']))['w'] if ok else 0.
      for part in ('test', 'test_ood'):
        p, c = predictions(method, i, s, part)
        _, y, cr = data[part]
        runs[part]['sweep'].append(_sweep(p, c, y, cr, scale, ws))
        runs[part]['chosen'].append(metrics.evaluate(routers.unconstrained(p, c / scale, w_star), y, cr)
                                    | {'w': w_star})
        runs[part]['chosen_eq_cost'].append(metrics.evaluate(routers.unconstrained(p, c / scale, w_eq), y, cr)
                                            | {'w': w_eq})
        runs[part]['global'].append([metrics.evaluate(routers.global_knapsack(
            p, c, b, int(config.knapsack_resolution)), y, cr) | {'budget': b} for b in budgets])
        runs[part]['local'].append([metrics.evaluate(routers.local_budget(p, c, b), y, cr) | {'budget': b}
                                    for b in budgets])
    summary = {}
    for part, r in runs.items():
      o, b = base[part]['oracle']['accuracy'], base[part]['best_single']['accuracy']
      summary[part] = {
          'chosen': _mean_std(r['chosen']) | {'w': [x['w'] for x in r['chosen']]},
          'chosen_eq_cost': _mean_std(r['chosen_eq_cost']) | {'w': [x['w'] for x in r['chosen_eq_cost']]},
          'gap_closed_chosen': metrics.gap_closed(float(np.mean([x['accuracy'] for x in r['chosen']])), b, o),
          'sweep': [dict(w=ws[k], **_mean_std([run[k] for run in r['sweep']])) for k in range(len(ws))],
          'global': [dict(budget=budgets[k], **_mean_std([run[k] for run in r['global']]))
                     for k in range(len(budgets))],
          'local': [dict(budget=budgets[k], **_mean_std([run[k] for run in r['local']]))
                    for k in range(len(budgets))]}
    routed[method] = summary
  out['routers'] = routed
  # The accuracy-cost Pareto front over the single strategies and every router's w sweep (means over seeds).
  out['pareto_front'] = {}
  for part in ('test', 'test_ood'):
    labels, points = [], []
    for strat, v in per_strategy[part].items():
      labels.append(strat)
      points.append((v['cost'], v['accuracy']))
    for method, summ in routed.items():
      for r in summ[part]['sweep']:
        labels.append(f"{method} w={r['w']:.2f}")
        points.append((r['cost_mean'], r['accuracy_mean']))
    out['pareto_front'][part] = [dict(label=labels[i], cost=points[i][0], accuracy=points[i][1])
                                 for i in metrics.pareto_front(points)]
  # Best single strategy under each budget (chosen on validation), for the budget table.
  out['best_single_under_budget'] = {}
  for part in ('test', 'test_ood'):
    _, y, c = data[part]
    rows = []
    for b in budgets:
      j = baselines.best_single(Y[va], C[va], b)
      rows.append(dict(budget=b, strategy=table.strategies[j], **metrics.evaluate(np.full(len(y), j), y, c)))
    out['best_single_under_budget'][part] = rows

  # Continual protocol.
  t1 = time.time()
  orders = {'fixed': list(range(S)),
            'shuffled': list(np.random.default_rng(int(config.split_seed) + 7).permutation(S))}
  cont = {}
  split3 = {'train': data['train'], 'val': data['val'], 'test': data['test']}
  for oname in config.continual_orders:
    per_seed = []
    mono_rows = None
    for s in seeds:
      rows = continual.continual_rows(
          orders[oname], routers_by[('concur', s)], split3, os.path.join(workdir, 'continual', oname, str(s)),
          cost_scale=scale, seeds=[int(x) for x in config.continual_monolithic_seeds], ws=ws, fit_kwargs=fit_kw,
          monolithic=mono_rows is None)
      if mono_rows is None:
        mono_rows = rows
      per_seed.append(rows)
    agg = []
    for k in range(S):
      rk = [rows[k] for rows in per_seed]
      agg.append({'arrived': rk[0]['arrived'], 'num_strategies': k + 1,
                  **_mean_std(rk, ('accuracy', 'cost', 'train_steps_cumulative', 'train_seconds_cumulative')),
                  **{key: mono_rows[k][key] for key in mono_rows[k] if key.startswith('mono_')}})
    cont[oname] = {'order': [table.strategies[j] for j in orders[oname]], 'rows': agg}
  out['continual'] = cont
  out['seconds'] = {'table': round(t_table - t_start, 1), 'predictor_fits': round(fit_seconds, 1),
                    'continual': round(time.time() - t1, 1), 'total': round(time.time() - t_start, 1)}
  _plot(out, table.strategies, os.path.join(workdir, 'pareto.png'))
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)
  logging.info('results: %s', json.dumps({k: out[k] for k in ('baselines', 'seconds')})[:3000])
  return {'results': 'results.json', 'seconds': out['seconds']}


def _plot(out: dict, strategies: list[str], path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
  for ax, part, title in ((axes[0], 'test', 'in-distribution test'), (axes[1], 'test_ood', 'out-of-distribution')):
    ps = out['per_strategy'][part]
    for s in strategies:
      ax.scatter(ps[s]['cost'], ps[s]['accuracy'], marker='s', color='gray')
      ax.annotate(s, (ps[s]['cost'], ps[s]['accuracy']), fontsize=7, color='gray')
    for method, style in (('concur', '-o'), ('task_only', ':^'), ('monolithic', '--x'), ('knn', '-.+')):
      if method not in out['routers']:
        continue
      sw = out['routers'][method][part]['sweep']
      ax.plot([r['cost_mean'] for r in sw], [r['accuracy_mean'] for r in sw], style, label=f'{method} (w sweep)',
              markersize=4)
    g = out['routers']['concur'][part]['global']
    ax.plot([r['cost_mean'] for r in g], [r['accuracy_mean'] for r in g], 'D', color='C4', label='concur global budget')
    l = out['routers']['concur'][part]['local']
    ax.plot([r['cost_mean'] for r in l], [r['accuracy_mean'] for r in l], 'v', color='C5', label='concur local budget')
    o = out['baselines'][part]['oracle']
    ax.scatter(o['cost'], o['accuracy'], marker='*', s=120, color='gold', label='oracle', zorder=5)
    ax.set_xscale('log')
    ax.set_xlabel('mean realised cost per task (model FLOPs)')
    ax.set_ylabel('accuracy')
    ax.set_title(title)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7, loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


main = app_flags.main_for(run)


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  config = flags.FLAGS.config
  for key in ('max_epochs', 'patience', 'eval_every_epochs', 'hidden', 'knapsack_resolution', 'table.n_per_family',
              'table.batch_size', 'table.prompt_len', 'table.direct_tokens', 'table.cot_tokens'):
    node, leaf = (config.table, key.split('.')[1]) if key.startswith('table.') else (config, key)
    if int(node[leaf]) <= 0:
      app_flags.fail(f'--config.{key}={node[leaf]} must be positive')
  if not config.seeds:
    app_flags.fail('--config.seeds is empty: give at least one predictor seed')
  bad = [w for w in config.ws if not 0. <= float(w) <= 1.]
  if bad:
    app_flags.fail(f'--config.ws={tuple(config.ws)}: trade-off weights must lie in [0, 1], got {bad}')
  if abs(sum(config.split) - 1.) > 1e-6 or min(config.split) < 0:
    app_flags.fail(f'--config.split={tuple(config.split)} must be three non-negative fractions summing to 1')


if __name__ == '__main__':
  app_flags.run(main, validate)
