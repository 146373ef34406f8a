"""Rewards over decoded text: RLVR, RLCR, a log-score variant, Multi-RLVR and Multi-RLCR.

Every reward here is a plain Python function ``(text, example) -> {component: value}``; the GRPO engine
(jaxlab.rl.grpo) weights and sums the components, so the logged components are exactly what the reward
was made of. ``example['answer']`` is the gold answer; correctness of a candidate is decided by a pluggable
``is_correct(candidate, gold)`` (default: the official normalised exact match).

Read from the official code (damanimehul/RLCR ``reward_fns.py`` and ishapuri/multi_answer_rl
``reward_fns.py``; weights from their configs):

* Single-answer formats are the official anchored regexes (``tabc``: ``…</think> <answer>…</answer>
  <analysis>…</analysis> <confidence>…</confidence>`` and nothing after; ``tac``, ``tbac``, ``ta``), plus
  variants without the ``</think>`` prefix for tiny models trained from scratch (``abc``, ``ac``, ``a``).
  Formats with a confidence also need the last ``<confidence>`` to parse as a float in [0, 1] (we also
  reject nan/inf, which ``float()`` accepts).
* RLVR = 0.5·format + 0.5·accuracy; RLCR = 0.5·format + 0.5·accuracy + 0.5·(1 - (c - q)²). Accuracy (the last
  ``<answer>``) and Brier are 0 when the format fails. The official configs also log the mean confidence and
  the fraction of confidences at 0 or 1 with weight 1e-6; we log them with weight 0.
* Log score (not in the official code; the paper's failure case): the Brier term is replaced by
  c·log q + (1 - c)·log(1 - q) with q clipped to [ε, 1 - ε]. On a format failure it takes its worst value
  log ε (not 0: the log score is ≤ 0, so 0 would make a malformed answer better than any well-formed one).
* Multi-answer (K candidates ``<answer1>…</answer1><confidence1>…</confidence1>…``, in order): format needs
  every numbered tag (and ``<think>``/``</think``/``<analysis>``/``</analysis>`` when ``reasoning_tags``),
  K ordered pairs and confidences that are floats in [0, 1]; the constraint needs K distinct answers
  (``strip().lower()``) and Σp ≤ 1. Multi-RLCR = 0.5·(format·constraint) + 0.5·accuracy + 0.5·brier with
  accuracy = 1[any candidate correct] and brier = 1 - (1/K)Σ(y_i - p_i)², both 0 unless format and
  constraint hold. Multi-RLVR (our reading: the official ``multi_answer`` format and weights without the
  Brier term) = 0.5·(format·constraint) + 0.5·accuracy; ``confidences=False`` gives the official
  answers-only ``multi_answer_rlvr`` variant (no uniqueness/Σp gate there).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

Components = dict[str, float]
RewardFn = Callable[[str, Mapping[str, Any]], Mapping[str, float]]
IsCorrect = Callable[[str, Any], bool]

# Official single-answer formats (RLCR reward_fns.format_reward) and two reasoning-free variants.
SINGLE_FORMATS: dict[str, str] = {
    "tabc": r".*?</think>\s*<answer>.*?</answer>\s*<analysis>.*?</analysis>\s*<confidence>.*?</confidence>\s*\Z",
    "tbac": r".*?</think>\s*<analysis>.*?</analysis>\s*<answer>.*?</answer>\s*<confidence>.*?</confidence>\s*\Z",
    "tac": r".*?</think>\s*<answer>.*?</answer>\s*<confidence>.*?</confidence>\s*\Z",
    "ta": r".*?</think>\s*<answer>.*?</answer>\s*\Z",
    "abc": r".*?<answer>.*?</answer>\s*<analysis>.*?</analysis>\s*<confidence>.*?</confidence>\s*\Z",
    "ac": r".*?<answer>.*?</answer>\s*<confidence>.*?</confidence>\s*\Z",
    "a": r".*?<answer>.*?</answer>\s*\Z",
}
_FLAGS = re.DOTALL | re.MULTILINE
_ANSWER = re.compile(r"<answer>(.*?)</answer>", _FLAGS)
_CONFIDENCE = re.compile(r"<confidence>(.*?)</confidence>", _FLAGS)


def normalize_answer(s: str) -> str:
  """SQuAD/HotpotQA normalisation (official): lower case, no punctuation, no articles, single spaces."""
  s = s.lower()
  s = "".join(ch for ch in s if ch not in set(string.punctuation))
  s = re.sub(r"\b(a|an|the)\b", " ", s)
  return " ".join(s.split())


def exact_match(candidate: str, gold: Any) -> bool:
  """Normalised exact match against one gold string or any of a list of them."""
  golds = gold if isinstance(gold, (list, tuple)) else [gold]
  return any(normalize_answer(candidate) == normalize_answer(str(g)) for g in golds)


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def numeric_match(candidate: str, gold: Any, tol: float = 1e-6) -> bool:
  """The last number in ``candidate`` equals the gold number (commas and $ ignored).

  Stands in for math_verify (used by the official code for math) on integer-answer sets such as GSM8K.
  """
  nums = _NUMBER.findall(candidate.replace("$", ""))
  if not nums:
    return False
  try:
    value, target = float(nums[-1].replace(",", "")), float(str(gold).replace(",", ""))
  except ValueError:
    return False
  return abs(value - target) <= tol * max(1.0, abs(target))


def safe_float(x: str | None) -> float | None:
  """float(x) when it parses and is finite, else None."""
  if x is None:
    return None
  try:
    v = float(x)
  except (TypeError, ValueError):
    return None
  return v if math.isfinite(v) else None


def last_match(pattern: re.Pattern, text: str) -> str | None:
  found = pattern.findall(text)
  return found[-1] if found else None


def single_format_ok(text: str, fmt: str) -> bool:
  """The official format check: the anchored regex, then (for formats with 'c') a confidence in [0, 1]."""
  if fmt not in SINGLE_FORMATS:
    raise ValueError(f"unknown single-answer format {fmt!r}; expected one of {sorted(SINGLE_FORMATS)}")
  if not re.match(SINGLE_FORMATS[fmt], text, _FLAGS):
    return False
  if "c" in fmt:
    q = safe_float(last_match(_CONFIDENCE, text))
    return q is not None and 0.0 <= q <= 1.0
  return True


def parse_single(text: str) -> tuple[str | None, float | None]:
  """(last <answer> content, last <confidence> as a float) with None for what is missing or unparseable."""
  return last_match(_ANSWER, text), safe_float(last_match(_CONFIDENCE, text))


def _single_parts(text: str, example: Mapping[str, Any], fmt: str, is_correct: IsCorrect
                  ) -> tuple[float, float, float | None]:
  """(format ok, correct, confidence) with correct = 0 when the format fails."""
  fmt_ok = single_format_ok(text, fmt)
  answer, q = parse_single(text)
  correct = float(fmt_ok and answer is not None and bool(is_correct(answer, example["answer"])))
  return float(fmt_ok), correct, q


def _confidence_logs(q: float | None) -> Components:
  """Logged only (weight 0): the clipped stated confidence and whether it is 0 or 1 (official logging)."""
  c = 0.0 if q is None else min(max(q, 0.0), 1.0)
  return {"confidence": c, "confidence_0_or_1": float(abs(c - 1) < 0.01 or abs(c) < 0.01)}


def rlvr(text: str, example: Mapping[str, Any], *, fmt: str = "ta", is_correct: IsCorrect = exact_match
         ) -> Components:
  """RLVR components {format, accuracy} (+ logged confidence stats when the format has one)."""
  f, correct, q = _single_parts(text, example, fmt, is_correct)
  out = {"format": f, "accuracy": correct}
  if "c" in fmt:
    out.update(_confidence_logs(q))
  return out


def rlcr(text: str, example: Mapping[str, Any], *, fmt: str = "tabc", is_correct: IsCorrect = exact_match
         ) -> Components:
  """RLCR components {format, accuracy, brier}; brier = 1 - (correct - q)², 0 on a format failure."""
  if "c" not in fmt:
    raise ValueError(f"RLCR needs a format with a confidence, got {fmt!r}")
  f, correct, q = _single_parts(text, example, fmt, is_correct)
  brier = 1.0 - (correct - q) ** 2 if f else 0.0
  return {"format": f, "accuracy": correct, "brier": brier, **_confidence_logs(q)}


def log_score(text: str, example: Mapping[str, Any], *, fmt: str = "tabc", is_correct: IsCorrect = exact_match,
              eps: float = 1e-3) -> Components:
  """Log-score components {format, accuracy, log_score}: c·log q + (1-c)·log(1-q), q in [eps, 1-eps].

  A format failure gets the worst value log(eps) (see the module docstring).
  """
  if "c" not in fmt:
    raise ValueError(f"the log score needs a format with a confidence, got {fmt!r}")
  if not 0.0 < eps < 0.5:
    raise ValueError(f"eps={eps} must be in (0, 0.5)")
  f, correct, q = _single_parts(text, example, fmt, is_correct)
  if f:
    qc = min(max(q, eps), 1.0 - eps)
    score = correct * math.log(qc) + (1.0 - correct) * math.log(1.0 - qc)
  else:
    score = math.log(eps)
  return {"format": f, "accuracy": correct, "log_score": score, **_confidence_logs(q)}


# ----------------------------------------------------------------------------------------------------------
# Multi-answer.


def multi_tags_present(text: str, k: int, *, confidences: bool = True, reasoning_tags: bool = True) -> bool:
  """The official tag-presence check (check_content_has_required_tags) for K numbered candidates."""
  if reasoning_tags and ("<think>" not in text or "</think" not in text):
    return False
  needed = []
  for i in range(1, k + 1):
    needed += [f"<answer{i}>", f"</answer{i}>"]
    if confidences:
      needed += [f"<confidence{i}>", f"</confidence{i}>"]
  if confidences and reasoning_tags:
    needed += ["<analysis>", "</analysis>"]
  return all(t in text for t in needed)


def parse_multi(text: str, k: int) -> tuple[list[str], list[str]] | tuple[None, None]:
  """K ordered (answer_i, confidence_i) pairs as stripped strings (official _extract_flat_candidates)."""
  answers, confs, idx = [], [], 0
  for i in range(1, k + 1):
    spans = []
    for open_tag, close_tag in ((f"<answer{i}>", f"</answer{i}>"), (f"<confidence{i}>", f"</confidence{i}>")):
      start = text.find(open_tag, idx)
      if start == -1:
        return None, None
      start += len(open_tag)
      end = text.find(close_tag, start)
      if end == -1:
        return None, None
      spans.append(text[start:end].strip())
      idx = end + len(close_tag)
    answers.append(spans[0])
    confs.append(spans[1])
  return answers, confs


def parse_multi_answers(text: str, k: int) -> list[str] | None:
  """Answers-only extraction (official extract_only_answers_rlvr): numbered tags in order, else <answer>."""
  answers, idx = [], 0
  for i in range(1, k + 1):
    start = text.find(f"<answer{i}>", idx)
    if start == -1:
      break
    start += len(f"<answer{i}>")
    end = text.find(f"</answer{i}>", start)
    if end == -1:
      return None
    answers.append(text[start:end].strip())
    idx = end + len(f"</answer{i}>")
  if not answers:
    single = _ANSWER.search(text)
    return [single.group(1).strip()] if single else None
  return answers


def multi_format_ok(text: str, k: int, *, reasoning_tags: bool = True) -> bool:
  """Official 'multi_answer' format: tags present, K ordered pairs, every confidence a float in [0, 1]."""
  if not multi_tags_present(text, k, confidences=True, reasoning_tags=reasoning_tags):
    return False
  answers, confs = parse_multi(text, k)
  if answers is None:
    return False
  return all(v is not None and 0.0 <= v <= 1.0 for v in map(safe_float, confs))


def multi_constraint_ok(text: str, k: int) -> bool:
  """Official response constraint: K pairs, distinct answers (strip().lower()), numeric confidences, Σp ≤ 1."""
  answers, confs = parse_multi(text, k)
  if answers is None or len(answers) != k:
    return False
  if len({a.strip().lower() for a in answers}) != k:
    return False
  vals = [safe_float(c) for c in confs]
  return all(v is not None for v in vals) and sum(vals) <= 1.0


def _last_between(text: str, open_tag: str, close_tag: str) -> str:
  """The last open_tag … close_tag span (official _extract_last_between), '' if none."""
  last, idx = "", 0
  while True:
    start = text.find(open_tag, idx)
    if start == -1:
      return last
    start += len(open_tag)
    end = text.find(close_tag, start)
    if end == -1:
      return last
    last, idx = text[start:end].strip(), end + len(close_tag)


def multi_rlcr(text: str, example: Mapping[str, Any], *, k: int = 3, reasoning_tags: bool = True,
               is_correct: IsCorrect = exact_match) -> Components:
  """Multi-RLCR components {format (format·constraint), accuracy (any correct), brier (set Brier)}."""
  if k < 1:
    raise ValueError(f"k={k} must be ≥ 1")
  gold = example["answer"]
  gate = multi_format_ok(text, k, reasoning_tags=reasoning_tags) and multi_constraint_ok(text, k)
  out = {"format": float(gate), "accuracy": 0.0, "brier": 0.0}
  if gate:
    cands = [_last_between(text, f"<answer{i}>", f"</answer{i}>") for i in range(1, k + 1)]
    out["accuracy"] = float(any(c and is_correct(c, gold) for c in cands))
    answers, confs = parse_multi(text, k)
    ps = [min(max(safe_float(c), 0.0), 1.0) for c in confs]
    ys = [float(bool(a) and bool(is_correct(a, gold))) for a in answers]
    out["brier"] = 1.0 - sum((y - p) ** 2 for y, p in zip(ys, ps)) / k
    out["confidence_sum"] = sum(ps)
  return out


def multi_rlvr(text: str, example: Mapping[str, Any], *, k: int = 3, reasoning_tags: bool = True,
               confidences: bool = True, is_correct: IsCorrect = exact_match) -> Components:
  """Multi-RLVR components {format, accuracy}: Multi-RLCR without the Brier term (see module docstring).

  ``confidences=False``: the official answers-only format (``multi_answer_rlvr``), gated on format only.
  """
  if confidences:
    out = multi_rlcr(text, example, k=k, reasoning_tags=reasoning_tags, is_correct=is_correct)
    out.pop("brier")
    return out
  if not multi_tags_present(text, k, confidences=False, reasoning_tags=reasoning_tags):
    return {"format": 0.0, "accuracy": 0.0}
  answers = parse_multi_answers(text, k)
  if answers is None:
    return {"format": 0.0, "accuracy": 0.0}
  return {"format": 1.0, "accuracy": float(any(a and is_correct(a, example["answer"]) for a in answers))}


# Reward weights of the official configs (components not listed are logged with weight 0).
RLVR_WEIGHTS = {"format": 0.5, "accuracy": 0.5}
RLCR_WEIGHTS = {"format": 0.5, "accuracy": 0.5, "brier": 0.5}
LOG_SCORE_WEIGHTS = {"format": 0.5, "accuracy": 0.5, "log_score": 0.5}
