"""Graded task families for routing: reasoning-gym generators with their own checkers.

`FAMILIES` names each family's reasoning-gym module and a config small enough that SmolLM2-135M and Gemma 3
270M are neither all right nor all wrong on it. `make_tasks(families, n, seed)` draws `n` items per family
(`Task`: id, family, question, gold answer, and `correct(prediction)` through the generator's
`score_answer`, counted right only at full credit 1.0: reasoning-gym gives partial credit for near misses).

The generators are imported from the 'reasoning-gym' asset's source (the package itself is not installed:
its `__init__` imports all 106 generators and their dependencies), as `jaxlab.data.rl_tasks` does for
basic_arithmetic, with empty parent packages for the subpackages used here.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import types
from typing import Any

from jaxlab.data import assets, rl_tasks

# family -> (module under reasoning_gym, class prefix, config fields)
FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    'basic_arithmetic': ('arithmetic.basic_arithmetic', 'BasicArithmetic',
                         dict(min_terms=2, max_terms=2, min_digits=1, max_digits=2, allow_parentheses=False)),
    'chain_sum': ('arithmetic.chain_sum', 'ChainSum', dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2)),
    'products': ('arithmetic.products', 'Products', dict(min_digits=1, max_digits=2)),
    'leg_counting': ('arithmetic.leg_counting', 'LegCounting', dict(min_animals=1, max_animals=2, max_instances=3)),
    'letter_counting': ('algorithmic.letter_counting', 'LetterCounting', dict(min_words=3, max_words=6)),
    'family_relationships': ('graphs.family_relationships', 'FamilyRelationships', {}),
    'gcd': ('arithmetic.gcd', 'GCD', dict(max_value=50)),
    'spell_backward': ('algorithmic.spell_backward', 'SpellBackward', dict(min_word_len=3, max_word_len=5)),
}
# Families whose gold answer is an integer (the answer extractor falls back to the last number for these).
NUMERIC = frozenset({'basic_arithmetic', 'chain_sum', 'products', 'leg_counting', 'letter_counting', 'gcd'})


@dataclasses.dataclass(frozen=True)
class Task:
  """One routing task: a question, its gold answer and the generator's checker."""
  id: str
  family: str
  question: str
  answer: str
  entry: dict = dataclasses.field(repr=False, compare=False)
  dataset: Any = dataclasses.field(repr=False, compare=False)

  def correct(self, prediction: str | None) -> bool:
    """Full credit under the generator's own `score_answer`."""
    if prediction is None:
      return False
    return float(self.dataset.score_answer(prediction, self.entry)) >= 1.0 - 1e-9


def _generators_root():
  rl_tasks._reasoning_gym_basic_arithmetic()  # pylint: disable=protected-access  # sets up reasoning_gym.*
  root = assets.fetch('reasoning-gym') / 'reasoning_gym'
  for sub in ('algorithmic', 'graphs'):
    name = f'reasoning_gym.{sub}'
    if name not in sys.modules:
      mod = types.ModuleType(name)
      mod.__path__ = [str(root / sub)]
      sys.modules[name] = mod
  if 'reasoning_gym.data' not in sys.modules:  # word lists (letter_counting, spell_backward)
    spec = importlib.util.spec_from_file_location('reasoning_gym.data', root / 'data' / '__init__.py',
                                                  submodule_search_locations=[str(root / 'data')])
    mod = importlib.util.module_from_spec(spec)
    sys.modules['reasoning_gym.data'] = mod
    spec.loader.exec_module(mod)
  return root


def dataset(family: str, n: int, seed: int):
  """The reasoning-gym dataset object of `family` with `n` items."""
  if family not in FAMILIES:
    raise ValueError(f'unknown task family {family!r}; expected one of {sorted(FAMILIES)}')
  _generators_root()
  module, prefix, config = FAMILIES[family]
  mod = importlib.import_module(f'reasoning_gym.{module}')
  config_cls = getattr(mod, f'{prefix}Config', None) or getattr(mod, f'{prefix}DatasetConfig')
  cfg = config_cls(seed=seed, size=n, **config)
  return getattr(mod, f'{prefix}Dataset')(cfg)


def make_tasks(families, n: int, seed: int) -> list[Task]:
  """`n` tasks per family (ids 'family/i'), in family order."""
  out = []
  for k, family in enumerate(families):
    ds = dataset(family, n, seed + 1000 * k)
    for i in range(n):
      e = ds[i]
      out.append(Task(f'{family}/{i}', family, e['question'], str(e['answer']), e, ds))
  return out
