"""Unconditional text-generation metrics: generative perplexity under an evaluator LM, and entropy.

As in the diffusion-LM literature (MDLM, ELF): the samples of the model under test are decoded to text,
re-tokenised with the evaluator's tokenizer and scored by a frozen autoregressive evaluator (a model that
none of the compared systems is). Generative perplexity is token-weighted over the whole sample set,

    gen_ppl = exp( Σ_samples Σ_tokens -log p_eval(token | prefix) / Σ_samples #scored tokens ),

and must always be read together with the mean per-sample unigram entropy of the evaluator tokens,

    H = mean_samples ( -Σ_v p_v log p_v ),   p_v = count of token v in the sample / sample length,

because a collapsed generator (repeating a few tokens) gets a low perplexity and a low entropy.

`LMScorer` scores token lists with a `jaxlab.nn.lm.transformer.DecoderLM`: each sample is fed after
`prefix_ids` (e.g. a BOS / end-of-text token); without a prefix the first token is context only and is
not scored. Batches are right-padded to a multiple of `bucket` so few shapes are compiled.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn.lm.transformer import DecoderLM


def sample_entropy(tokens: Sequence[int]) -> float:
  """Unigram entropy (nats) of one token sequence; 0 for an empty one."""
  if len(tokens) == 0:
    return 0.
  _, counts = np.unique(np.asarray(tokens), return_counts=True)
  p = counts / counts.sum()
  return float(-(p * np.log(p)).sum())


def mean_entropy(token_lists: Sequence[Sequence[int]]) -> float:
  """Mean per-sample unigram entropy (nats) over samples."""
  if not token_lists:
    raise ValueError('mean_entropy needs at least one sample')
  return float(np.mean([sample_entropy(t) for t in token_lists]))


class LMScorer:
  """Per-sample summed NLL (nats) and scored-token counts under a DecoderLM."""

  def __init__(self, model: DecoderLM, params, *, prefix_ids: Sequence[int] = (), batch_size: int = 16,
               bucket: int = 16, pad_id: int = 0):
    self.model, self.params = model, params
    self.prefix = [int(i) for i in prefix_ids]
    self.batch_size, self.bucket, self.pad_id = int(batch_size), int(bucket), int(pad_id)
    self._fn = jax.jit(self._batch_nll)

  def _batch_nll(self, params, inputs, targets, weights):
    logits = self.model.apply({'params': params}, inputs)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * weights, axis=-1), jnp.sum(weights, axis=-1)

  def score(self, token_lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Returns (summed NLL [n], scored token counts [n]) for n token lists."""
    seqs = [self.prefix + [int(t) for t in toks] for toks in token_lists]
    max_len = self.model.config.max_len
    if seqs and max(len(s) for s in seqs) > max_len:
      raise ValueError(f'a sample has {max(len(s) for s in seqs)} tokens (with prefix); the evaluator allows '
                       f'max_len={max_len}')
    nll_out, cnt_out = np.zeros(len(seqs)), np.zeros(len(seqs))
    for start in range(0, len(seqs), self.batch_size):
      chunk = seqs[start:start + self.batch_size]
      width = max(2, max(len(s) for s in chunk))
      width = min(max_len, int(math.ceil(width / self.bucket) * self.bucket))
      arr = np.full((self.batch_size, width), self.pad_id, np.int32)
      valid = np.zeros((self.batch_size, width), np.float32)
      for i, s in enumerate(chunk):
        arr[i, :len(s)] = s
        valid[i, :len(s)] = 1.
      weights = valid[:, 1:].copy()
      if self.prefix:
        weights[:, :len(self.prefix) - 1] = 0.  # prefix tokens are context, not scored
      nll, cnt = jax.device_get(self._fn(self.params, jnp.asarray(arr[:, :-1]), jnp.asarray(arr[:, 1:]),
                                         jnp.asarray(weights)))
      nll_out[start:start + len(chunk)] = nll[:len(chunk)]
      cnt_out[start:start + len(chunk)] = cnt[:len(chunk)]
    return nll_out, cnt_out


@dataclasses.dataclass
class GenPplResult:
  """Generative perplexity and entropy of a sample set under one evaluator."""
  nll: float            # token-weighted mean NLL (nats per evaluator token)
  perplexity: float     # exp(nll)
  entropy: float        # mean per-sample unigram entropy of the evaluator tokens (nats)
  num_tokens: int       # scored evaluator tokens
  num_samples: int      # samples

  def as_dict(self) -> dict[str, float]:
    return dataclasses.asdict(self)


def generative_perplexity(scorer: LMScorer, encode: Callable[[str], list[int]], texts: Sequence[str]
                          ) -> GenPplResult:
  """Scores decoded sample texts with an evaluator LM (see the module docstring)."""
  if not texts:
    raise ValueError('generative_perplexity needs at least one sample text')
  token_lists = [encode(t) for t in texts]
  nll, cnt = scorer.score(token_lists)
  total = float(cnt.sum())
  if total == 0:
    raise ValueError('no sample has a token to score (all samples are empty or single-token)')
  mean_nll = float(nll.sum()) / total
  return GenPplResult(nll=mean_nll, perplexity=float(np.exp(mean_nll)), entropy=mean_entropy(token_lists),
                      num_tokens=int(total), num_samples=len(texts))
