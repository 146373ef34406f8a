"""A decoder LM conditioned on a learned per-student embedding (Ross et al., arXiv 2510.05056).

The student id is hashed into `num_buckets`; its one-hot goes through Linear(num_buckets, 64) → ReLU →
Linear(64, embed_dim), and that vector is prepended at position 0 of the sequence as a continuous token
(`DecoderLM(inputs_embeds=..., embeds_mask=...)`); position 0 has no target of its own (the loss covers the
real tokens, predicted from position 0 on). Probes read the 64-d ReLU layer (`student_features`).

Parameter tree: {'student': {'hidden': {kernel, bias}, 'out': {kernel, bias}}, 'lm': DecoderLM's tree}.
"""

from __future__ import annotations

import hashlib

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn.lm.transformer import DecoderLM, TransformerConfig

Array = jax.Array
STUDENT_HIDDEN = 64


def hash_student(username: str, num_buckets: int) -> int:
  """A stable hash bucket of a student id (sha256, not Python's salted hash)."""
  return int.from_bytes(hashlib.sha256(username.encode()).digest()[:8], 'little') % num_buckets


class StudentEmbedding(nn.Module):
  """One-hot of a hashed id → Linear → ReLU → Linear: [batch] ids → ([batch, embed], [batch, 64])."""
  num_buckets: int
  embed_dim: int

  @nn.compact
  def __call__(self, ids: Array) -> tuple[Array, Array]:
    onehot = jax.nn.one_hot(ids, self.num_buckets, dtype=jnp.float32)
    h = nn.relu(nn.Dense(STUDENT_HIDDEN, name='hidden')(onehot))
    return nn.Dense(self.embed_dim, name='out')(h), h


class StudentLM(nn.Module):
  """DecoderLM over [student vector, tokens...]: call with tokens [batch, length] and ids [batch].

  `tokens[:, 0]` is a placeholder at the student position (its id is ignored); logits [batch, length, vocab]
  at position t predict tokens[:, t + 1] as for a plain LM. `generate_inputs` builds the inputs_embeds and
  mask that `jaxlab.nn.lm.generate.generate` needs for a prompt of that layout.
  """
  config: TransformerConfig
  num_buckets: int

  def setup(self):
    self.student = StudentEmbedding(self.num_buckets, self.config.embed_dim)
    self.lm = DecoderLM(self.config)

  def student_features(self, ids: Array) -> Array:
    """[batch] ids → [batch, 64] (the probed layer)."""
    return self.student(ids)[1]

  def embeds(self, tokens: Array, ids: Array) -> tuple[Array, Array]:
    """inputs_embeds [batch, length, embed] (the student vector at 0) and embeds_mask [batch, length]."""
    vec, _ = self.student(ids)
    b, t = tokens.shape
    emb = jnp.zeros((b, t, self.config.embed_dim), vec.dtype).at[:, 0].set(vec)
    return emb, jnp.zeros((b, t), jnp.bool_).at[:, 0].set(True)

  def __call__(self, tokens: Array, ids: Array, **kw) -> Array:
    emb, mask = self.embeds(tokens, ids)
    return self.lm(tokens, inputs_embeds=emb, embeds_mask=mask, **kw)


def lm_loss(logits: Array, tokens: Array, weights: Array) -> tuple[Array, Array]:
  """Summed next-token NLL and token count; weights [batch, length] mark the targets (0 at position 0 and pads).

  logits [batch, length, vocab] at t predict tokens[:, t + 1] (weighted by weights[:, t + 1])."""
  logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
  w = weights[:, 1:].astype(jnp.float32)
  return jnp.sum(nll * w), jnp.sum(w)
