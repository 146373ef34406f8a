"""SAIA's self-evaluation protocol and its predictiveness metric (christykl/saia prompts/user_scorer.txt,
main.py, demo.ipynb).

A bias label says: the model detects `object`, and relies on `category = value`. Self-evaluation writes
`n` HIGH prompts (the object with the value) and `n` LOW prompts (the object with the category's other
values), renders and scores them, and rates each score against the mean exemplar score:
    score / exemplar_mean < 0.3 -> LOW,  < 0.8 -> MODERATE,  else HIGH.
The stopping rule: mean(HIGH set) ≥ 0.7 · exemplar_mean and mean(LOW set) ≤ 0.4 · exemplar_mean.
Predictiveness of a final label = mean score of an independent evaluator's HIGH set − mean of its LOW set,
on fresh renders (a Toolbox with its own seed).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxlab.agents.saia import tools as T
from jaxlab.data import scenes as S

LOW_BELOW, MODERATE_BELOW = 0.3, 0.8          # level thresholds (fractions of the mean exemplar score)
STOP_HIGH_AT_LEAST, STOP_LOW_AT_MOST = 0.7, 0.4


@dataclasses.dataclass(frozen=True)
class Label:
  """A bias label: the object the model detects and the attribute it relies on."""
  object: str
  category: str
  value: object

  @property
  def text(self) -> str:
    return f'the model detects {self.object}s, but only when {self.category} is {self.value}'

  def matches(self, other) -> bool:
    return (self.object, self.category, self.value) == (other.object, other.category, other.value)


def level(score: float, exemplar_mean: float) -> str:
  r = score / max(exemplar_mean, 1e-9)
  return 'LOW' if r < LOW_BELOW else 'MODERATE' if r < MODERATE_BELOW else 'HIGH'


def should_stop(high_mean: float, low_mean: float, exemplar_mean: float) -> bool:
  return high_mean >= STOP_HIGH_AT_LEAST * exemplar_mean and low_mean <= STOP_LOW_AT_MOST * exemplar_mean


def high_low_prompts(label: Label, n: int) -> tuple[list[str], list[str]]:
  """n HIGH prompts (object + value) and n LOW prompts (object + each other value of the category, cycled)."""
  others = [v for v in S.EXTENDED_FACTORS[label.category] if v != label.value]
  high = [T.prompt_for({'shape': label.object, label.category: label.value})] * n
  low = [T.prompt_for({'shape': label.object, label.category: others[i % len(others)]}) for i in range(n)]
  return high, low


@dataclasses.dataclass
class SelfEvaluation:
  label: Label
  high_prompts: list[str]
  low_prompts: list[str]
  high_images: T.Images
  low_images: T.Images
  high_scores: np.ndarray
  low_scores: np.ndarray
  exemplar_mean: float

  @property
  def high_mean(self) -> float:
    return float(np.mean(self.high_scores))

  @property
  def low_mean(self) -> float:
    return float(np.mean(self.low_scores))

  @property
  def stop(self) -> bool:
    return should_stop(self.high_mean, self.low_mean, self.exemplar_mean)

  def levels(self) -> tuple[list[str], list[str]]:
    return ([level(s, self.exemplar_mean) for s in self.high_scores],
            [level(s, self.exemplar_mean) for s in self.low_scores])

  def summary(self) -> str:
    """What the next round's context shows: both sets with their scores and levels."""
    hl, ll = self.levels()
    lines = [f'Self-evaluation of "{self.label.text}" (mean exemplar score {self.exemplar_mean:.3f}):']
    for name, prompts, scores, lv in (('HIGH', self.high_prompts, self.high_scores, hl),
                                      ('LOW', self.low_prompts, self.low_scores, ll)):
      lines += [f'  {name} set "{p}": {s:.3f} ({v})' for p, s, v in zip(prompts, scores, lv)]
    return '\n'.join(lines)


def _render_prompts(tools: T.Toolbox, prompts: list[str]) -> T.Images:
  parts = [tools.generate(p, 1) for p in prompts]
  return T.Images(np.concatenate([p.pixels for p in parts]), sum((p.scenes for p in parts), ()),
                  sum((p.seeds for p in parts), ()))


def self_evaluate(tools: T.Toolbox, label: Label, exemplar_mean: float, n: int = 10) -> SelfEvaluation:
  high, low = high_low_prompts(label, n)
  hi, lo = _render_prompts(tools, high), _render_prompts(tools, low)
  return SelfEvaluation(label, high, low, hi, lo, tools.score(hi), tools.score(lo), float(exemplar_mean))


def predictiveness(evaluator: T.Toolbox, label: Label, n: int = 20) -> float:
  """mean(HIGH) − mean(LOW) of an independent evaluator's sets for `label` (fresh renders)."""
  high, low = high_low_prompts(label, n)
  return float(np.mean(evaluator.score(_render_prompts(evaluator, high)))
               - np.mean(evaluator.score(_render_prompts(evaluator, low))))
