r"""Mean ± spread over seeds of the rows of experiments/gd_prompting results JSONs, as a markdown table.

  python -m experiments.gd_prompting.summarize experiments/gd_prompting/results/trainer_seed{0,1,2}.json

Spread = (max − min) / 2 over the seeds; every row present in all the files is printed, per query kind.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def summarize(paths: list[str]) -> str:
  runs = []
  for p in paths:
    with open(p) as f:
      runs.append(json.load(f))
  kinds = list(runs[0]['rows'])
  names = [n for n in runs[0]['rows'][kinds[0]] if all(n in r['rows'][k] for r in runs for k in kinds)]
  seeds = [r.get('seed', '?') for r in runs]
  lines = [f'| row (seeds {", ".join(map(str, seeds))}) | ' + ' | '.join(kinds) + ' |',
           '|---|' + '---|' * len(kinds)]
  for n in names:
    cells = []
    for k in kinds:
      v = np.asarray([r['rows'][k][n] for r in runs])
      cells.append(f'{v.mean():.3f} ± {(v.max() - v.min()) / 2:.3f}')
    lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


if __name__ == '__main__':
  if len(sys.argv) < 2:
    sys.exit('usage: python -m experiments.gd_prompting.summarize RESULTS.json [RESULTS.json ...]')
  print(summarize(sys.argv[1:]))
