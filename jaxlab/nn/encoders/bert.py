"""BERT encoder (post-norm, bidirectional) built from jaxlab.nn attention and layers.

Matches Hugging Face `BertModel` (absolute learned positions, token types, LayerNorm eps 1e-12, exact
erf GELU) so that checkpoints such as all-MiniLM-L6-v2 load through `jaxlab.io.hf.bert_params_from_hf`.
Parameter paths: word_embed/embedding, pos_embed/embedding, type_embed/embedding, embed_norm,
layers_N/{attn/{query,key,value,out}, attn_norm, mlp/{wi,wo}, mlp_norm}, pooler (optional).
The attention module is `jaxlab.nn.attention.Attention`, so per-head capture ('intermediates') and
head overrides work as in the decoder.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import flax.linen as nn

from jaxlab.nn.attention import Attention, padding_mask
from jaxlab.nn.layers import Embed, LayerNorm, default_kernel_init

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Architecture of a BERT encoder (defaults: all-MiniLM-L6-v2)."""
  vocab_size: int = 30522       # WordPiece vocabulary.
  num_layers: int = 6           # Encoder blocks.
  embed_dim: int = 384          # Hidden width.
  num_heads: int = 12           # Attention heads (head_dim = embed_dim // num_heads).
  mlp_dim: int = 1536           # Intermediate width.
  max_len: int = 512            # Learned position table size.
  type_vocab_size: int = 2      # Token-type (segment) table size.
  norm_eps: float = 1e-12       # LayerNorm epsilon.
  with_pooler: bool = True      # tanh(dense(h[:, 0])) pooler output.

  def __post_init__(self):
    if self.embed_dim % self.num_heads:
      raise ValueError(f'embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads}).')


def _dense(features: int, axes: tuple[str, str], name: str) -> nn.Dense:
  return nn.Dense(features, kernel_init=nn.with_logical_partitioning(default_kernel_init, axes),
                  bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]), name=name)


class BertEncoder(nn.Module):
  """BERT encoder returning hidden states (and the pooled [CLS] vector)."""
  config: BertConfig

  @nn.compact
  def __call__(self, tokens: Array, *, padding: Array | None = None,
               token_types: Array | None = None) -> tuple[Array, Array | None]:
    """Encodes tokens.

    Args:
      tokens: [batch, length] int32 WordPiece ids.
      padding: [batch, length] bool, False = padding (HF attention_mask == 0).
      token_types: [batch, length] int32 segment ids (default zeros).

    Returns:
      (hidden [batch, length, embed] float32, pooled [batch, embed] or None without a pooler).
    """
    cfg = self.config
    b, t = tokens.shape
    if t > cfg.max_len:
      raise ValueError(f'Sequence length {t} exceeds max_len {cfg.max_len}.')
    types = jnp.zeros_like(tokens) if token_types is None else token_types
    x = (Embed(cfg.vocab_size, cfg.embed_dim, name='word_embed')(tokens)
         + Embed(cfg.max_len, cfg.embed_dim, name='pos_embed')(jnp.arange(t)[None])
         + Embed(cfg.type_vocab_size, cfg.embed_dim, name='type_embed')(types))
    x = LayerNorm(epsilon=cfg.norm_eps, name='embed_norm')(x)
    mask = None if padding is None else padding_mask(padding)
    for i in range(cfg.num_layers):
      x = _BertBlock(cfg, name=f'layers_{i}')(x, mask)
    pooled = None
    if cfg.with_pooler:
      pooled = jnp.tanh(_dense(cfg.embed_dim, ('embed', 'embed'), 'pooler')(x[:, 0]))
    return x, pooled


class _BertBlock(nn.Module):
  """Post-norm block: x = LN(x + attn(x)); x = LN(x + wo(gelu_erf(wi(x))))."""
  config: BertConfig

  @nn.compact
  def __call__(self, x: Array, mask: Array | None) -> Array:
    cfg = self.config
    h = Attention(num_heads=cfg.num_heads, num_kv_heads=cfg.num_heads,
                  head_dim=cfg.embed_dim // cfg.num_heads, use_bias=True, out_bias=True,
                  name='attn')(x, mask=mask)
    x = LayerNorm(epsilon=cfg.norm_eps, name='attn_norm')(x + h)
    h = _BertMlp(cfg.mlp_dim, name='mlp')(x)
    return LayerNorm(epsilon=cfg.norm_eps, name='mlp_norm')(x + h)


class _BertMlp(nn.Module):
  hidden_dim: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    h = nn.gelu(_dense(self.hidden_dim, ('embed', 'mlp'), 'wi')(x), approximate=False)
    return _dense(x.shape[-1], ('mlp', 'embed'), 'wo')(h)


def mean_pool(hidden: Array, padding: Array) -> Array:
  """Sentence embedding as sentence-transformers computes it: mean of hidden over real tokens.

  Args:
    hidden: [batch, length, embed].
    padding: [batch, length] bool, False = padding.
  """
  w = padding.astype(hidden.dtype)[..., None]
  return jnp.sum(hidden * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1e-9)
