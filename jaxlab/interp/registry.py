"""Attention programs as data: a registry of named, documented callables loaded from a folder.

Every public top-level function `f(tokens, text)` of every *.py file in the folder is a program
(helpers start with '_'). The bundled library lives in jaxlab/interp/programs/; `load_folder` reads
any other folder the same way (trusted code: proposed programs go through `proposer.load_program_source`).
"""

from __future__ import annotations

import dataclasses
import inspect
import pathlib
from typing import Callable

import numpy as np

LIBRARY_DIR = pathlib.Path(__file__).parent / 'programs'


@dataclasses.dataclass(frozen=True)
class Program:
  name: str
  doc: str
  fn: Callable[[list[str], str], np.ndarray]
  source: str = ''

  def __call__(self, tokens: list[str], text: str) -> np.ndarray:
    return self.fn(tokens, text)


def programs_from_namespace(ns: dict, source: str, prefix: str = '') -> list[Program]:
  out = []
  for name, obj in ns.items():
    if name.startswith('_') or not inspect.isfunction(obj) or obj.__module__ != ns.get('__name__'):
      continue
    params = list(inspect.signature(obj).parameters)
    if params[:2] != ['tokens', 'text']:
      continue
    out.append(Program(prefix + name, inspect.getdoc(obj) or '', obj, source))
  return out


def load_folder(folder: str | pathlib.Path = LIBRARY_DIR) -> dict[str, Program]:
  """name -> Program for every program in folder/*.py (sorted by file, then definition order)."""
  registry: dict[str, Program] = {}
  for path in sorted(pathlib.Path(folder).glob('*.py')):
    if path.name.startswith('_'):
      continue
    source = path.read_text()
    ns = {'__name__': f'jaxlab_programs.{path.stem}'}
    exec(compile(source, str(path), 'exec'), ns)  # pylint: disable=exec-used
    for prog in programs_from_namespace(ns, source):
      if prog.name in registry:
        raise ValueError(f'Duplicate program name {prog.name!r} in {path}.')
      registry[prog.name] = prog
  return registry


def check_matrix(m, n: int, atol: float = 1e-6) -> np.ndarray:
  """Validates a program output: [n, n], finite, non-negative, causal, rows summing to 1."""
  m = np.asarray(m, np.float64)
  if m.shape != (n, n):
    raise ValueError(f'program returned shape {m.shape}, expected ({n}, {n}).')
  if not np.all(np.isfinite(m)) or (m < -atol).any():
    raise ValueError('program returned non-finite or negative weights.')
  if n and np.abs(np.triu(m, 1)).max() > atol:
    raise ValueError('program is not causal (weight on future tokens).')
  if n and np.abs(m.sum(-1) - 1).max() > 1e-4:
    raise ValueError('program rows do not sum to 1.')
  return m
