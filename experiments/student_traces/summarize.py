r"""Tables of experiments/student_traces results over seeds (mean ± sd where several files are given).

  python -m experiments.student_traces.summarize experiments/student_traces/results/seed{0,1,2}.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

GEN_ROWS = ('self_bleu', 'self_jaccard', 'executes', 'solved', 'mean_trace_length', 'mean_backtracking_ratio',
            'frac_traces_backtracking', 'mean_comments', 'mean_functions', 'mean_loops', 'mean_final_lines',
            'style_distance_to_own_final', 'corr_with_own_comments', 'corr_with_own_loops', 'corr_with_own_colors',
            'corr_with_own_functions', 'corr_with_own_trace_length', 'corr_with_own_backtracking_ratio')
PROBE_ROWS = ('trait/skill', 'trait/comment_rate', 'trait/backtrack', 'trait/chunk', 'trait/tinker', 'trait/colorful',
              'trait/loops', 'trait/functions', 'trait/round_numbers', 'trait/left_turns', 'stat/comments',
              'stat/loops', 'stat/colors', 'stat/functions', 'stat/final_lines', 'stat/trace_length',
              'stat/backtracking_ratio', 'stat/any_backtracking')


def _cell(vals) -> str:
  vals = [v for v in vals if v is not None and not (isinstance(v, float) and np.isnan(v))]
  if not vals:
    return 'n/a'
  return f'{np.mean(vals):.3f}' + (f' ± {np.std(vals, ddof=1):.3f}' if len(vals) > 1 else '')


def tables(results: list[dict]) -> str:
  variants = [v for v in ('trace', 'synthetic', 'last') if v in results[0]['generation']]
  out = ['Generation (held-out student × assignment pairs; "simulator" = the simulated students\' own traces)', '',
         '| metric | simulator | ' + ' | '.join(variants) + ' |', '|---|' + '---|' * (len(variants) + 1)]
  for k in GEN_ROWS:
    cells = [_cell([r['generation']['simulator'].get(k) for r in results])]
    cells += [_cell([r['generation'][v].get(k) for r in results]) for v in variants]
    out.append(f'| {k} | ' + ' | '.join(cells) + ' |')
  out += ['', 'Probes from the 64-d student layer (cross-validated; R² or accuracy; controls beside)', '',
          '| target | metric | control (mean / majority) | ' + ' | '.join(f'{v} | {v} shuffled-X' for v in variants)
          + ' |', '|---|---|---|' + '---|---|' * len(variants)]
  for k in PROBE_ROWS:
    rows = [r['probes'][k] for r in results if k in r['probes']]
    if not rows:
      continue
    ctrl = 'majority' if rows[0]['metric'] == 'accuracy' else 'mean_control'
    cells = [rows[0]['metric'], _cell([x[ctrl] for x in rows])]
    for v in variants:
      cells += [_cell([x.get(v) for x in rows]), _cell([x.get(f'{v}_shuffled') for x in rows])]
    out.append(f'| {k} | ' + ' | '.join(cells) + ' |')
  out += ['', 'Edit recovery (failing states of held-out traces continued by sampling)', '',
          '| model | success | style distance to own final | failing state\'s distance |', '|---|---|---|---|']
  for v in variants:
    rec = [r['recovery'][v] for r in results]
    out.append(f'| {v} | {_cell([x["success"] for x in rec])} | '
               f'{_cell([x["style_distance_to_own_final"] for x in rec])} | '
               f'{_cell([x["failing_state_distance_to_own_final"] for x in rec])} |')
  out += ['', f'cases per seed: {[r["recovery"]["cases"] for r in results]}; '
          f'wall seconds per seed: {[round(r["wall_seconds"]) for r in results]}']
  sim = results[0]['simulator']
  out += ['', 'Simulator calibration (class seed %d, %d traces) vs the targets' % (results[0]['class_seed'],
                                                                                   sim['traces']), '',
          '| statistic | simulator | target |', '|---|---|---|']
  for k, t in (('mean_states', 5.5), ('median_states', 1), ('backtracking_ratio', 0.056),
               ('frac_traces_backtracking', 0.25), ('final_lines_mean', '19-28'), ('final_lines_median', '19-28'),
               ('solved', '')):
    out.append(f'| {k} | {sim[k]:.3f} | {t} |')
  return '\n'.join(out)


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    raise SystemExit('usage: python -m experiments.student_traces.summarize RESULTS.json [...]')
  results = []
  for p in argv[1:]:
    with open(p) as f:
      results.append(json.load(f))
  print(tables(results))


if __name__ == '__main__':
  main(sys.argv)
