r"""Prints the README results table from TTT workdirs (several seeds per row, comma-separated).

  python -m experiments.varc.report "offline+TTT=W/ttt_offline,W/ttt_offline_s1" "TTT only=W/ttt_scratch"
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def _load(workdir: str) -> dict:
  with open(os.path.join(workdir, 'results.json')) as f:
    return json.load(f)


def _cell(values: list[float]) -> str:
  per = ' / '.join(f'{100 * v:.1f}' for v in values)
  return f'{100 * np.mean(values):.1f} ({per})' if len(values) > 1 else per


def row(name: str, workdirs: list[str]) -> str:
  res = [_load(w) for w in workdirs]
  s = [r['summary'] for r in res]
  solved = sorted({t['task_id'] for r in res for t in r['tasks'] if t['scores'].get('pass@2', 0) > 0})
  failed = sum(int(x['num_failed']) for x in s)
  cols = [_cell([x[k] for x in s]) for k in ('pass@2', 'pass@1', 'single_pass@1')]
  secs = np.mean([x['mean_task_seconds'] for x in s])
  return f"| {name} | {' | '.join(cols)} | {secs:.1f} | {failed} | {', '.join(solved) or '-'} |"


def main(argv: list[str]) -> None:
  print('| run | multi-view pass@2 | multi-view pass@1 | single-view pass@1 (= pass@2) | s / task | failed '
        '| tasks with pass@2 > 0 in any seed |')
  print('|---|---|---|---|---|---|---|')
  for arg in argv:
    name, dirs = arg.split('=', 1)
    print(row(name, dirs.split(',')))


if __name__ == '__main__':
  main(sys.argv[1:])
