"""BIG-bench JSON tasks read from the pinned bigbench 1.0.0 sdist (asset 'bigbench'), never installed.

The sdist is 358 MB; `jaxlab.data.assets` extracts only the task files listed in the asset's `extract`
(qa_wikidata, known_unknowns, ...), so the cache holds a few MB. A task file is BIG-bench's JSON: a dict
with 'examples', each {'input': str, 'target': str | list[str]} (or 'target_scores' for multiple choice).

    items = bigbench.cloze_items('qa_wikidata')   # 20,442 (input, [answers], relation) cloze items
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from jaxlab.data import assets

def task_path(name: str, cache_dir: str | os.PathLike[str] | None = None):
  """The task.json of BIG-bench task `name` (one of the asset's extracted tasks)."""
  return assets.path('bigbench', f'{assets.BIGBENCH_ROOT}/{name}/task.json', cache_dir)


def load_task(name: str, cache_dir: str | os.PathLike[str] | None = None) -> dict:
  """The parsed task.json of BIG-bench task `name`."""
  with open(task_path(name, cache_dir), encoding='utf-8') as f:
    return json.load(f)


@dataclasses.dataclass(frozen=True)
class Cloze:
  """One cloze item: the prompt to continue, its gold answers (the first is the canonical one), a group key."""

  prompt: str
  answers: tuple[str, ...]
  relation: str


_RELATION = re.compile(r'^The (.+?) of ')  # qa_wikidata inputs read "The <relation> of <subject> is"


def cloze_items(name: str = 'qa_wikidata', cache_dir: str | os.PathLike[str] | None = None) -> list[Cloze]:
  """The task's examples as `Cloze` items, in file order; `relation` is qa_wikidata's "The <relation> of"."""
  out = []
  for ex in load_task(name, cache_dir)['examples']:
    target = ex['target']
    answers = (target,) if isinstance(target, str) else tuple(target)
    m = _RELATION.match(ex['input'])
    out.append(Cloze(ex['input'], answers, m.group(1) if m else ''))
  return out
