r"""Circuits and functional interchangeability (Haklay et al., arXiv 2603.20101) on SmolLM2-135M-Instruct.

  python -m experiments.circuits.main --config=experiments/circuits/configs/default.py:ioi \
      --workdir=workdirs/circuits_ioi
  (also :greater_than, :entity2, :entity3; :tiny is the entry test: 2 of the 30 layers, a few prompts)

Per task (experiments/circuits/data.py): the model's accuracy and metric first (a task it cannot do has no
circuit: it is reported and dropped); then head patching in the noising direction (clean run, one head's z
from the corrupted run, every position), attribution patching in the same direction (one forward +
backward), their Spearman correlation over all heads, residual-stream patching in the denoising direction
(corrupted run, clean resid_pre at one layer and one token role), the top-k heads by |patching effect|,
their features (attention from the last token to each token role, direct logit attribution, attribution
effect at each role), the offline clusterer's partition and a role-rule partition, and for each I(C)
against the random-partition null (jaxlab.interp.interchange: r = M_swap / M_clean). PNG heat maps
layer x head go to the workdir; results to workdir/results.json.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from experiments.circuits import data
from jaxlab.interp import hooks as H
from jaxlab.interp import interchange as X
from jaxlab.interp import patching as P
from jaxlab.io import gguf
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.train import runrecord

app_flags.define()



def load_model(num_layers: int):
  """(DecoderLM, params, tokenizer) of SmolLM2-135M-Instruct, optionally its first num_layers layers."""
  mcfg, params, f = gguf.load_smollm2(num_layers)
  return DecoderLM(mcfg), jax.tree.map(jnp.asarray, params), gguf.tokenizer_from_gguf(f)


def task_metric(ts: data.TaskSet) -> P.Metric:
  if ts.name == 'greater_than':
    return P.prob_mass_diff(ts.extra['good'], ts.extra['bad'])
  return P.logit_diff(ts.answer, ts.wrong)


@functools.partial(jax.jit, static_argnames=('model',))
def _last_logits(model, params, tokens):
  return model.apply({'params': params}, tokens, last_only=True)[:, -1]


def behaviour(model, params, ts: data.TaskSet) -> dict:
  """The model's task accuracy and metric on the clean prompts (and the metric on the corrupted ones)."""
  logits = np.asarray(_last_logits(model, params, jnp.asarray(ts.clean)))
  metric = task_metric(ts)
  out = {'n': int(len(ts.clean)), 'metric_clean': float(np.mean(metric(jnp.asarray(logits)))),
         'metric_corrupt': P.metric_value(metric, _last_logits(model, params, jnp.asarray(ts.corrupt)))}
  rows = np.arange(len(logits))
  if ts.name == 'greater_than':   # P(YY' > YY) exactly: the tens digit, then the units digit given Y1
    digit, yy = ts.extra['digits'], ts.extra['yy']
    p1 = jax.nn.softmax(logits, -1)
    second = np.concatenate([ts.clean, digit[yy // 10][:, None]], 1).astype(np.int32)
    p2 = np.asarray(jax.nn.softmax(_last_logits(model, params, jnp.asarray(second)), -1))
    p1 = np.asarray(p1)
    pd1, pd2 = p1[:, digit], p2[:, digit]                       # [n, 10]
    y1, y2 = yy // 10, yy % 10
    gt = np.array([pd1[i, y1[i] + 1:].sum() + pd1[i, y1[i]] * pd2[i, y2[i] + 1:].sum() for i in rows])
    lt = np.array([pd1[i, :y1[i]].sum() + pd1[i, y1[i]] * pd2[i, :y2[i]].sum() for i in rows])
    out.update(accuracy=float(np.mean(gt > lt)), p_greater=float(gt.mean()), p_smaller=float(lt.mean()),
               digit_mass_tens=float(pd1.sum(1).mean()), top1_is_digit=float(np.mean(np.isin(logits.argmax(1),
                                                                                             digit))))
  else:
    ld = logits[rows, ts.answer] - logits[rows, ts.wrong]
    out.update(accuracy=float(np.mean(ld > 0)), logit_diff=float(ld.mean()),
               top1=float(np.mean(logits.argmax(1) == ts.answer)))
    if ts.name.startswith('entity'):
      objs = ts.extra['objects'][0]
      ctx = [[o for o in objs if o in row] for row in ts.clean]
      out['accuracy_among_context_objects'] = float(np.mean(
          [ctx[i][int(np.argmax(logits[i, ctx[i]]))] == ts.answer[i] for i in rows]))
  return out


@functools.partial(jax.jit, static_argnames=('model',))
def _attention_from_end(model, params, tokens):
  _, _, state = H.run(model, {'params': params}, tokens, hooks={}, mutable=['intermediates'], last_only=True)
  inter = state['intermediates']
  return jnp.stack([inter[f'layers_{i}']['attn']['attention_weights'][0][:, :, -1]
                    for i in range(model.config.num_layers)], 1)   # [b, layers, heads, t]


def features(model, params, ts, comps, dla, attr_rows, m_clean, m_corrupt):
  """[k, f] per-head features and their names: attention from END to each role, DLA / M_clean, and the
  attribution effect at each role's positions / (M_corrupt - M_clean); attr_rows [b, L, t, H] is the
  attribution estimate per row and position (a role's position differs between rows: IO and S1 trade
  places between ABBA and BABA)."""
  att = np.asarray(_attention_from_end(model, params, jnp.asarray(ts.clean)))  # [b, L, H, t]
  names, cols = [], []
  for role, mask in ts.roles.items():
    w = np.einsum('blht,bt->lh', att, mask.astype(np.float64)) / len(mask)
    names.append(f'attn:{role}')
    cols.append([w[l, h] for l, h in comps])
  names.append('dla')
  cols.append([dla[l, h] / m_clean for l, h in comps])
  for role, mask in ts.roles.items():
    e = np.einsum('blth,bt->lh', attr_rows, mask.astype(np.float64)) / (m_corrupt - m_clean)
    names.append(f'effect:{role}')
    cols.append([e[l, h] for l, h in comps])
  return np.asarray(cols).T, names


def role_partition(feats, names) -> list[int]:
  """The role rules (IOI paper's vocabulary): a head is labelled by the role its last-token attention
  favours most, split into direct (|DLA| >= 10% of M_clean, sign kept) and indirect heads."""
  att = [i for i, n in enumerate(names) if n.startswith('attn:')]
  dla = feats[:, names.index('dla')]
  keys = []
  for row, d in zip(feats, dla):
    role = names[att[int(np.argmax(row[att]))]][5:]
    keys.append(f'{role}/' + ('direct+' if d >= 0.1 else 'direct-' if d <= -0.1 else 'indirect'))
  uniq = sorted(set(keys))
  return [uniq.index(k) for k in keys], keys


def heatmaps(path, grids: dict[str, np.ndarray], title: str):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 6), squeeze=False)
  for ax, (name, g) in zip(axes[0], grids.items()):
    lim = float(np.abs(g).max()) or 1.0
    im = ax.imshow(g, cmap='RdBu_r', vmin=-lim, vmax=lim, aspect='auto')
    ax.set_title(name, fontsize=9)
    ax.set_xlabel('head')
    ax.set_ylabel('layer')
    fig.colorbar(im, ax=ax, fraction=0.05)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def analyse(model, params, ts, config, workdir) -> dict:
  cfg = model.config
  metric = task_metric(ts)
  t0 = time.time()
  head_sites = [P.head_site(l) for l in range(cfg.num_layers)]
  lc, _ = P.run_with_cache(model, params, ts.clean, head_sites)
  lx, corrupt_cache = P.run_with_cache(model, params, ts.corrupt, head_sites)
  m_clean, m_corrupt = P.metric_value(metric, lc), P.metric_value(metric, lx)
  patched = P.patch_heads(model, params, ts.clean, corrupt_cache, metric)      # noising, every position
  patch_s = time.time() - t0
  logging.info('%s: head patching %.0f s', ts.name, patch_s)
  real = P.normalised(patched, m_clean, m_corrupt)
  t1 = time.time()
  attr = P.attribution_heads(model, params, ts.clean, ts.corrupt, metric)
  attr_s = time.time() - t1
  logging.info('%s: attribution %.0f s', ts.name, attr_s)
  est = attr['effect'] / (m_corrupt - m_clean)
  k = min(int(config.top_k), cfg.num_layers * cfg.num_heads)
  top_real, top_attr = P.rank_heads(real, k), P.rank_heads(est, k)
  # Denoising on the residual stream: clean resid_pre at one layer and one role, into the corrupted run.
  layers = list(range(0, cfg.num_layers, int(config.resid_stride)))
  sites = [f'layers_{l}/resid_pre' for l in layers]
  _, clean_res = P.run_with_cache(model, params, ts.clean, sites)
  role_masks = list(ts.roles.values())
  resid = {role: [] for role in ts.roles}
  for l, site in zip(layers, sites):
    ms = P.patch_masks(model, params, ts.corrupt, clean_res, metric, site, role_masks)
    for role, m in zip(ts.roles, ms):
      resid[role].append(float(P.normalised(m, m_corrupt, m_clean)))
  logging.info('%s: residual denoising done at %.0f s', ts.name, time.time() - t0)
  dla = P.direct_logit_attribution(model, params, ts.clean, metric)
  feats, names = features(model, params, ts, top_real, dla, attr['per_row_position'], m_clean, m_corrupt)
  t2 = time.time()
  swap_kinds = ('plain', 'norm_matched') if config.norm_matched_swaps else ('plain',)
  r_by_kind = {kind: X.swap_ratios(model, params, ts.clean, metric, top_real, match_norm=kind == 'norm_matched',
                                   pairs_per_call=int(config.pairs_per_call))['r'] for kind in swap_kinds}
  swap_s = time.time() - t2
  logging.info('%s: swaps %.0f s', ts.name, swap_s)
  offline = X.FeatureClusterer(seed=int(config.seed)).cluster(top_real, feats, names)
  rules, rule_keys = role_partition(feats, names)
  by_score = {}
  for kind, r in r_by_kind.items():
    for score in X.SCORES:
      for label, part in (('offline_clusterer', offline), ('role_rules', rules)):
        res = X.random_partition_null(r, part, num=int(config.null_partitions), seed=int(config.seed),
                                      score=score)
        res.pop('null')
        by_score.setdefault(kind, {}).setdefault(score, {})[label] = dict(
            res, labels=list(map(int, part)), sizes=np.bincount(part).tolist())
  nulls = by_score['plain']['r']
  png = os.path.join(workdir, f'{ts.name}_heads.png')
  heatmaps(png, {'patching (noising), normalised': real, 'attribution estimate': est,
                 'DLA / M_clean': dla / m_clean}, f'SmolLM2-135M {ts.name}: layer x head')
  comps = [f'L{l}H{h}' for l, h in top_real]
  return {
      'metric_clean': m_clean, 'metric_corrupt': m_corrupt,
      'spearman_attr_vs_patch': P.spearman(real, est),
      'spearman_abs_attr_vs_patch': P.spearman(np.abs(real), np.abs(est)),
      'pearson_attr_vs_patch': float(np.corrcoef(real.ravel(), est.ravel())[0, 1]),
      'top_k_overlap': len(set(top_real) & set(top_attr)),
      'top_heads_patching': [dict(head=c, effect=float(real[l, h]), attribution=float(est[l, h]),
                                  explanation=X.describe_features((l, h), dict(zip(names, map(float, f)))),
                                  role_rule=key)
                             for c, (l, h), f, key in zip(comps, top_real, feats, rule_keys)],
      'top_heads_attribution': [f'L{l}H{h}' for l, h in top_attr],
      'swap_r': np.round(r_by_kind['plain'], 4).tolist(), 'swap_components': comps,
      'swap_r_norm_matched': (np.round(r_by_kind['norm_matched'], 4).tolist()
                              if 'norm_matched' in r_by_kind else None),
      'interchangeability': nulls, 'interchangeability_by_score': by_score,
      'swap_main_effects': {kind: X.swap_main_effects(r) for kind, r in r_by_kind.items()},
      'feature_names': names,
      'features': np.round(feats, 4).tolist(),
      'resid_denoise_layers': layers, 'resid_denoise': resid,
      'patching_grid': np.round(real, 4).tolist(), 'attribution_grid': np.round(est, 4).tolist(),
      'seconds': {'head_patching': round(patch_s, 1), 'attribution': round(attr_s, 1), 'swaps': round(swap_s, 1)},
      'heatmap': os.path.basename(png),
  }


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t0 = time.time()
  tasks = [t for t in str(config.tasks).split(',') if t]
  for t in tasks:
    if t not in ('ioi', 'greater_than', 'entity2', 'entity3'):
      raise ValueError(f"config.tasks: unknown task {t!r}; expected ioi, greater_than, entity2, entity3")
  model, params, tok = load_model(int(config.num_layers))
  out = {'config': {'tasks': tasks, 'num_prompts': int(config.num_prompts), 'top_k': int(config.top_k),
                    'num_layers': model.config.num_layers, 'null_partitions': int(config.null_partitions),
                    'seed': int(config.seed), 'analyse': bool(config.analyse)}, 'tasks': {}}
  os.makedirs(workdir, exist_ok=True)
  for name in tasks:
    ts = data.build(name, tok, int(config.num_prompts), int(config.seed))
    beh = behaviour(model, params, ts)
    logging.info('%s behaviour: %s', name, beh)
    entry = {'behaviour': beh, 'example': ts.texts[0]}
    if not config.analyse:
      pass
    elif beh['accuracy'] < float(config.min_accuracy) or beh['metric_clean'] <= beh['metric_corrupt']:
      entry['dropped'] = (f"accuracy {beh['accuracy']:.2f} < {config.min_accuracy} or no clean-corrupt gap: "
                          'the model cannot do the task, so it has no circuit to analyse')
    else:
      entry['circuit'] = analyse(model, params, ts, config, workdir)
    out['tasks'][name] = entry
    logging.info('%s: %s', name, json.dumps(entry)[:1500])
  out['wall_seconds'] = round(time.time() - t0, 1)
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)
  return out


main = app_flags.main_for(run)


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  from absl import flags  # pylint: disable=import-outside-toplevel
  from experiments.circuits.configs.default import TASKS  # pylint: disable=import-outside-toplevel
  config = flags.FLAGS.config
  for key in ('num_prompts', 'top_k', 'null_partitions', 'pairs_per_call', 'resid_stride'):
    if int(config[key]) <= 0:
      app_flags.fail(f'--config.{key}={config[key]} must be positive')
  if int(config.num_layers) < 0:
    app_flags.fail(f'--config.num_layers={config.num_layers} must be ≥ 0 (0 = all layers)')
  bad = [t for t in str(config.tasks).split(',') if t.strip() not in TASKS]
  if bad:
    app_flags.fail(f'--config.tasks={config.tasks!r}: unknown task(s) {bad}; expected some of {TASKS}')


if __name__ == '__main__':
  app_flags.run(main, validate)
