"""Supervised warm-up on the output format, through the ordinary trainer.

Examples are (prompt ids, completion ids) pairs laid out exactly as GRPO batches are: the prompt left-padded
to a fixed length, the completion right-padded, so a model sees the same positions in SFT, in rollouts and
in the policy-gradient loss. The loss is the mean negative log-likelihood of the completion tokens (the
prompt is context only).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.rl.rollout import sequence_logprobs


def pack_prompts(prompts: Sequence[Sequence[int]], length: int, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads prompts to ``length``: ([n, length] int32, [n, length] bool)."""
  if not prompts:
    raise ValueError("no prompts to pack")
  toks = np.full((len(prompts), length), pad_id, np.int32)
  mask = np.zeros((len(prompts), length), bool)
  for i, p in enumerate(prompts):
    if not 0 < len(p) <= length:
      raise ValueError(f"prompt {i} has {len(p)} tokens; prompts need 1..{length} tokens (prompt_len)")
    toks[i, length - len(p):] = p
    mask[i, length - len(p):] = True
  return toks, mask


def pack_completions(completions: Sequence[Sequence[int]], length: int, pad_id: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Right-pads completions to ``length``: ([n, length] int32, [n, length] float32 mask)."""
  toks = np.full((len(completions), length), pad_id, np.int32)
  mask = np.zeros((len(completions), length), np.float32)
  for i, c in enumerate(completions):
    if not 0 < len(c) <= length:
      raise ValueError(f"completion {i} has {len(c)} tokens; completions need 1..{length} tokens")
    toks[i, :len(c)] = c
    mask[i, :len(c)] = 1.0
  return toks, mask


def sft_records(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], prompt_len: int,
                completion_len: int, pad_id: int = 0) -> list[dict[str, np.ndarray]]:
  """One record per example: 'prompt', 'prompt_mask', 'completion', 'completion_mask' (a grain source)."""
  if len(prompts) != len(completions):
    raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
  p, pm = pack_prompts(prompts, prompt_len, pad_id)
  c, cm = pack_completions(completions, completion_len, pad_id)
  return [{"prompt": p[i], "prompt_mask": pm[i], "completion": c[i], "completion_mask": cm[i]}
          for i in range(len(p))]


def make_sft_loss(model: DecoderLM):
  """``(params, batch, rng) -> (mean completion NLL, {'accuracy'})`` for the trainer."""

  def loss_fn(params, batch, rng):
    del rng
    logp, _ = sequence_logprobs(model, params, batch["prompt"], batch["prompt_mask"], batch["completion"])
    m = batch["completion_mask"]
    n = jnp.maximum(jnp.sum(m), 1.0)
    return -jnp.sum(logp * m) / n, {"token_prob": jnp.sum(jnp.exp(logp) * m) / n}

  return loss_fn
