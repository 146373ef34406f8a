r"""Re-scores a finished circuits run from its results JSON (no model): every I(C) score, r's main effects,
and a ceiling, the best partition of the same sizes found by local search on r itself.

  python -m experiments.circuits.rescore experiments/circuits/results/ioi8.json

The ceiling is circular by construction (it is fitted to the r it is scored on): it says how far above the
null ANY partition of those sizes can get on this r, i.e. how much interchangeability structure there is to
find, not what an explainer found. Output: one JSON object on stdout.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from jaxlab.interp import interchange as X


def ceiling_partition(r: np.ndarray, labels, score: str, seed: int = 0, starts: int = 20) -> list[int]:
  """A partition with the sizes of `labels` maximising I(C) on r: best of `starts` random starts, each
  improved by label swaps between two components until no swap helps."""
  rng = np.random.default_rng(seed)
  lab0 = np.asarray(labels)
  best, best_i = None, -np.inf
  for _ in range(starts):
    lab = rng.permutation(lab0)
    cur = X.interchangeability(r, lab, score)
    improved = True
    while improved:
      improved = False
      for i in range(len(lab)):
        for j in range(i + 1, len(lab)):
          if lab[i] == lab[j]:
            continue
          lab[i], lab[j] = lab[j], lab[i]
          val = X.interchangeability(r, lab, score)
          if val > cur + 1e-12:
            cur, improved = val, True
          else:
            lab[i], lab[j] = lab[j], lab[i]
    if cur > best_i:
      best, best_i = lab.copy(), cur
  return best.tolist()


def rescore(results: dict, num: int = 1000, seed: int = 0) -> dict:
  out = {}
  for task, entry in results['tasks'].items():
    c = entry.get('circuit')
    if not c:
      continue
    mats = {'plain': c['swap_r']}
    if c.get('swap_r_norm_matched'):
      mats['norm_matched'] = c['swap_r_norm_matched']
    parts = {name: v['labels'] for name, v in c['interchangeability'].items()}
    t = {'components': c['swap_components']}
    for kind, r in mats.items():
      r = np.asarray(r, np.float64)
      off = ~np.eye(len(r), dtype=bool)
      t[kind] = {'r_offdiag_mean': float(r[off].mean()), 'r_min': float(r[off].min()),
                 'r_max': float(r[off].max()), 'main_effects': X.swap_main_effects(r)}
      for score in X.SCORES:
        rows = {}
        for name, lab in parts.items():
          res = X.random_partition_null(r, lab, num=num, seed=seed, score=score)
          res.pop('null')
          rows[name] = res
          ceil = ceiling_partition(r, lab, score, seed)
          res_c = X.random_partition_null(r, ceil, num=num, seed=seed, score=score)
          res_c.pop('null')
          rows[f'ceiling_sizes_of_{name}'] = dict(res_c, labels=ceil)
        t[kind][score] = rows
    out[task] = t
  return out


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    sys.exit('usage: python -m experiments.circuits.rescore RESULTS_JSON')
  try:
    with open(argv[1]) as f:
      results = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    sys.exit(f'{argv[1]}: cannot read a results JSON ({e})')
  if 'tasks' not in results:
    sys.exit(f"{argv[1]}: no 'tasks' key: not a circuits results.json")
  print(json.dumps(rescore(results), indent=1))


if __name__ == '__main__':
  main(sys.argv)
