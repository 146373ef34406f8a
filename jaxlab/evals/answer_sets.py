"""Metrics for sets of candidate answers with confidences (multi-answer RL).

A set is K candidates (answer_i, p_i) from one completion (Multi-RLVR / Multi-RLCR) or from k samples of a
single-answer model (`from_samples`: the distinct answers with their vote shares). Definitions (after the
multi-answer paper and its reward code, ishapuri/multi_answer_rl):

* pass@k: a candidate among the k with the highest confidence (stable order on ties) is correct.
* coverage: any candidate is correct (pass@K).
* set-Brier: Σ_i (p_i - y_i)² over the set's candidates, averaged over examples (the reward uses the mean
  over i; the evaluation sums). A set that could not be parsed has no candidates: report `parse_rate`
  beside it.
* diversity: distinct candidates (strip().lower()) / K.
* tokens per set: completion tokens spent on the whole set (k completions for sampled sets).
* Against a known posterior: the posterior mass of the distinct candidates, the recall of the posterior's
  top-K labels, and the mean |p_i - P(answer_i | x)| of stated against true probabilities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from jaxlab.rl.rewards import exact_match


@dataclasses.dataclass(frozen=True)
class AnswerSet:
  answers: tuple[str, ...]
  confidences: tuple[float, ...]
  tokens: int = 0
  parsed: bool = True

  def ranked(self) -> list[tuple[str, float]]:
    """Candidates by confidence, highest first (stable on ties)."""
    return sorted(zip(self.answers, self.confidences), key=lambda t: -t[1])


def from_samples(answers: Sequence[str | None], tokens: int = 0) -> AnswerSet:
  """Distinct answers of k samples with their vote shares as confidences (unparsed samples count in k)."""
  k = len(answers)
  counts: dict[str, int] = {}
  for a in answers:
    if a is not None:
      counts[a] = counts.get(a, 0) + 1
  return AnswerSet(tuple(counts), tuple(c / k for c in counts.values()), tokens, parsed=bool(counts))


IsCorrect = Callable[[str, object], bool]


def _correct(s: AnswerSet, gold, is_correct: IsCorrect) -> list[float]:
  return [float(bool(a) and bool(is_correct(a, gold))) for a in s.answers]


def pass_at(sets: Sequence[AnswerSet], golds: Sequence, k: int, is_correct: IsCorrect = exact_match) -> float:
  if k < 1:
    raise ValueError(f"k={k} must be ≥ 1")
  hits = [any(bool(a) and is_correct(a, g) for a, _ in s.ranked()[:k]) for s, g in zip(sets, golds)]
  return float(np.mean(hits))


def set_brier(sets: Sequence[AnswerSet], golds: Sequence, is_correct: IsCorrect = exact_match) -> float:
  vals = [sum((p - y) ** 2 for p, y in zip(s.confidences, _correct(s, g, is_correct))) for s, g in zip(sets, golds)]
  return float(np.mean(vals))


def flat_pairs(sets: Sequence[AnswerSet], golds: Sequence, is_correct: IsCorrect = exact_match
               ) -> tuple[np.ndarray, np.ndarray]:
  """All (confidence, correct) pairs of all candidates, for ECE / AUROC over candidates."""
  q, c = [], []
  for s, g in zip(sets, golds):
    q += [min(max(p, 0.0), 1.0) for p in s.confidences]
    c += _correct(s, g, is_correct)
  return np.asarray(q), np.asarray(c)


def diversity(sets: Sequence[AnswerSet], k: int) -> float:
  return float(np.mean([len({a.strip().lower() for a in s.answers}) / k for s in sets]))


def posterior_agreement(sets: Sequence[AnswerSet], posteriors: Sequence[np.ndarray], labels: Sequence[str],
                        k: int) -> dict[str, float]:
  """Posterior mass covered, top-k recall and mean |p_i - P(a_i | x)| against the known posterior."""
  index = {lab: i for i, lab in enumerate(labels)}
  mass, recall, err = [], [], []
  for s, post in zip(sets, posteriors):
    distinct = {a for a in s.answers if a in index}
    mass.append(sum(post[index[a]] for a in distinct))
    top = {labels[i] for i in np.argsort(-post, kind="stable")[:k]}
    recall.append(len(top & distinct) / k)
    err += [abs(p - (post[index[a]] if a in index else 0.0)) for a, p in zip(s.answers, s.confidences)]
  return {"posterior_mass": float(np.mean(mass)), "topk_recall": float(np.mean(recall)),
          "confidence_abs_error": float(np.mean(err)) if err else float("nan")}


def summary(sets: Sequence[AnswerSet], golds: Sequence, k: int, is_correct: IsCorrect = exact_match
            ) -> dict[str, float]:
  """pass@1..k, coverage, set-Brier, diversity, tokens per set, parse rate."""
  out = {f"pass@{i}": pass_at(sets, golds, i, is_correct) for i in range(1, k + 1)}
  out.update(coverage=pass_at(sets, golds, max(k, 1), is_correct), set_brier=set_brier(sets, golds, is_correct),
             diversity=diversity(sets, k), tokens_per_set=float(np.mean([s.tokens for s in sets])),
             parse_rate=float(np.mean([s.parsed for s in sets])))
  return out
