"""The Self-CTRL coins domain in a compact word-level form, and its identity-line R² evaluation.

100 coins ``Coin_A … Coin_CV`` (bijective base-26 names, as the official code) with biases in [0.10, 0.90]:
10 holdout coins evenly spaced over the range, the other 90 uniform and split at random into 50 "sft" coins
(rollouts + programs supervised) and 40 "cons" coins (rollouts only; the consistency-training prompts).

Prompts are three words: ``flip Coin_S`` (behaviour: "generate n flips of Coin_S and no other text") and
``program Coin_S`` (explanation: "write the function that represents Coin_S"). Completions are ``H T H …`` (n
flips) and the program ``{ H : 0 . 3 7 , T : 1 - H }`` (the official ``def flip_Coin_S(): return {"H": 0.37,
"T": 1 - 0.37}`` cut to its number, one word per character so that the digits are separate tokens); both end
with eos. The program parses with jaxlab.rl.consistency.parse_program_bias (whitespace ignored).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxlab.data.rl_tasks import WordTokenizer
from jaxlab.rl import consistency

GROUPS = ("sft", "cons", "holdout")
PROGRAM_WORDS = ("{", "H", ":", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ".", ",", "T", "-", "}")


def coin_name(i: int) -> str:
  """0 -> Coin_A, 25 -> Coin_Z, 26 -> Coin_AA, … 99 -> Coin_CV."""
  s, n = "", i + 1
  while n:
    n, r = divmod(n - 1, 26)
    s = chr(ord("A") + r) + s
  return f"Coin_{s}"


@dataclasses.dataclass(frozen=True)
class Coin:
  name: str
  bias: float
  group: str  # 'sft' | 'cons' | 'holdout'


def make_coins(seed: int, num: int = 100, num_sft: int = 50, num_holdout: int = 10, lo: float = 0.1,
               hi: float = 0.9) -> list[Coin]:
  """The coins of one seed: holdout biases linspace(lo, hi), the rest uniform in [lo, hi], names shuffled."""
  rng = np.random.default_rng(seed)
  biases = np.concatenate([np.linspace(lo, hi, num_holdout), rng.uniform(lo, hi, num - num_holdout)])
  groups = ["holdout"] * num_holdout + ["sft"] * num_sft + ["cons"] * (num - num_holdout - num_sft)
  order = rng.permutation(num)  # which name each coin gets
  return [Coin(coin_name(int(order[i])), float(biases[i]), groups[i]) for i in range(num)]


def tokenizer(coins: Sequence[Coin]) -> WordTokenizer:
  return WordTokenizer(["flip", "program", *sorted(c.name for c in coins), *PROGRAM_WORDS])


def program_text(p: float) -> str:
  """The compact program of a stated bias, two decimals: 0.37 -> '{ H : 0 . 3 7 , T : 1 - H }'."""
  s = f"{min(max(p, 0.0), 1.0):.2f}"
  return "{ H : " + " ".join(s) + " , T : 1 - H }"


def domain(tok: WordTokenizer) -> consistency.Domain:
  return consistency.Domain(
      behaviour_prompt=lambda e: tok.encode(f"flip {e['coin']}"),
      explanation_prompt=lambda e: tok.encode(f"program {e['coin']}"),
      parse_behaviour=consistency.count_flips, parse_explanation=consistency.parse_program_bias,
      phi=consistency.coin_phi)


def flips_text(rng: np.random.Generator, p: float, n: int) -> str:
  return " ".join(np.where(rng.random(n) < p, "H", "T"))


def sft_pairs(coins: Sequence[Coin], program_groups: Sequence[str], *, rollouts_per_coin: int,
              programs_per_coin: int, flips: int, seed: int) -> list[tuple[str, str]]:
  """(prompt, completion) texts: rollouts of every coin, programs of the coins in ``program_groups``."""
  rng = np.random.default_rng(seed + 17)
  out = []
  for c in coins:
    out += [(f"flip {c.name}", flips_text(rng, c.bias, flips)) for _ in range(rollouts_per_coin)]
    if c.group in program_groups:
      out += [(f"program {c.name}", program_text(c.bias))] * programs_per_coin
  return out


# ----------------------------------------------------------------------------------------------------------
# Evaluation: identity-line R², mode / mean of K stated p̂, bootstrap over coins.

def r2_identity(pred: np.ndarray, target: np.ndarray) -> float:
  """1 - Σ(pred - target)² / Σ(target - mean target)² (against y = x, not a fitted line)."""
  pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
  den = float(((target - target.mean()) ** 2).sum())
  return float(1.0 - ((pred - target) ** 2).sum() / den) if den > 0 else float("nan")


def mode_of(values: Sequence[float]) -> float | None:
  """The most frequent value; ties go to the tied value nearest the mean (the official rule); None if empty."""
  v = [x for x in values if x is not None]
  if not v:
    return None
  vals, counts = np.unique(np.asarray(v, np.float64), return_counts=True)
  tied = vals[counts == counts.max()]
  mean = float(np.mean(v))
  return float(tied[np.argmin(np.abs(tied - mean))])


def bootstrap_r2(pred: np.ndarray, target: np.ndarray, *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
  """95% percentile interval of the identity-line R² over coins resampled with replacement."""
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(pred), size=(n, len(pred)))
  vals = np.asarray([r2_identity(pred[i], target[i]) for i in idx])
  vals = vals[np.isfinite(vals)]
  if not vals.size:  # every resample has a constant target
    return float("nan"), float("nan")
  return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))
