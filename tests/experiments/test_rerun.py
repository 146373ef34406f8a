"""A rerun never destroys results: every experiment binary's tiny config runs twice in one workdir.

The first run goes in-process through the binary's recorded ``run`` (what its absl ``main`` calls); the
second is the command line a user would type again. The rerun must say that the run is finished, exit 0
and change no file of the workdir (results byte-identical, no TensorBoard event file added, no
checkpoint). lm runs in the default suite; the others are slow (tens of seconds to minutes each).
Also: no experiment imports another experiment's main module.
"""

import importlib
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORDS = ('the king and the queen of the north rode to the sea while the old man sang of war and love '
         'in the hall of the castle , and every lord and lady listened till the fire went out . ')

# Binaries without a workdir or results: excluded from the rerun test, with the reason.
EXCLUDED = {'chat': 'interactive: answers prompts on stdout, keeps no workdir and no results'}


def _corpus(tmp_path):
  path = tmp_path / 'corpus.txt'
  path.write_text('\n'.join(WORDS for _ in range(40)))
  return {'data.corpus': 'files', 'data.text_files': (str(path),)}


def _arc_tasks(tmp_path):
  """One small ARC task (flip left-right) as a task folder."""
  rng = np.random.default_rng(0)
  pairs = []
  for _ in range(4):
    x = rng.integers(0, 3, size=(3, 3))
    pairs.append({'input': x.tolist(), 'output': np.fliplr(x).tolist()})
  folder = tmp_path / 'arc'
  folder.mkdir()
  (folder / 'flip.json').write_text(json.dumps({'train': pairs[:3], 'test': pairs[3:]}))
  return {'data.task_dir': str(folder), 'data.task_ids': (), 'ttt.steps': 2, 'ttt.num_pseudo_tasks': 2,
          'ttt.view_tasks': 2, 'ttt.draws': 1, 'ttt.batch_size': 4, 'ttt.warmup_steps': 1, 'num_renders': 0}


# name -> (module, recorded run function, config file:arg, overrides(tmp_path) -> {dotted key: value}, marks)
CASES = {
    'lm': ('experiments.lm.main', 'run', 'experiments/lm/configs/default.py:tiny', lambda t: {}, ()),
    'elf': ('experiments.elf.main', 'run', 'experiments/elf/configs/default.py:tiny',
            lambda t: {**_corpus(t), 'optimizer.name': 'adamw'}, (pytest.mark.slow,)),
    'psm': ('experiments.psm.main', 'run', 'experiments/psm/configs/s5.py:tiny', lambda t: {}, (pytest.mark.slow,)),
    'rlcr': ('experiments.rlcr.main', 'run_any', 'experiments/rlcr/configs/default.py:tiny',
             lambda t: {'arms': ('rlcr',), 'eval.sets': ('id',)}, (pytest.mark.slow,)),
    'multi_answer': ('experiments.multi_answer.main', 'run', 'experiments/multi_answer/configs/default.py:tiny',
                     lambda t: {'arms': ('multi_rlcr',)}, (pytest.mark.slow,)),
    'varc': ('experiments.varc.main', 'run', 'experiments/varc/configs/ttt.py:tiny', _arc_tasks,
             (pytest.mark.slow,)),
    'attn_programs': ('experiments.attn_programs.main', 'run', 'experiments/attn_programs/configs/smollm2.py:tiny',
                      lambda t: {}, (pytest.mark.slow,)),
    'hypnosis': ('experiments.hypnosis.main', 'run', 'experiments/hypnosis/configs/default.py:tiny',
                 lambda t: {}, (pytest.mark.slow,)),
    'gd_prompting': ('experiments.gd_prompting.main', 'run', 'experiments/gd_prompting/configs/default.py:tiny',
                     lambda t: {}, (pytest.mark.slow,)),
    'own_words': ('experiments.own_words.main', 'run', 'experiments/own_words/configs/default.py:tiny',
                  lambda t: {}, (pytest.mark.slow,)),
    'visual_skill': ('experiments.visual_skill.main', 'run', 'experiments/visual_skill/configs/default.py:tiny',
                     lambda t: {}, (pytest.mark.slow,)),
    'circuits': ('experiments.circuits.main', 'run', 'experiments/circuits/configs/default.py:tiny',
                 lambda t: {}, (pytest.mark.slow,)),
    'multimodal_saes': ('experiments.multimodal_saes.main', 'run',
                        'experiments/multimodal_saes/configs/default.py:tiny', lambda t: {}, (pytest.mark.slow,)),
    'self_ctrl': ('experiments.self_ctrl.main', 'run_recorded', 'experiments/self_ctrl/configs/default.py:tiny',
                  lambda t: {}, (pytest.mark.slow,)),
    'student_traces': ('experiments.student_traces.main', 'run',
                       'experiments/student_traces/configs/default.py:tiny', lambda t: {}, (pytest.mark.slow,)),
    'saia': ('experiments.saia.main', 'run', 'experiments/saia/configs/default.py:tiny', lambda t: {},
             (pytest.mark.slow,)),
    'concur': ('experiments.concur.main', 'run', 'experiments/concur/configs/default.py:tiny', lambda t: {},
               (pytest.mark.slow,)),
    'self_explain': ('experiments.self_explain.main', 'run', 'experiments/self_explain/configs/default.py:tiny',
                     lambda t: {}, (pytest.mark.slow,)),
}


def _load_config(spec: str, overrides: dict):
  path, _, arg = spec.partition(':')
  mod = importlib.import_module(path[:-3].replace('/', '.'))
  cfg = mod.get_config(arg or None)
  with cfg.unlocked():
    for key, value in overrides.items():
      *parents, leaf = key.split('.')
      target = cfg
      for p in parents:
        target = target[p]
      target[leaf] = value
  return cfg


def _files(workdir) -> dict[str, bytes]:
  out = {}
  for d, _, names in os.walk(workdir):
    for n in names:
      p = os.path.join(d, n)
      with open(p, 'rb') as f:
        out[os.path.relpath(p, workdir)] = f.read()
  return out


def test_every_binary_is_covered():
  binaries = sorted(p.parent.name for p in (ROOT / 'experiments').glob('*/main.py'))
  assert binaries == sorted(set(CASES) | set(EXCLUDED))
  for name, (module, fn, *_) in CASES.items():
    assert getattr(importlib.import_module(module), fn).run_record, f'{module}.{fn} is not @runrecord.recorded'


@pytest.mark.parametrize('name', [pytest.param(n, marks=CASES[n][4]) for n in CASES])
def test_rerun_of_a_finished_run_changes_nothing(tmp_path, name):
  module, fn, spec, overrides_of, _ = CASES[name]
  overrides = overrides_of(tmp_path)
  workdir = str(tmp_path / 'run')
  first = getattr(importlib.import_module(module), fn)(_load_config(spec, overrides), workdir)
  assert first, 'the first run returned no results'
  before = _files(workdir)
  assert json.loads(before['run.json'])['status'] == 'finished'
  cmd = [sys.executable, '-m', module, f'--config={spec}', f'--workdir={workdir}']
  cmd += [f'--config.{k}={v!r}' if isinstance(v, tuple) else f'--config.{k}={v}' for k, v in overrides.items()]
  proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert re.search(rf'run in {re.escape(workdir)} is finished \(results in .*results.*\); nothing to do', proc.stdout)
  assert 'Traceback' not in proc.stderr
  after = _files(workdir)
  assert sorted(after) == sorted(before)          # no TensorBoard event file, checkpoint or metrics added
  assert after == before                          # results (and every other file) byte-identical


def test_no_experiment_imports_another_experiments_main():
  pattern = re.compile(r'^\s*(?:from\s+experiments\.(\w+)\.main\s+import|from\s+experiments\.(\w+)\s+import\s+main\b'
                       r'|import\s+experiments\.(\w+)\.main)', re.M)
  offenders = []
  for path in (ROOT / 'experiments').rglob('*.py'):
    own = path.relative_to(ROOT / 'experiments').parts[0]
    for m in pattern.finditer(path.read_text()):
      other = next(g for g in m.groups() if g)
      if other != own:
        offenders.append(f'{path.relative_to(ROOT)} imports experiments.{other}.main')
  assert not offenders, offenders
