"""experiments.reproduce: the comparison logic (fast, no training) and one real entry end to end (slow)."""

import copy
import json
import math
import os
import subprocess
import sys

import pytest

from experiments import reproduce

ROOT = reproduce.REPO_ROOT


def _committed(entry):
  with open(os.path.join(ROOT, entry.committed), encoding='utf-8') as f:
    return json.load(f)


@pytest.mark.parametrize('entry', reproduce.ENTRIES, ids=lambda e: e.name)
def test_every_metric_path_resolves_in_the_committed_file(entry):
  data = _committed(entry)
  for m in entry.metrics:
    assert math.isfinite(reproduce.lookup(data, m.path)), m.name
  rows = reproduce.compare(entry, data, data)
  assert rows and all(r.ok for r in rows)


def test_lookup_paths():
  data = {'results': [{'model': 'a', 'acc': [0.0, 1.0, 0.5]}, {'model': 'b', 'acc': [1.0]}], 'n': 3}
  assert reproduce.lookup(data, ('n',)) == 3.0
  assert reproduce.lookup(data, ('results', reproduce.Where('model', 'a'), 'acc', 1)) == 1.0
  assert reproduce.lookup(data, ('results', reproduce.Where('model', 'a'), 'acc', slice(0, 2))) == 0.5
  for bad in [('m',), ('results', reproduce.Where('model', 'c')), ('results', 'x'),
              ('results', reproduce.Where('model', 'b'), 'acc', 5), ('results',)]:
    with pytest.raises(KeyError):
      reproduce.lookup(data, bad)


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(data, f)


def test_tampered_committed_file_fails(tmp_path):
  """A run that regenerates the committed numbers passes; a committed file off by more than a tolerance does not."""
  entry = reproduce.BY_NAME['psm_parity_transformer']
  real = _committed(entry)

  def fake_run(e, workdir):  # "Regenerates" exactly the real committed file.
    _write(os.path.join(workdir, e.results), real)
    return os.path.join(workdir, e.results)

  _write(str(tmp_path / 'repo' / entry.committed), real)
  rows = reproduce.check([entry], str(tmp_path / 'runs'), run=fake_run, repo_root=str(tmp_path / 'repo'))
  assert [r.metric for r in rows] == [m.name for m in entry.metrics] and all(r.ok for r in rows)

  tampered = copy.deepcopy(real)
  row = next(r for r in tampered['results'] if r['model'] == 'transformer')
  row['accuracy_by_length'][127] += 0.2            # acc at 128: tolerance 0.1
  row['params'] += 1                               # exact
  row['final_train_loss'] += 0.009                 # within its 0.01
  _write(str(tmp_path / 'repo' / entry.committed), tampered)
  rows = {r.metric: r for r in reproduce.check([entry], str(tmp_path / 'runs2'), run=fake_run,
                                               repo_root=str(tmp_path / 'repo'))}
  assert not rows['acc at 128'].ok and not rows['params'].ok
  assert rows['final train loss'].ok and rows['acc, lengths 1-18'].ok
  text = reproduce.table(list(rows.values()))
  assert '| psm_parity_transformer | acc at 128 |' in text and 'OFF' in text


def test_missing_results_and_failed_command_are_not_ok(tmp_path):
  entry = reproduce.BY_NAME['psm_parity_psm']
  now = {'results': [{'model': 'transformer'}]}  # the psm row is missing
  rows = reproduce.compare(entry, _committed(entry), now)
  assert not any(r.ok for r in rows) and all('now:' in r.note for r in rows)

  def failing_run(e, workdir):
    raise RuntimeError('exit code 1; log ends with: boom')

  rows = reproduce.check([entry], str(tmp_path), run=failing_run)
  assert len(rows) == 1 and rows[0].metric == 'command' and not rows[0].ok and 'boom' in rows[0].note


def test_commands_run_on_one_device(monkeypatch):
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=8 --xla_cpu_foo=1')
  assert reproduce.child_env()['XLA_FLAGS'] == '--xla_cpu_foo=1'
  monkeypatch.setenv('XLA_FLAGS', '--xla_force_host_platform_device_count=8')
  assert 'XLA_FLAGS' not in reproduce.child_env()


def test_entries_listed_in_docstring_and_readme():
  with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
    readme = f.read()
  for e in reproduce.ENTRIES:
    assert f'{e.name}:' in reproduce.__doc__, e.name
    assert f'`{e.name}`' in readme and e.shell() in readme, e.name
    assert (f'| `{e.name}` * |' in readme) == e.default, e.name
  assert reproduce.BY_NAME['psm_parity_transformer'].shell() == (
      "python -m experiments.psm.main --config=experiments/psm/configs/s5.py:parity "
      "--config.models=\"('transformer',)\" --workdir=W")


def test_cli_list_and_unknown_entry():
  run = lambda *a: subprocess.run([sys.executable, '-m', 'experiments.reproduce', *a], cwd=ROOT,
                                  capture_output=True, text=True, check=False)
  out = run('--list')
  assert out.returncode == 0 and all(e.name in out.stdout for e in reproduce.ENTRIES)
  out = run('--only=psm_parity_transformer,nope')
  assert out.returncode == 2 and 'Traceback' not in out.stderr
  assert out.stderr.strip().splitlines() == [
      "error: --only: unknown entries ['nope']; known: "
      "['lm_default', 'psm_parity_gla', 'psm_parity_psm', 'psm_parity_transformer']"]


def test_cli_refuses_a_root_with_an_earlier_run(tmp_path):
  (tmp_path / 'psm_parity_psm').mkdir()  # The app would reuse the run there instead of regenerating it.
  out = subprocess.run([sys.executable, '-m', 'experiments.reproduce', '--only=psm_parity_psm', f'--root={tmp_path}'],
                       cwd=ROOT, capture_output=True, text=True, check=False)
  assert out.returncode == 2 and out.stderr.startswith(f'error: --root={tmp_path}: already holds')
  assert 'Traceback' not in out.stderr and out.stdout == ''


@pytest.mark.slow
def test_psm_parity_transformer_regenerates(tmp_path):
  """The real command (500 steps, ~1-2 min on 2 cores) against the committed parity results."""
  out = subprocess.run([sys.executable, '-m', 'experiments.reproduce', '--only=psm_parity_transformer',
                        f'--root={tmp_path}'], cwd=ROOT, capture_output=True, text=True, check=False)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  rows = [l for l in out.stdout.splitlines() if l.startswith('| psm_parity_transformer |')]
  assert len(rows) == 6 and all(l.endswith('| ok |') for l in rows), out.stdout
  with open(tmp_path / 'psm_parity_transformer' / 'results.json', encoding='utf-8') as f:
    assert json.load(f)['results'][0]['steps'] == 500
