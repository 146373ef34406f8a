"""Calibration metrics for verbalised confidence: accuracy, Brier, ECE, AUROC, reliability diagrams, voting.

Conventions follow the RLCR evaluation code (damanimehul/RLCR eval/eval_utils.py):

* Brier = mean (q - c)² over examples, c ∈ {0, 1} correctness, q ∈ [0, 1] stated confidence.
* ECE with 10 equal-width bins: edges np.linspace(0, 1, 11) with the outer edges opened to ±inf, bin index
  np.digitize(q, edges) - 1, so bin b holds edge_b ≤ q < edge_{b+1} (q = 1 falls in the last bin);
  ECE = Σ_b (n_b / N)·|mean q_b - mean c_b|. Note that on the float grid 0.3 = 0.29999… lies below
  linspace's 0.30000000000000004 and lands in bin 2 (likewise 0.6, 0.7): we keep the official edges so the
  numbers are comparable; it does not change ECE when each grid value sits alone in a bin.
* AUROC of confidence as a score for correctness = P(q_correct > q_wrong) + ½·P(tie) (the Mann-Whitney
  form, equal to sklearn's roc_auc_score); nan when only one class is present.
* Test-time scaling over n samples of one question: plain majority vote, confidence-weighted vote
  (argmax_a Σ_j q_j·1[a_j = a]) and max-confidence selection; ties go to the answer seen first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

NUM_BINS = 10


def _arrays(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
  q = np.asarray(confidence, np.float64).reshape(-1)
  c = np.asarray(correct, np.float64).reshape(-1)
  if q.shape != c.shape:
    raise ValueError(f"confidence has {q.size} entries but correct has {c.size}")
  if q.size == 0:
    raise ValueError("no examples to score")
  if np.any((q < 0) | (q > 1)) or not np.all(np.isfinite(q)):
    raise ValueError("confidences must be finite and in [0, 1] (clip unparseable ones first)")
  return q, c


def accuracy(correct) -> float:
  c = np.asarray(correct, np.float64)
  if c.size == 0:
    raise ValueError("no examples to score")
  return float(c.mean())


def brier(confidence, correct) -> float:
  q, c = _arrays(confidence, correct)
  return float(np.mean((q - c) ** 2))


def bin_indices(confidence, num_bins: int = NUM_BINS) -> np.ndarray:
  """Official bin of each confidence: [n] int in 0..num_bins-1."""
  edges = np.linspace(0, 1, num_bins + 1)
  edges[0], edges[-1] = -np.inf, np.inf
  return np.digitize(np.asarray(confidence, np.float64), edges) - 1


def reliability(confidence, correct, num_bins: int = NUM_BINS) -> dict[str, np.ndarray]:
  """Per-bin counts, mean confidence and accuracy (nan for empty bins)."""
  q, c = _arrays(confidence, correct)
  b = bin_indices(q, num_bins)
  count = np.bincount(b, minlength=num_bins).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    conf = np.bincount(b, weights=q, minlength=num_bins) / count
    acc = np.bincount(b, weights=c, minlength=num_bins) / count
  return {"count": count, "confidence": conf, "accuracy": acc}


def ece(confidence, correct, num_bins: int = NUM_BINS) -> float:
  r = reliability(confidence, correct, num_bins)
  full = r["count"] > 0
  return float(np.sum(r["count"][full] / r["count"].sum() * np.abs(r["confidence"][full] - r["accuracy"][full])))


def auroc(confidence, correct) -> float:
  """Area under the ROC curve of confidence for correctness (ties count ½); nan with a single class."""
  q, c = _arrays(confidence, correct)
  pos, neg = q[c > 0.5], q[c <= 0.5]
  if len(pos) == 0 or len(neg) == 0:
    return float("nan")
  order = np.argsort(q, kind="mergesort")
  ranks = np.empty(len(q))
  sorted_q = q[order]
  # Average ranks over ties (1-based).
  starts = np.r_[0, np.flatnonzero(np.diff(sorted_q)) + 1]
  ends = np.r_[starts[1:], len(q)]
  for s, e in zip(starts, ends):
    ranks[order[s:e]] = (s + e + 1) / 2.0
  u = ranks[c > 0.5].sum() - len(pos) * (len(pos) + 1) / 2.0
  return float(u / (len(pos) * len(neg)))


def summary(confidence, correct) -> dict[str, float]:
  """accuracy, mean confidence, Brier, ECE, AUROC of one evaluation set."""
  q, c = _arrays(confidence, correct)
  return {"accuracy": float(c.mean()), "confidence": float(q.mean()), "brier": brier(q, c), "ece": ece(q, c),
          "auroc": auroc(q, c)}


def reliability_diagram(curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: str,
                        title: str = "", num_bins: int = NUM_BINS, ylabel: str = "accuracy") -> str:
  """Writes a PNG reliability diagram with one line per named (confidence, correct) set; returns path.

  ``correct`` may be any target in [0, 1] (e.g. the true probability of each answer; then pass ``ylabel``):
  the y value of a bin is its mean target and the legend's ECE the binned |confidence - target| gap.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=120)
  ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="calibrated")
  for name, (q, c) in curves.items():
    r = reliability(q, c, num_bins)
    full = r["count"] > 0
    ax.plot(r["confidence"][full], r["accuracy"][full], marker="o", markersize=3,
            label=f"{name} (ECE {ece(q, c, num_bins):.3f})")
  ax.set_xlim(0, 1)
  ax.set_ylim(0, 1)
  ax.set_xlabel("stated confidence (bin mean)")
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7, loc="upper left")
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)
  return path


def _pick(scores: dict[str, float]) -> str | None:
  return max(scores, key=scores.get) if scores else None  # dicts keep first-seen order: ties go to it


def majority_vote(answers: Sequence[str | None]) -> str | None:
  scores: dict[str, float] = {}
  for a in answers:
    if a is not None:
      scores[a] = scores.get(a, 0.0) + 1.0
  return _pick(scores)


def weighted_vote(answers: Sequence[str | None], confidences: Sequence[float]) -> str | None:
  scores: dict[str, float] = {}
  for a, q in zip(answers, confidences):
    if a is not None:
      scores[a] = scores.get(a, 0.0) + float(q)
  return _pick(scores)


def max_confidence(answers: Sequence[str | None], confidences: Sequence[float]) -> str | None:
  best, best_q = None, -np.inf
  for a, q in zip(answers, confidences):
    if a is not None and q > best_q:
      best, best_q = a, q
  return best
