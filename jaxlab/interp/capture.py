"""Per-head attention capture over sentences from a jaxlab DecoderLM.

Sentences are right-padded to one bucket length so a single jit serves every sentence; with a causal
mask, right padding never changes the real rows.
"""

from __future__ import annotations

import functools

import numpy as np

import jax
import jax.numpy as jnp

from jaxlab.nn.lm.transformer import DecoderLM


@functools.partial(jax.jit, static_argnames=('model',))
def _attention(model: DecoderLM, params, tokens):
  _, state = model.apply({'params': params}, tokens, mutable=['intermediates'])
  inter = state['intermediates']
  return jnp.stack([inter[f'layers_{i}']['attn']['attention_weights'][0]
                    for i in range(model.config.num_layers)], axis=1)  # [b, L, H, t, t]


def capture_attention(model: DecoderLM, params, token_ids: list[list[int]], bucket: int,
                      batch_size: int = 8) -> list[np.ndarray]:
  """Post-softmax attention of every head.

  Args:
    model: the DecoderLM.
    params: its params.
    token_ids: sentences as token id lists, each of length <= bucket.
    bucket: padded length (one compilation).
    batch_size: sentences per forward pass.

  Returns:
    one float32 array [layers, heads, n, n] per sentence (n = its length).
  """
  out = []
  for s in range(0, len(token_ids), batch_size):
    chunk = token_ids[s:s + batch_size]
    if any(len(x) > bucket for x in chunk):
      raise ValueError(f'A sentence is longer than bucket={bucket}.')
    batch = np.zeros((batch_size, bucket), np.int32)
    for r, x in enumerate(chunk):
      batch[r, :len(x)] = x
    att = np.asarray(_attention(model, params, jnp.asarray(batch)))
    out.extend(att[r, :, :, :len(x), :len(x)] for r, x in enumerate(chunk))
  return out


def token_strings(tokenizer, ids: list[int]) -> list[str]:
  """Decoded text of every token (leading spaces kept), as programs expect."""
  return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]
