"""Faithful head replacement: a program's matrix replaces a head's post-softmax weights before V.

Uses DecoderLM(attention_overrides=...) -> Attention(head_override=...). Perplexity and next-token KL
are measured over right-padded sentences (one jit for any set of replaced heads: the override tensor
and the head mask are traced values).
"""

from __future__ import annotations

import functools

import numpy as np
from absl import logging

import jax
import jax.numpy as jnp

from jaxlab.nn.lm.transformer import DecoderLM


@functools.partial(jax.jit, static_argnames=('model',))
def _logprobs(model, params, tokens, weights, use):
  """weights [L, b, H, t, t], use [L, H] -> log-softmax logits [b, t, V]."""
  overrides = [(weights[i], use[i]) for i in range(model.config.num_layers)]
  logits = model.apply({'params': params}, tokens, attention_overrides=overrides)
  return jax.nn.log_softmax(logits, -1)


class HeadReplacer:
  """Evaluates a model on fixed sentences with any subset of heads replaced by given matrices.

  Args:
    model, params: the DecoderLM.
    token_ids: evaluation sentences (each >= 2 tokens, <= bucket).
    bucket: padded length.
  """

  def __init__(self, model: DecoderLM, params, token_ids: list[list[int]], bucket: int):
    cfg = model.config
    self.model, self.params = model, params
    self.lengths = [len(x) for x in token_ids]
    b = len(token_ids)
    self.tokens = np.zeros((b, bucket), np.int32)
    for r, x in enumerate(token_ids):
      self.tokens[r, :len(x)] = x
    self.shape = (cfg.num_layers, b, cfg.num_heads, bucket, bucket)
    self.valid = np.zeros((b, bucket), bool)
    for r, n in enumerate(self.lengths):
      self.valid[r, :n - 1] = True  # positions with a next token
    self.base = self.logprobs({})

  def override_tensor(self, matrices: dict[tuple[int, int], list[np.ndarray]]):
    """{(layer, head): one [n, n] matrix per sentence} -> (weights, use) tensors."""
    weights = np.zeros(self.shape, np.float32)
    use = np.zeros(self.shape[0:1] + self.shape[2:3], bool)
    t = self.shape[-1]
    for (l, h), mats in matrices.items():
      use[l, h] = True
      for r, m in enumerate(mats):
        n = m.shape[0]
        weights[l, r, h, :n, :n] = m
        weights[l, r, h, n:, :] = np.eye(t)[n:]  # padding rows: harmless one-hot on themselves
    return jnp.asarray(weights), jnp.asarray(use)

  def logprobs(self, matrices) -> np.ndarray:
    weights, use = self.override_tensor(matrices)
    return np.asarray(_logprobs(self.model, self.params, jnp.asarray(self.tokens), weights, use))

  def perplexities(self, logprobs: np.ndarray) -> np.ndarray:
    """[sentences] perplexity of each sentence."""
    nxt = np.take_along_axis(logprobs[:, :-1], self.tokens[:, 1:, None], -1)[..., 0]
    nll = -(nxt * self.valid[:, :-1]).sum(-1) / self.valid[:, :-1].sum(-1)
    return np.exp(nll)

  def evaluate(self, matrices) -> dict[str, float]:
    """Mean PPL, mean relative PPL increase vs base (in %), mean next-token KL(base || replaced)."""
    lp = self.logprobs(matrices)
    base_ppl, ppl = self.perplexities(self.base), self.perplexities(lp)
    kl = (np.exp(self.base) * (self.base - lp)).sum(-1)
    return {'ppl': float(ppl.mean()), 'base_ppl': float(base_ppl.mean()),
            'ppl_increase_pct': float(100 * np.mean((ppl - base_ppl) / base_ppl)),
            'kl': float((kl * self.valid).sum() / self.valid.sum())}


def greedy_replacement(replacer: HeadReplacer, order: list[tuple[int, int]],
                       matrices: dict[tuple[int, int], list[np.ndarray]], targets: list[int],
                       max_ppl_jump: float = 50., max_tries: int | None = None
                       ) -> tuple[list[tuple[int, int]], dict[int, dict]]:
  """Adds heads in `order`, skipping any that raises mean PPL by more than `max_ppl_jump` points.

  Stops after `max_tries` candidates if given (bounds the cost when many heads are skipped).

  Returns:
    (accepted heads, {target count: evaluate() at that many accepted heads}).
  """
  accepted, results = [], {}
  current = replacer.evaluate({})['ppl']
  for tries, head in enumerate(order):
    if len(accepted) >= max(targets) or (max_tries is not None and tries >= max_tries):
      break
    trial = accepted + [head]
    res = replacer.evaluate({h: matrices[h] for h in trial})
    if res['ppl'] - current > max_ppl_jump:
      logging.info('skip head %s: ppl %.1f -> %.1f', head, current, res['ppl'])
      continue
    logging.info('head %d/%d accepted %s: ppl %.1f', len(trial), max(targets), head, res['ppl'])
    accepted, current = trial, res['ppl']
    if len(accepted) in targets:
      results[len(accepted)] = res
  return accepted, results
