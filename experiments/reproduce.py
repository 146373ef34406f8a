r"""Re-runs cheap headline commands in temporary workdirs and compares them with the committed results JSON.

  python -m experiments.reproduce                                # the default entries (below)
  python -m experiments.reproduce --only=psm_parity_transformer  # one entry (comma-separated names)
  python -m experiments.reproduce --list                         # the entries and the command each runs

Entries (name: command; wall time on the shared 2-core CPU; default entries marked *):
  * psm_parity_transformer: python -m experiments.psm.main --config=experiments/psm/configs/s5.py:parity
      --workdir=W --config.models="('transformer',)"                                         (~1-2 min)
  * psm_parity_psm: python -m experiments.psm.main --config=experiments/psm/configs/s5.py:parity
      --workdir=W --config.models="('psm',)"                                                 (~4-6 min)
    psm_parity_gla: python -m experiments.psm.main --config=experiments/psm/configs/s5.py:parity
      --workdir=W --config.models="('gla',)"                                                 (~4-6 min)
    lm_default: python -m experiments.lm.main --config=experiments/lm/configs/default.py --workdir=W
                                                                (~8 min quiet, 23 min at load 10-14)
Each psm entry is one row of the parity command in experiments/psm/README.md (every model of that command
trains in its own workdir from the same seed, so one row alone gives the same numbers as the full command);
lm_default is the flagship command of the top-level README.

Every metric has an absolute tolerance, stated next to it in ENTRIES with the reason: a model at chance
(the Transformer and GLA beyond the training lengths) has a binomial spread of sqrt(0.25 / 256) = 0.031 on
one length's accuracy over 256 sequences, and fp32 results on XLA:CPU change in their last bits with the
code's matmul forms and with the number of cores jax sees (BUILD_NOTES.md), so such numbers are compared
with a 3-sigma band, not exactly. Commands run in the environment the READMEs' numbers were measured in:
one device (a --xla_force_host_platform_device_count in XLA_FLAGS, as the test suite sets, is removed).

Prints a table (entry, metric, committed, now, tolerance, ok) and exits 1 if any metric is off or a command
failed; 2 for a flag mistake. The JSON paths of the committed files and of each run's results are in ENTRIES
below (one place to change when a results format changes).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Where:
  """A path step that picks the element of a list whose `key` equals `value` (e.g. results[model=psm])."""
  key: str
  value: Any


@dataclasses.dataclass(frozen=True)
class Metric:
  """One compared number: `path` into both JSON files (str keys, int indices, slices, Where); a list at the
  end of the path is averaged. `tolerance` is absolute."""
  name: str
  path: tuple
  tolerance: float
  why: str


@dataclasses.dataclass(frozen=True)
class Entry:
  """A headline command: `python -m <module> <args> --workdir=W`, its committed results file (relative to the
  repository root) and the results file the run writes in W."""
  name: str
  module: str
  args: tuple[str, ...]
  committed: str
  results: str
  metrics: tuple[Metric, ...]
  minutes: str
  default: bool = True

  def command(self, workdir: str = 'W') -> list[str]:
    return ['python', '-m', self.module, *self.args, f'--workdir={workdir}']

  def shell(self, workdir: str = 'W') -> str:
    """The command as one would type it (a --config.x=value with quotes or brackets gets double quotes)."""
    def quote(arg: str) -> str:
      key, _, value = arg.partition('=')
      if re.fullmatch(r'[\w@%+=:,./-]+', arg) or not re.fullmatch(r'--[\w.]+', key) or re.search(r'["$`\\]', value):
        return shlex.quote(arg)
      return f'{key}="{value}"'
    return ' '.join(quote(a) for a in self.command(workdir))


def _parity_row(model: str, at_chance: bool) -> tuple[Metric, ...]:
  """The columns of the parity table in experiments/psm/README.md for one model ('results' of its JSON).

  The spreads quoted are the Transformer's over five distinct runs (two code versions; 1 core, 2 cores,
  8 fake devices); GLA, at chance beyond length 18 too, gets the same bands but a wider one at the training
  lengths, which it fits only partly (0.826 in the first run, 0.811 in the rerun at later code).
  """
  row = ('results', Where('model', model))
  acc = lambda sl: row + ('accuracy_by_length', sl)
  if at_chance:
    return (
        Metric('params', row + ('params',), 0, 'parameter count: exact'),
        Metric('final train loss', row + ('final_train_loss',), 0.01, 'seen spread 0.005'),
        Metric('acc, lengths 1-18', acc(slice(0, 18)), 0.04 if model == 'gla' else 0.02,
               'seen 0.826 / 0.811' if model == 'gla' else 'seen spread 0.012'),
        Metric('acc, lengths 19-64', acc(slice(18, 64)), 0.03, 'chance, mean of 46 lengths: seen spread 0.009'),
        Metric('acc, lengths 65-128', acc(slice(64, 128)), 0.03, 'chance, mean of 64 lengths: seen spread 0.007'),
        Metric('acc at 128', acc(127), 0.1, 'chance at one length: binomial sd 0.031 (256 seqs), 3 sd; '
               'seen 0.457-0.512'),
    )
  return (
      Metric('params', row + ('params',), 0, 'parameter count: exact'),
      Metric('final train loss', row + ('final_train_loss',), 0.001, 'fits the training set: ~0'),
      Metric('acc, lengths 1-18', acc(slice(0, 18)), 0.005, 'solved: 1.000'),
      Metric('acc, lengths 19-64', acc(slice(18, 64)), 0.01, 'generalises: 0.998'),
      Metric('acc, lengths 65-128', acc(slice(64, 128)), 0.02, 'generalises: 0.988'),
      Metric('acc at 128', acc(127), 0.03, 'generalises: 0.984, a few of 256 sequences wrong; sd 0.008'),
  )


def _psm_parity(model: str, minutes: str, default: bool, at_chance: bool) -> Entry:
  return Entry(f'psm_parity_{model}', 'experiments.psm.main',
               ('--config=experiments/psm/configs/s5.py:parity', f"--config.models=('{model}',)"),
               committed='experiments/psm/results/parity_results.json', results='results.json',
               metrics=_parity_row(model, at_chance), minutes=minutes, default=default)


# The JSON paths read from each committed file and each run's workdir: change them here if a format changes.
ENTRIES: tuple[Entry, ...] = (
    _psm_parity('transformer', '1-2', default=True, at_chance=True),
    _psm_parity('psm', '4-6', default=True, at_chance=False),
    _psm_parity('gla', '4-6', default=False, at_chance=True),
    Entry('lm_default', 'experiments.lm.main', ('--config=experiments/lm/configs/default.py',),
          committed='experiments/lm/results/default.json', results='results.json', minutes='8-23', default=False,
          metrics=(
              Metric('step', ('step',), 0, 'steps trained: exact'),
              Metric('val perplexity', ('val_perplexity',), 0.15,
                     'README 30.92; reruns across code changes gave 30.913-30.915'),
              Metric('val accuracy', ('val_accuracy',), 0.003,
                     'whole validation split (99k tokens); seen 0.3333-0.3335'),
          )),
)
BY_NAME = {e.name: e for e in ENTRIES}


@dataclasses.dataclass
class Row:
  entry: str
  metric: str
  committed: float | None
  now: float | None
  tolerance: float
  ok: bool
  note: str = ''


def lookup(data: Any, path: Sequence) -> float:
  """The number at `path` in a parsed JSON value (a list at the end is averaged); KeyError if absent."""
  x = data
  for step in path:
    if isinstance(step, Where):
      matches = [el for el in x if isinstance(el, dict) and el.get(step.key) == step.value]
      if len(matches) != 1:
        raise KeyError(f'[{step.key}={step.value}] matches {len(matches)} elements')
      x = matches[0]
    elif isinstance(step, str):
      if not isinstance(x, dict) or step not in x:
        raise KeyError(f'no key {step!r}')
      x = x[step]
    else:  # int or slice into a list
      if not isinstance(x, list):
        raise KeyError(f'[{step}] into a {type(x).__name__}')
      try:
        x = x[step]
      except IndexError as e:
        raise KeyError(f'[{step}] out of range ({len(x)} elements)') from e
  if isinstance(x, list):
    if not x or not all(isinstance(v, (int, float)) for v in x):
      raise KeyError('the path ends at an empty or non-numeric list')
    return sum(x) / len(x)
  if isinstance(x, bool) or not isinstance(x, (int, float)):
    raise KeyError(f'the path ends at {type(x).__name__}, not a number')
  return float(x)


def compare(entry: Entry, committed: Any, now: Any) -> list[Row]:
  """One Row per metric: ok when both numbers exist, are finite and |now - committed| <= tolerance."""
  rows = []
  for m in entry.metrics:
    values, notes = [], []
    for side, data in (('committed', committed), ('now', now)):
      try:
        values.append(lookup(data, m.path))
      except KeyError as e:
        values.append(None)
        notes.append(f'{side}: {e}')
    c, n = values
    ok = (c is not None and n is not None and math.isfinite(c) and math.isfinite(n)
          and abs(n - c) <= m.tolerance + 1e-12)
    rows.append(Row(entry.name, m.name, c, n, m.tolerance, ok, '; '.join(notes)))
  return rows


def child_env() -> dict[str, str]:
  """The environment for a command: ours without fake host devices (the READMEs' numbers are one device)."""
  env = dict(os.environ)
  xla = re.sub(r'--xla_force_host_platform_device_count=\S+', '', env.get('XLA_FLAGS', '')).strip()
  if xla:
    env['XLA_FLAGS'] = xla
  else:
    env.pop('XLA_FLAGS', None)
  return env


def run_entry(entry: Entry, workdir: str) -> str:
  """Runs the entry's command with `workdir` (log in workdir.log); returns the path of its results file."""
  cmd = [sys.executable, *entry.command(workdir)[1:]]
  log = workdir + '.log'
  with open(log, 'w', encoding='utf-8') as f:
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=child_env(), stdout=f, stderr=subprocess.STDOUT, check=False)
  if proc.returncode:
    with open(log, encoding='utf-8', errors='replace') as f:
      tail = f.read()[-2000:]
    raise RuntimeError(f'exit code {proc.returncode}; log {log} ends with:\n{tail}')
  return os.path.join(workdir, entry.results)


def check(entries: Sequence[Entry], root: str,
          run: Callable[[Entry, str], str] = run_entry, repo_root: str = REPO_ROOT) -> list[Row]:
  """Runs each entry in root/<name> and compares its results with the committed file."""
  rows = []
  for entry in entries:
    start = time.time()
    print(f'[{entry.name}] {entry.shell(os.path.join(root, entry.name))}', flush=True)
    try:
      with open(os.path.join(repo_root, entry.committed), encoding='utf-8') as f:
        committed = json.load(f)
      results = run(entry, os.path.join(root, entry.name))
      with open(results, encoding='utf-8') as f:
        now = json.load(f)
    except (OSError, ValueError, RuntimeError) as e:
      rows.append(Row(entry.name, 'command', None, None, 0, False, ' '.join(str(e).split())[:300]))
      print(f'[{entry.name}] FAILED: {e}', flush=True)
      continue
    rows += compare(entry, committed, now)
    print(f'[{entry.name}] done in {time.time() - start:.0f} s', flush=True)
  return rows


def _fmt(x: float | None) -> str:
  if x is None:
    return '-'
  return f'{x:,.0f}' if x == int(x) and abs(x) >= 1 else f'{x:.6g}'


def table(rows: Sequence[Row]) -> str:
  """A markdown table: entry | metric | committed | now | tolerance | ok (notes for missing values)."""
  lines = ['| entry | metric | committed | now | tolerance | ok |', '|---|---|---|---|---|---|']
  for r in rows:
    ok = 'ok' if r.ok else 'OFF' + (f' ({r.note})' if r.note else '')
    lines.append(f'| {r.entry} | {r.metric} | {_fmt(r.committed)} | {_fmt(r.now)} | {r.tolerance:g} | {ok} |')
  return '\n'.join(lines)


def listing() -> str:
  lines = []
  for e in ENTRIES:
    lines.append(f'{"*" if e.default else " "} {e.name} (~{e.minutes} min; committed: {e.committed})')
    lines.append('    ' + e.shell())
    lines += [f'    - {m.name}: tolerance {m.tolerance:g} ({m.why})' for m in e.metrics]
  return '\n'.join(lines)


flags.DEFINE_list('only', [], 'Entries to run (comma-separated names; default: the entries marked default).')
flags.DEFINE_bool('list', False, 'Print the entries, their commands and tolerances, and exit.')
flags.DEFINE_string('root', None, 'Folder for the runs\' workdirs and logs, kept afterwards; must not hold the '
                    'chosen entries\' workdirs yet (default: a temporary folder, removed at the end unless a '
                    'command failed).')


def _fail(message: str) -> None:
  sys.stderr.write(f'error: {message}\n')
  sys.exit(2)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(f'unexpected arguments: {argv[1:]}')
  if flags.FLAGS.list:
    print(listing())
    return
  unknown = [n for n in flags.FLAGS.only if n not in BY_NAME]
  if unknown:
    _fail(f'--only: unknown entries {unknown}; known: {sorted(BY_NAME)}')
  entries = [BY_NAME[n] for n in flags.FLAGS.only] or [e for e in ENTRIES if e.default]
  root = flags.FLAGS.root
  if root and os.path.exists(root) and not os.path.isdir(root):
    _fail(f'--root={root}: exists and is not a directory')
  if root:
    stale = [e.name for e in entries if os.path.exists(os.path.join(root, e.name))]
    if stale:  # An app would resume or reuse the finished run there: nothing would be regenerated.
      _fail(f'--root={root}: already holds {stale}; give an empty or new folder')
    os.makedirs(root, exist_ok=True)
  root = os.path.abspath(root) if root else tempfile.mkdtemp(prefix='jaxlab_reproduce_')
  rows = check(entries, root)
  print(table(rows))
  bad = [r for r in rows if not r.ok]
  if not flags.FLAGS.root and not any(r.metric == 'command' for r in bad):
    shutil.rmtree(root, ignore_errors=True)
  else:
    print(f'workdirs and logs: {root}')
  if bad:
    print(f'{len(bad)} of {len(rows)} metrics do not regenerate within tolerance.')
    sys.exit(1)
  print(f'all {len(rows)} metrics regenerate within tolerance.')


if __name__ == '__main__':
  app.run(main)
