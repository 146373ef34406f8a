"""The measurements of experiments/student_traces: simulator calibration, generation metrics, probes from student
embeddings, and edit-recovery prompts and scores."""

from __future__ import annotations

import numpy as np

from jaxlab.data import student_sim as S
from jaxlab.data import trace_corpus as C
from jaxlab.data import turtle as T
from jaxlab.evals import traces as M

# From the issue (the paper's released model samples): mean / median states, backtracking, final program size.
TARGETS = {'mean_states': 5.5, 'median_states': 1, 'backtracking_ratio': 0.056, 'frac_traces_backtracking': 0.25,
           'final_lines': '19-28'}
STYLE_STATS = ('comments', 'functions', 'loops', 'colors', 'final_lines', 'trace_length', 'backtracking_ratio')


def calibration(traces: list[S.Trace]) -> dict:
  n = np.array([len(t.programs) for t in traces])
  br = np.array([M.backtracking_ratio(t.programs) for t in traces])
  lines = np.array([len(t.final.splitlines()) for t in traces])
  return {'traces': len(traces), 'mean_states': float(n.mean()), 'median_states': float(np.median(n)),
          'backtracking_ratio': float(br.mean()), 'frac_traces_backtracking': float((br > 0).mean()),
          'final_lines_mean': float(lines.mean()), 'final_lines_median': float(np.median(lines)),
          'solved': float(np.mean([t.solved for t in traces])), 'targets': TARGETS}


def _grouped(fn, traces: list[S.Trace]) -> float:
  by: dict[str, list[str]] = {}
  for t in traces:
    by.setdefault(t.title, []).append(t.final)
  vals = [fn(v) for v in by.values() if len(v) >= 2]
  return float(np.mean(vals)) if vals else float('nan')


def style_distance(program: str, reference: str) -> float:
  """Edit distance to the reference program, normalised by the reference's length."""
  return M.edit_distance(program, reference) / max(len(reference), 1)


def generation_metrics(gen: list[S.Trace], ref: list[S.Trace]) -> dict:
  """Metrics of generated traces `gen` for the same (student, title) pairs as the simulator's `ref`."""
  stats = [M.trace_stats(t.programs) for t in gen]
  rstats = [M.trace_stats(t.programs) for t in ref]
  cats = np.array([[s[f'edit_{c}'] for c in M.EDIT_CATEGORIES] for s in stats], float).sum(0)
  out = {'self_bleu': _grouped(M.self_bleu, gen), 'self_jaccard': _grouped(M.self_jaccard, gen),
         'executes': float(np.mean([s['executes'] for s in stats])),
         'solved': float(np.mean([t.solved for t in gen])),
         'frac_traces_backtracking': float(np.mean([s['backtracking_ratio'] > 0 for s in stats])),
         'edit_fractions': {c: float(x) for c, x in zip(M.EDIT_CATEGORIES, cats / max(cats.sum(), 1))},
         'style_distance_to_own_final': float(np.mean([style_distance(g.final, r.final) for g, r in zip(gen, ref)]))}
  for k in STYLE_STATS:
    g, r = np.array([s[k] for s in stats], float), np.array([s[k] for s in rstats], float)
    out[f'mean_{k}'] = float(g.mean())
    # student-specific: does the generated trace of pair i look like the simulator's trace of pair i?
    out[f'corr_with_own_{k}'] = float(np.corrcoef(g, r)[0, 1]) if g.std() > 0 and r.std() > 0 else 0.0
  return out


def student_targets(students: list[S.Student], train_tr: list[S.Trace], users: list[str]) -> dict[str, np.ndarray]:
  """Per-student probe targets: the latent traits and the means of trace statistics over the student's traces."""
  by_user: dict[str, list[dict]] = {}
  for t in train_tr:
    by_user.setdefault(t.username, []).append(M.trace_stats(t.programs))
  traits = {s.username: s.traits for s in students}
  out = {f'trait/{k}': np.array([getattr(traits[u], k) for u in users]) for k in S.TRAIT_NAMES}
  for k in STYLE_STATS:
    out[f'stat/{k}'] = np.array([np.mean([s[k] for s in by_user[u]]) for u in users])
  out['stat/any_backtracking'] = np.array([np.mean([s['backtracking_ratio'] > 0 for s in by_user[u]]) for u in users])
  return out


BINARY = ('trait/round_numbers', 'trait/left_turns')


def probes(feats: dict[str, np.ndarray], students, train_tr, users, seed: int, folds: int) -> dict:
  """Cross-validated probes from each model's student features [n_users, 64] to every target, with controls.

  Continuous targets: RidgeCV R² (controls: the training-fold mean, and the probe on row-shuffled features).
  Binary traits: logistic-regression accuracy (controls: the majority class, and shuffled features)."""
  from sklearn.linear_model import LogisticRegression, RidgeCV  # the test extra (scikit-learn)
  from sklearn.metrics import r2_score
  from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

  targets = student_targets(students, train_tr, users)
  cv = KFold(folds, shuffle=True, random_state=seed)
  perm = np.random.default_rng(seed).permutation(len(users))
  out: dict = {'users': len(users)}
  for name, y in targets.items():
    row = {}
    if name in BINARY:
      y = y.astype(int)
      row['majority'] = float(max(y.mean(), 1 - y.mean()))
      fit = min(np.bincount(y, minlength=2)) >= folds  # every training fold holds both classes
      scv = StratifiedKFold(folds, shuffle=True, random_state=seed)
      for v, x in feats.items():
        clf = LogisticRegression(max_iter=2000)
        row[v] = float((cross_val_predict(clf, x, y, cv=scv) == y).mean()) if fit else None
        row[f'{v}_shuffled'] = float((cross_val_predict(clf, x[perm], y, cv=scv) == y).mean()) if fit else None
      row['metric'] = 'accuracy'
    else:
      mean_pred = np.zeros_like(y, dtype=float)
      for tr, te in cv.split(y):
        mean_pred[te] = y[tr].mean()
      row['mean_control'] = float(r2_score(y, mean_pred))
      for v, x in feats.items():
        reg = RidgeCV(alphas=np.logspace(-3, 3, 13))
        row[v] = float(r2_score(y, cross_val_predict(reg, x, y, cv=cv)))
        row[f'{v}_shuffled'] = float(r2_score(y, cross_val_predict(reg, x[perm], y, cv=cv)))
      row['metric'] = 'r2'
    out[name] = row
  return out


def _fails(program: str, title: str) -> bool:
  r = T.run_program(program)
  return not (r.ok and T.solved(r.image, T.ASSIGNMENT_BY_NAME[title].target))


def failing_prefixes(traces: list[S.Trace], n: int, seed: int) -> list[tuple[S.Trace, int]]:
  """Up to n (trace, state index) pairs: a failing, non-final state of a trace whose final program succeeds
  (one per trace, chosen with the seed)."""
  rng = np.random.default_rng(seed)
  cases = []
  for t in traces:
    if not t.solved:
      continue
    idx = [i for i in range(len(t.programs) - 1) if t.programs[i].strip() and _fails(t.programs[i], t.title)]
    if idx:
      cases.append((t, int(rng.choice(idx))))
  order = rng.permutation(len(cases))[:n]
  return [cases[i] for i in sorted(order)]


def last_prefix(program: str) -> str:
  """What the last-only model is given of a failing program: the lines before its first error line, or all but
  the last line when it runs (its drawing is wrong)."""
  lines = program.split('\n')
  r = T.run_program(program)
  cut = r.error.line - 1 if r.error is not None and r.error.line > 0 else max(len(lines) - 1, 0)
  return '\n'.join(lines[:cut])


def recovery_prompt(tok, trace: S.Trace, i: int, variant: str, max_prompt: int = 192) -> list[int]:
  """Token ids (student placeholder first) that ask the model to go on from state i of the trace."""
  if variant == 'last':
    prefix = last_prefix(trace.programs[i])
    body = f'{trace.title}\nCODE 1 ({trace.dates[i]}):\n' + (prefix + '\n' if prefix else '')
    return [tok.pad_id] + tok.encode(body)[:max_prompt]
  head = S.Trace(trace.username, trace.title, trace.programs[:i + 1], trace.dates[:i + 1], False)
  for start in range(i + 1):
    ids = [tok.pad_id] + tok.encode(C.text(head, start) + '\n')
    if len(ids) <= max_prompt:
      return ids
  return ids[:max_prompt]


def recovery_scores(texts: list[tuple[str, bool]], cases: list[tuple[S.Trace, int]], variant: str) -> dict:
  """Success (runs and solves) and style distance to the student's own final program of each continuation."""
  ok, dist, base = [], [], []
  for (txt, ended), (t, i) in zip(texts, cases):
    if variant == 'last':
      prefix = last_prefix(t.programs[i])
      final = (prefix + '\n' if prefix else '') + txt
    else:
      p = C.parse_trace(txt, ended)
      final = p.programs[-1] if p.programs else t.programs[i]
    ok.append(not _fails(final, t.title))
    dist.append(style_distance(final, t.final))
    base.append(style_distance(t.programs[i], t.final))
  return {'success': float(np.mean(ok)) if ok else float('nan'),
          'style_distance_to_own_final': float(np.mean(dist)) if dist else float('nan'),
          'failing_state_distance_to_own_final': float(np.mean(base)) if base else float('nan')}
