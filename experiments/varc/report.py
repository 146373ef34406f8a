r"""Prints the README results table from TTT workdirs.

  python -m experiments.varc.report NAME=WORKDIR [NAME=WORKDIR ...]
"""

from __future__ import annotations

import json
import os
import sys


def row(name: str, workdir: str) -> str:
  with open(os.path.join(workdir, 'results.json')) as f:
    res = json.load(f)
  s = res['summary']
  solved = [t['task_id'] for t in res['tasks'] if t['scores'].get('pass@2', 0) > 0]
  return (f"| {name} | {100 * s['pass@2']:.1f} | {100 * s['pass@1']:.1f} | {100 * s['single_pass@1']:.1f} | "
          f"{s['mean_task_seconds']:.1f} | {int(s['num_failed'])} | {', '.join(solved) or '-'} |")


def main(argv: list[str]) -> None:
  print('| run | multi-view pass@2 | multi-view pass@1 | single-view pass@1 | s / task | failed | tasks solved (pass@2 > 0) |')
  print('|---|---|---|---|---|---|---|')
  for arg in argv:
    name, workdir = arg.split('=', 1)
    print(row(name, workdir))


if __name__ == '__main__':
  main(sys.argv[1:])
