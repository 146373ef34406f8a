"""The Colab notebooks of experiments/notebooks/ run top to bottom, as a Colab user would run them.

Each notebook is executed with nbclient in a fresh ipykernel, in an empty working folder, with tiny settings
(JAXLAB_NOTEBOOK_TINY=1). Its install cell gets JAXLAB_INSTALL_SPEC=<this checkout>, which makes it put the
checkout on sys.path instead of pip-installing jaxlab from its git URL: nothing is installed into the
environment the tests share. The kernel sees one CPU device (the test session's 8 fake devices are not
passed on), like Colab's CPU runtime. Any cell error fails the test; the notebooks assert their own claims
(e.g. parallel == recurrent) and the test checks what they print.

All are slow-marked (the default suite's 12-minute budget), and `.ci/run` runs them once after it: the PSM
notebook, the SmolLM2 and training notebooks, and a run of the PSM notebook whose install cell really
pip-installs jaxlab (into a throwaway venv):
  python -m pytest -q -m slow tests/experiments/test_notebooks.py
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import nbclient
import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / 'experiments' / 'notebooks'


def _builder():
  spec = importlib.util.spec_from_file_location('notebook_build', NOTEBOOKS / 'build.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _text(nb) -> str:
  """Everything the notebook printed (streams and text/plain results)."""
  parts = []
  for cell in nb.cells:
    for out in cell.get('outputs', []):
      if out.get('output_type') == 'stream':
        parts.append(out['text'])
      elif 'data' in out and 'text/plain' in out['data']:
        parts.append(out['data']['text/plain'])
  return ''.join(parts)


def _images(nb) -> int:
  return sum('image/png' in out.get('data', {}) for cell in nb.cells for out in cell.get('outputs', []))


def _execute(name: str, workdir: pathlib.Path, install_spec: str = str(ROOT), kernel_name: str = 'python3',
             extra_cells: tuple[str, ...] = ()):
  """Runs the notebook top to bottom in a fresh kernel with cwd `workdir`; returns it with its outputs."""
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  nb.cells.extend(nbformat.v4.new_code_cell(source) for source in extra_cells)
  # A Colab-like kernel: one CPU device (no fake devices), matplotlib's inline backend (no MPLBACKEND).
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'MPLBACKEND')}
  env.update(JAXLAB_INSTALL_SPEC=install_spec, JAXLAB_NOTEBOOK_TINY='1', JAX_PLATFORMS='cpu')
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name=kernel_name,
                                   resources={'metadata': {'path': str(workdir)}})
  t0 = time.perf_counter()
  client.execute(env=env)  # raises CellExecutionError on the first failing cell
  print(f'{name}: {time.perf_counter() - t0:.1f} s')
  return nb


def test_notebooks_are_built_from_build_py_without_outputs():
  build = _builder()
  assert sorted(build.NOTEBOOKS) == sorted(p.name for p in NOTEBOOKS.glob('*.ipynb'))
  for name in build.NOTEBOOKS:
    committed = (NOTEBOOKS / name).read_text(encoding='utf-8')
    assert committed == build.render(name), f'{name} is stale: run python experiments/notebooks/build.py'
    nb = nbformat.reads(committed, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == 'code']
    assert all(not c.outputs and c.execution_count is None for c in code), name
    assert code[0].source == build.INSTALL, f'{name} does not start with the install cell'


def test_install_cell_refuses_the_placeholder_url(monkeypatch):
  """Without JAXLAB_INSTALL_SPEC and an unedited JAXLAB_GIT_URL, the install cell stops with one clear line."""
  monkeypatch.delenv('JAXLAB_INSTALL_SPEC', raising=False)
  with pytest.raises(ValueError, match='Set JAXLAB_GIT_URL'):
    exec(_builder().INSTALL, {})  # pylint: disable=exec-used


@pytest.mark.slow
def test_psm_mixer_notebook(tmp_path):
  nb = _execute('psm_mixer.ipynb', tmp_path)
  text = _text(nb)
  for line in ('max |chunkwise - parallel|', 'max |recurrent - parallel|', 'mlstm: max',
               'max |grad chunkwise - grad parallel|'):
    assert line in text


@pytest.mark.slow
def test_psm_mixer_notebook_with_jaxlab_pip_installed(tmp_path, monkeypatch):
  """The install cell's pip branch, as on Colab: it pip-installs jaxlab (non-editable, from this checkout's
  files instead of the git URL) into the kernel's environment, a throwaway venv that sees the test
  environment's packages (so only jaxlab itself is installed, and only there)."""
  venv = tmp_path / 'venv'
  subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages', str(venv)], check=True)
  spec_dir = tmp_path / 'jupyter' / 'kernels' / 'jaxlab-venv'
  spec_dir.mkdir(parents=True)
  (spec_dir / 'kernel.json').write_text(json.dumps({
      'argv': [str(venv / 'bin' / 'python'), '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
      'display_name': 'jaxlab venv', 'language': 'python'}))
  monkeypatch.setenv('JUPYTER_PATH', str(tmp_path / 'jupyter'))
  run = tmp_path / 'run'
  run.mkdir()
  nb = _execute('psm_mixer.ipynb', run, install_spec=f'jaxlab @ {ROOT.as_uri()}', kernel_name='jaxlab-venv',
                extra_cells=('import jaxlab; print("jaxlab from", jaxlab.__file__)',))
  text = _text(nb)
  assert f'jaxlab from {venv}' in text, text
  assert 'max |recurrent - parallel|' in text


@pytest.mark.slow
def test_smollm2_chat_attention_notebook(tmp_path):
  nb = _execute('smollm2_chat_attention.ipynb', tmp_path)
  text = _text(nb)
  assert 'ASSISTANT: The capital of France is Paris' in text, text
  assert 'most previous-token-like head' in text
  assert _images(nb) == 2  # the two heads with token labels, the per-head score map


@pytest.mark.slow
def test_train_tiny_lm_notebook(tmp_path):
  nb = _execute('train_tiny_lm.ipynb', tmp_path)
  text = _text(nb)
  assert "'perplexity'" in text and 'ROMEO:' in text
  assert _images(nb) >= 1  # the live loss plot (one display, updated in place)
  workdir = tmp_path / 'workdirs' / 'notebook_tiny_lm'
  rows = [json.loads(line) for line in (workdir / 'metrics.jsonl').read_text().splitlines()]
  assert [r['step'] for r in rows if 'train/loss' in r] == [5, 10, 15, 20]
  assert [r['step'] for r in rows if 'eval/perplexity' in r] == [10, 20]
  assert (workdir / 'tb').is_dir()
