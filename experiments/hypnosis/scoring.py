"""Scoring on plain prompts, shared by the SmolLM2 run (main.py) and the fact-world grid (world_grid.py).

``two_choice``: the lm-eval-harness acc_norm of a two-choice item: each choice is scored as a continuation of
the prompt, Σ log-prob divided by the choice's length in characters; the target wins when its normalised score
is higher. ``greedy``: greedy completions of prompts (jaxlab.rl.rollout.sample at temperature 0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxlab.nn import lora
from jaxlab.rl import preference as pref
from jaxlab.rl import rollout
from jaxlab.rl.sft import pack_completions, pack_prompts

LORA_OFF = lora.LoraConfig()  # unused config for adapters=None calls


@functools.lru_cache(maxsize=8)
def _logps_fn(model):
  return jax.jit(lambda p, a, b, c, d: pref.completion_logps(model, p, None, LORA_OFF, a, b, c, d))


def two_choice(model, params, encode: Callable[[str], list[int]], items: Sequence[tuple[str, str, str]],
               prompt_len: int, completion_len: int, pad_id: int) -> dict[str, float]:
  """Items (prompt, target, other): the fraction where the target wins by acc_norm, the mean normalised margin
  target − other (nats per character), and the mean σ(Σ log p target − Σ log p other) (the target's share of
  the two sequence probabilities)."""
  prompts = [encode(p) for p, _, _ in items for _ in range(2)]
  texts = [c for _, a, b in items for c in (a, b)]
  pr, pm = pack_prompts(prompts, prompt_len, pad_id)
  cp, cm = pack_completions([encode(t) for t in texts], completion_len, pad_id)
  logps = np.asarray(_logps_fn(model)(params, pr, pm, cp, cm), np.float64).reshape(-1, 2)
  norm = logps / np.asarray([len(t) for t in texts]).reshape(-1, 2)
  margin = norm[:, 0] - norm[:, 1]
  share = 1.0 / (1.0 + np.exp(logps[:, 1] - logps[:, 0]))
  return {"acc_norm": float(np.mean(margin > 0)), "margin": float(np.mean(margin)), "share": float(np.mean(share)),
          "n": len(items)}


def greedy(model, params, encode: Callable[[str], list[int]], decode: Callable[[Sequence[int]], str],
           prompts: Sequence[str], prompt_len: int, max_new_tokens: int, eos_id: int, pad_id: int) -> list[str]:
  p, m = pack_prompts([encode(q) for q in prompts], prompt_len, pad_id)
  cfg = rollout.SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0, eos_id=eos_id, pad_id=pad_id)
  return rollout.sample(model, params, p, m, group_size=1, rng=jax.random.key(0), cfg=cfg, decode=decode).texts
