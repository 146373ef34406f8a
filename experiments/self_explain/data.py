"""Subject-swap prompt pairs, patching labels and the explainer prompt of the activation-patching task.

Fact prompts: jaxlab's own table (bigbench qa_wikidata is not pinned offline: a 342 MB sdist; see
jaxlab/data/assets.py): four relation templates about a country, each country one SmolLM2 token (with its
leading space), so the original and counterfactual prompts have the same length and the subject at the same
position. Labels come from patching SmolLM2 itself (jaxlab.interp.explain.chunk_patch).
"""

from __future__ import annotations

import numpy as np

COUNTRIES = (
    'France Japan Germany Italy Spain China India Russia Brazil Canada Mexico Egypt Greece Turkey Poland Sweden '
    'Norway Finland Denmark Ireland Portugal Austria Belgium Netherlands Switzerland Hungary Romania Ukraine Iran '
    'Iraq Israel Pakistan Vietnam Thailand Indonesia Korea Australia Argentina Chile Peru Colombia Cuba Kenya '
    'Nigeria Morocco Ethiopia Ghana Scotland England Wales Nepal Syria Jordan Lebanon Qatar Bulgaria Serbia '
    'Croatia Iceland Jamaica Venezuela Bolivia Uruguay Algeria Libya Tunisia Sudan Afghanistan Bangladesh '
    'Singapore Malaysia Philippines Mongolia Taiwan Lithuania Latvia Estonia').split()

TEMPLATES = (
    'The capital of {} is',
    'The official language of {} is',
    'The currency used in {} is the',
    'The largest city in {} is',
)

CHUNKS = ((0, 8), (8, 16), (16, 24), (24, 30))   # layer ranges [lo, hi) of SmolLM2's 30 layers (the issue's)

# The paper's activation-patching prompt (one of its five templates), with the continuous token in place
# of {feat}; the layer chunk is written inclusively ("0-7").
EXPLAIN_PROMPT = ('If feature {feat} at layer {layers} is added to tokens <{tok}> when processing the text '
                  '<<<{text}>>>, how would the output change?\n')


def subject_pairs(num_partners: int, seed: int, countries=COUNTRIES, templates=TEMPLATES):
  """[(template index, original country, counterfactual country)], `num_partners` random partners each."""
  rng = np.random.default_rng(seed)
  out = []
  for ti in range(len(templates)):
    for x in countries:
      others = [c for c in countries if c != x]
      for y in rng.choice(others, size=min(num_partners, len(others)), replace=False):
        out.append((ti, x, str(y)))
  return out


def split_prompt(template: str, subject: str, tokenize) -> tuple[list[int], int]:
  """(token ids, subject position) of the filled template; the subject must be one token."""
  head = template.split('{}')[0].rstrip(' ')
  ids_head = tokenize(head)
  ids_subj = tokenize(' ' + subject)
  if len(ids_subj) != 1:
    raise ValueError(f'subject {subject!r} is {len(ids_subj)} tokens; the fact table needs single-token subjects')
  ids = tokenize(template.format(subject))
  if ids[:len(ids_head) + 1] != ids_head + ids_subj:
    raise ValueError(f'template {template!r} does not tokenize around the subject {subject!r}')
  return ids, len(ids_head)


def balance(rows: list[dict], seed: int) -> list[dict]:
  """Equal numbers of changed and unchanged rows (random subsample of the larger class)."""
  rng = np.random.default_rng(seed)
  ch = [r for r in rows if r['changed']]
  un = [r for r in rows if not r['changed']]
  n = min(len(ch), len(un))
  pick = lambda xs: [xs[i] for i in sorted(rng.choice(len(xs), size=n, replace=False))]  # noqa: E731
  out = pick(ch) + pick(un)
  return [out[i] for i in rng.permutation(len(out))]
