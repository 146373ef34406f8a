"""RGB Vision Transformer encoder (ViT, Dosovitskiy et al. 2021) built from jaxlab's Attention and Mlp.

    images [batch, H, W, 3] float in [0, 1]
      -> (x − 0.5) / 0.5, non-overlapping p×p patches, linear to embed   [batch, (H/p)(W/p), embed]
      -> + learned absolute positions; optional learned CLS token in front
      -> `num_layers` PRE-norm blocks: x = x + attn(LN(x)); x = x + mlp(LN(x))  (bidirectional, GELU MLP)
      -> final LayerNorm -> tokens [batch, (1 +) patches, embed]

`RgbViT` returns the token features (what a LLaVA projector reads); `RgbViTClassifier` adds one linear head
per named target on the pooled feature (CLS token, or the mean of the patch tokens), for supervised
pretraining on labelled images (e.g. the factors of jaxlab.data.scenes) or as a synthetic classifier.
Parameter paths: patch_embed/{kernel,bias}, pos_embed, cls_token, layers_i/{attn_norm,attn,mlp_norm,mlp},
final_norm; the classifier nests the encoder under 'encoder' and its heads under 'head_<name>'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn.attention import Attention
from jaxlab.nn.layers import LayerNorm, Mlp, default_kernel_init

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class RgbViTConfig:
  """RGB ViT architecture."""
  image_size: int = 32        # square input side in pixels
  patch: int = 8              # patch side ((image_size / patch)² patch tokens)
  embed_dim: int = 128        # token width
  num_layers: int = 4         # pre-norm blocks
  num_heads: int = 4          # attention heads (head_dim = embed_dim // num_heads)
  mlp_dim: int = 256          # GELU MLP hidden width
  cls_token: bool = True      # prepend a learned CLS token (pooled feature = its output)
  dropout_rate: float = 0.0   # residual-branch dropout

  def __post_init__(self):
    if self.image_size % self.patch:
      raise ValueError(f'RgbViTConfig.image_size={self.image_size} must be a multiple of patch={self.patch}.')
    if self.embed_dim % self.num_heads:
      raise ValueError(f'RgbViTConfig.embed_dim={self.embed_dim} must divide by num_heads={self.num_heads}.')

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch) ** 2

  @property
  def num_tokens(self) -> int:
    return self.num_patches + int(self.cls_token)


def patchify(images: Array, patch: int) -> Array:
  """[batch, H, W, C] -> [batch, (H/p)(W/p), p·p·C], patches row-major."""
  b, h, w, c = images.shape
  x = images.reshape(b, h // patch, patch, w // patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // patch) * (w // patch), patch * patch * c)


class PreNormBlock(nn.Module):
  """x = x + drop(attn(LN(x))); x = x + drop(mlp(LN(x)))."""
  config: RgbViTConfig

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    cfg = self.config
    h = Attention(num_heads=cfg.num_heads, num_kv_heads=cfg.num_heads, head_dim=cfg.embed_dim // cfg.num_heads,
                  use_bias=True, out_bias=True, name='attn')(LayerNorm(name='attn_norm')(x), mask=None,
                                                             deterministic=deterministic)
    x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
    h = Mlp(hidden_dim=cfg.mlp_dim, activation='gelu', use_bias=True, name='mlp')(LayerNorm(name='mlp_norm')(x))
    x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))


class RgbViT(nn.Module):
  """Token features of RGB images (see module docstring)."""
  config: RgbViTConfig

  @nn.compact
  def __call__(self, images: Array, deterministic: bool = True) -> Array:
    """images [batch, H, W, 3] in [0, 1] -> tokens [batch, num_tokens, embed] (CLS first when enabled)."""
    cfg = self.config
    if images.ndim != 4 or images.shape[1:] != (cfg.image_size, cfg.image_size, 3):
      raise ValueError(f'RgbViT expects images [batch, {cfg.image_size}, {cfg.image_size}, 3], got {images.shape}.')
    x = patchify((images.astype(jnp.float32) - 0.5) / 0.5, cfg.patch)
    x = nn.Dense(cfg.embed_dim, kernel_init=nn.with_logical_partitioning(default_kernel_init, ('mlp', 'embed')),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('embed',)), name='patch_embed')(x)
    pos = self.param('pos_embed', nn.with_logical_partitioning(nn.initializers.normal(0.02), ('length', 'embed')),
                     (cfg.num_patches, cfg.embed_dim))
    x = x + pos[None]
    if cfg.cls_token:
      cls = self.param('cls_token', nn.with_logical_partitioning(nn.initializers.normal(0.02), ('length', 'embed')),
                       (1, cfg.embed_dim))
      x = jnp.concatenate([jnp.broadcast_to(cls[None], (x.shape[0], 1, cfg.embed_dim)), x], axis=1)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    for i in range(cfg.num_layers):
      x = PreNormBlock(cfg, name=f'layers_{i}')(x, deterministic)
    return LayerNorm(name='final_norm')(x)


def pool(tokens: Array, config: RgbViTConfig) -> Array:
  """[batch, tokens, embed] -> [batch, embed]: the CLS output, or the mean of the patch tokens."""
  return tokens[:, 0] if config.cls_token else tokens.mean(axis=1)


class RgbViTClassifier(nn.Module):
  """RgbViT + one linear head per target: {name: logits [batch, classes]}."""
  config: RgbViTConfig
  heads: Mapping[str, int]    # target name -> number of classes

  @nn.compact
  def __call__(self, images: Array, deterministic: bool = True) -> dict[str, Array]:
    tokens = RgbViT(self.config, name='encoder')(images, deterministic)
    pooled = pool(tokens, self.config)
    return {name: nn.Dense(n, kernel_init=nn.with_logical_partitioning(default_kernel_init, ('embed', 'vocab')),
                           bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('vocab',)),
                           name=f'head_{name}')(pooled).astype(jnp.float32)
            for name, n in self.heads.items()}
