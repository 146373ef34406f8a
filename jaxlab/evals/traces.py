"""Metrics of program edit traces, as in Ross et al. (arXiv 2510.05056) and their code (pencilcode-public):

* `self_bleu(programs)`: each program against all the others as references, whitespace tokens, nltk's
  corpus_bleu without smoothing at BLEU-1..4 (uniform weights), averaged (their `self_bleu`).
* `self_jaccard(programs)`: mean Jaccard similarity of the whitespace-token sets over all pairs.
* `edit_distance(a, b)`: int(max(len a, len b) · (1 − difflib ratio)), the paper code's distance.
* `backtracking_ratio(programs)`: d_i = edit_distance(state i, final) over the states before the final one;
  ratio = #{i ≥ 1 : d_i > d_{i−1}} / len(d); 0 for a single state.
* `edit_types(programs)`: per consecutive pair, one of large_add (≥ 5 lines added), large_del (≥ 5 deleted),
  small_add, small_del, modify_existing; plus counts of added, deleted and modified lines (a '-' line paired
  with the nearest '+' line of a difflib.Differ diff is a modification), colour-only and number-only
  modifications, added comments and functions.
* `num_comments` (whitespace tokens starting with '#'), `num_functions` (`= ->` definitions), `num_loops`.

BLEU is computed here (`corpus_bleu`); tests/evals checks it against nltk's corpus_bleu when nltk is installed.
Pairing of modified lines follows the paper's code, quirks included: a '+' line pairs with the nearest earlier
'-' line of the diff (a '-' line with the nearest later '+'), even one already paired.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from jaxlab.data import turtle

EDIT_CATEGORIES = ('large_add', 'large_del', 'small_add', 'small_del', 'modify_existing')


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
  return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]],
                max_order: int = 4) -> float:
  """Corpus BLEU with uniform weights over orders 1..max_order and no smoothing (nltk's corpus_bleu with
  SmoothingFunction().method0, which tests/evals cross-checks): clipped n-gram counts summed over the corpus,
  brevity penalty from the closest reference lengths (ties to the shorter); 0 when an order has no match."""
  num, den = np.zeros(max_order), np.zeros(max_order)
  hyp_len = ref_len = 0
  for refs, hyp in zip(references, hypotheses):
    hyp_len += len(hyp)
    ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
    for n in range(1, max_order + 1):
      counts = _ngrams(hyp, n)
      best: Counter = Counter()
      for r in refs:
        best |= _ngrams(r, n)
      num[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
      den[n - 1] += max(len(hyp) - n + 1, 0)
  if num[0] == 0 or np.any(num == 0):
    return 0.0
  bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
  return float(bp * math.exp(np.mean(np.log(num / den))))


def self_bleu(programs: Sequence[str]) -> float:
  """Mean of corpus BLEU-1..4 of each program against all others as references (whitespace tokens, no
  smoothing; the paper code's self_bleu). Needs ≥ 2 programs."""
  if len(programs) < 2:
    raise ValueError(f'self_bleu needs at least 2 programs, got {len(programs)}')
  toks = [p.split() for p in programs]
  refs = [[t for j, t in enumerate(toks) if j != i] for i in range(len(toks))]
  return float(np.mean([corpus_bleu(refs, toks, n) for n in range(1, 5)]))


def self_jaccard(programs: Sequence[str]) -> float:
  """Mean pairwise Jaccard similarity of whitespace-token sets (0 for an empty union)."""
  if len(programs) < 2:
    raise ValueError(f'self_jaccard needs at least 2 programs, got {len(programs)}')
  sets = [set(p.split()) for p in programs]
  sims = [len(a & b) / len(a | b) if a | b else 0.0 for a, b in itertools.combinations(sets, 2)]
  return float(np.mean(sims))


def edit_distance(a: str, b: str) -> int:
  return int(max(len(a), len(b)) * (1 - difflib.SequenceMatcher(None, a, b).ratio()))


def distances_to_final(programs: Sequence[str]) -> list[int]:
  return [edit_distance(p, programs[-1]) for p in programs[:-1]]


def backtracking_ratio(programs: Sequence[str]) -> float:
  if len(programs) <= 1:
    return 0.0
  d = distances_to_final(programs)
  return sum(d[i] > d[i - 1] for i in range(1, len(d))) / len(d)


def num_comments(program: str) -> int:
  return sum(1 for t in program.split() if t.startswith('#'))


def num_functions(program: str) -> int:
  return len(re.findall(r'=\s*->', program))


def num_loops(program: str) -> int:
  return len(re.findall(r'^\s*for\s*\[', program, flags=re.M))


_COLOR_RE = re.compile(r'\b(' + '|'.join(turtle.COLORS) + r')\b')


def _only_color(a: str, b: str) -> bool:
  return _COLOR_RE.sub('<C>', a) == _COLOR_RE.sub('<C>', b)


def _only_number(a: str, b: str) -> bool:
  return re.sub(r'\d+', '', a) == re.sub(r'\d+', '', b)


def edit_pair(before: str, after: str) -> dict:
  """The edit from one program to the next: its category and line counts."""
  diff = [d for d in difflib.Differ().compare(before.splitlines(), after.splitlines()) if not d.startswith('? ')]
  paired: set[str] = set()
  out = dict(lines_added=0, lines_deleted=0, lines_modified=0, color_changes=0, number_changes=0,
             comment_additions=0, function_additions=0)
  for i, d in enumerate(diff):
    if d[:2] not in ('+ ', '- ') or d[2:] in paired:
      continue
    line, other = d[2:], None
    rng = range(i - 1, -1, -1) if d.startswith('+ ') else range(i + 1, len(diff))
    want = '- ' if d.startswith('+ ') else '+ '
    for j in rng:
      if diff[j].startswith(want):
        other = diff[j][2:]
        break
    if other is not None:
      paired.update((line, other))
      out['lines_modified'] += 1
      if _only_color(line, other):
        out['color_changes'] += 1
      elif _only_number(line, other):
        out['number_changes'] += 1
  for d in diff:
    if d[:2] not in ('+ ', '- ') or d[2:] in paired:
      continue
    if d.startswith('+ '):
      out['lines_added'] += 1
      s = d[2:].strip()
      out['comment_additions'] += s.startswith('#')
      out['function_additions'] += '->' in s
    else:
      out['lines_deleted'] += 1
  a, dl = out['lines_added'], out['lines_deleted']
  out['category'] = ('large_add' if a >= 5 else 'large_del' if dl >= 5 else 'small_add' if a else
                     'small_del' if dl else 'modify_existing')
  return out


def edit_types(programs: Sequence[str]) -> dict[str, int]:
  """Sums over consecutive pairs: one count per EDIT_CATEGORIES entry plus the line and change counts."""
  total = {c: 0 for c in EDIT_CATEGORIES}
  for a, b in zip(programs, programs[1:]):
    e = edit_pair(a, b)
    total[e.pop('category')] += 1
    for k, v in e.items():
      total[k] = total.get(k, 0) + v
  return total


def trace_stats(programs: Sequence[str]) -> dict[str, float]:
  """Per-trace statistics used as probe targets and generation metrics."""
  final = programs[-1]
  run = turtle.run_program(final)
  stats = dict(trace_length=len(programs), backtracking_ratio=backtracking_ratio(programs),
               final_lines=len(final.splitlines()), comments=num_comments(final), functions=num_functions(final),
               loops=num_loops(final), colors=len(set(_COLOR_RE.findall(final))), executes=float(run.ok),
               mean_edit_distance_from_end=float(np.mean(distances_to_final(programs))) if len(programs) > 1 else 0.)
  for k, v in edit_types(programs).items():
    stats[f'edit_{k}'] = v
  return stats
