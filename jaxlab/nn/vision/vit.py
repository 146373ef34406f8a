"""VARC Vision Transformer: per-pixel classification of an ARC canvas, conditioned on a task token.

    canvas [batch, C, C] class ids (0-9 colours, 10 BG, 11 BD)
      -> colour embedding [batch, C, C, embed]
      -> 2×2 patches, linear to embed [batch, (C/2)², embed] + learned absolute positions
      -> prepend the task token task_embed[task_id] (never rotated, never masked)
      -> `num_layers` POST-norm blocks: x = LN(x + drop(attn(x))); x = LN(x + drop(mlp(x))), with 2D RoPE
         (row, col of each patch) in every attention layer and keys of empty patches masked
      -> final LayerNorm -> per-patch linear to 12·patch² logits -> unpatchify [batch, C, C, 12].

The attention and MLP are jaxlab.nn's `Attention` (rope='2d') and `Mlp` (gelu); norms are `LayerNorm`.
Parameter paths: colour_embed/embedding, patch_proj/kernel, pos_embed, task_embed/embedding,
layers_i/{attn,attn_norm,mlp,mlp_norm}, final_norm, head/kernel.

Sizes (`vit_config`): '18m' (paper ViT-18M: 512d, 10 blocks, 8 heads, MLP 512), '6m' (384d, 5 blocks),
'tiny' (64d, 2 blocks, CPU tests and experiments).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn.attention import Attention, padding_mask
from jaxlab.nn.layers import Embed, LayerNorm, Mlp, default_kernel_init

Array = jax.Array
NUM_CLASSES = 12


@dataclasses.dataclass(frozen=True)
class VitConfig:
  """VARC ViT architecture."""
  canvas: int = 64            # Canvas side in pixels.
  patch: int = 2              # Patch side.
  embed_dim: int = 512        # Width of every token.
  num_layers: int = 10        # Post-norm blocks.
  num_heads: int = 8          # Attention heads (head_dim = embed_dim // num_heads, divisible by 4).
  mlp_dim: int = 512          # GELU MLP hidden width.
  num_tasks: int = 400        # Rows of the task-token table.
  dropout_rate: float = 0.1   # Residual-branch and attention-weight dropout.
  rope_base: float = 100.     # 2D RoPE wavelength base (positions are < canvas/patch).
  num_classes: int = NUM_CLASSES

  def __post_init__(self):
    if self.canvas % self.patch:
      raise ValueError(f'canvas {self.canvas} must be a multiple of patch {self.patch}.')
    if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
      raise ValueError(f'embed_dim {self.embed_dim} / num_heads {self.num_heads} must be an integer '
                       'divisible by 4 (2D RoPE splits each head in row and column halves).')
    if self.num_tasks < 1:
      raise ValueError(f'num_tasks must be >= 1, got {self.num_tasks}.')

  @property
  def grid(self) -> int:
    return self.canvas // self.patch

  @property
  def num_patches(self) -> int:
    return self.grid ** 2


_SIZES = {
    '18m': dict(embed_dim=512, num_layers=10, num_heads=8, mlp_dim=512),
    '6m': dict(embed_dim=384, num_layers=5, num_heads=8, mlp_dim=384),
    'tiny': dict(embed_dim=64, num_layers=2, num_heads=4, mlp_dim=128),
}


def vit_config(size: str, **overrides: Any) -> VitConfig:
  """A named size ('18m', '6m', 'tiny') with field overrides."""
  if size not in _SIZES:
    raise ValueError(f'unknown VARC ViT size {size!r}; expected one of {sorted(_SIZES)}.')
  return VitConfig(**{**_SIZES[size], **overrides})


def patch_positions(grid: int) -> Array:
  """[grid², 2] (row, col) of every patch, row-major."""
  r, c = jnp.meshgrid(jnp.arange(grid), jnp.arange(grid), indexing='ij')
  return jnp.stack([r.reshape(-1), c.reshape(-1)], axis=-1)


class PostNormBlock(nn.Module):
  """x = LN(x + drop(attn(x))); x = LN(x + drop(mlp(x)))."""
  config: VitConfig

  @nn.compact
  def __call__(self, x: Array, *, mask: Array, positions: Array, rotate_mask: Array,
               deterministic: bool) -> Array:
    """x: [batch, 1 + patches, embed]; mask [batch, 1, 1, 1 + patches]; positions [batch, 1 + patches, 2]."""
    cfg = self.config
    h = Attention(num_heads=cfg.num_heads, num_kv_heads=cfg.num_heads, head_dim=cfg.embed_dim // cfg.num_heads,
                  use_bias=True, out_bias=True, rope='2d', rope_base=cfg.rope_base,
                  dropout_rate=cfg.dropout_rate, name='attn')(
                      x, mask=mask, positions=positions, rotate_mask=rotate_mask, deterministic=deterministic)
    x = LayerNorm(name='attn_norm')(x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic))
    h = Mlp(hidden_dim=cfg.mlp_dim, activation='gelu', use_bias=True, dropout_rate=cfg.dropout_rate,
            name='mlp')(x, deterministic)
    x = LayerNorm(name='mlp_norm')(x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic))
    return nn.with_logical_constraint(x, ('batch', 'length', 'embed'))


class VarcViT(nn.Module):
  """The VARC ViT (see module docstring)."""
  config: VitConfig

  @nn.compact
  def __call__(self, canvas: Array, task_id: Array, key_mask: Array | None = None,
               deterministic: bool = True) -> Array:
    """Per-pixel logits.

    Args:
      canvas: [batch, C, C] int class ids.
      task_id: [batch] int rows of the task-token table.
      key_mask: optional [batch, (C/patch)²] bool, False = patch holds no input pixel (not attended to).
      deterministic: disables dropout when True (else pass a 'dropout' rng).

    Returns:
      [batch, C, C, num_classes] float32 logits.
    """
    cfg = self.config
    b, c, _ = canvas.shape
    if c != cfg.canvas:
      raise ValueError(f'canvas side {c} != config.canvas {cfg.canvas}.')
    p, g, d = cfg.patch, cfg.grid, cfg.embed_dim
    x = Embed(cfg.num_classes, d, name='colour_embed')(canvas.astype(jnp.int32))      # [b, C, C, d]
    x = x.reshape(b, g, p, g, p, d).transpose(0, 1, 3, 2, 4, 5).reshape(b, g * g, p * p * d)
    x = nn.Dense(d, kernel_init=nn.with_logical_partitioning(default_kernel_init, ('mlp', 'embed')),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('embed',)),
                 name='patch_proj')(x)
    pos = self.param('pos_embed', nn.with_logical_partitioning(nn.initializers.normal(0.02), ('length', 'embed')),
                     (g * g, d))
    x = x + pos[None]
    task = Embed(cfg.num_tasks, d, name='task_embed')(task_id.astype(jnp.int32))     # [b, d]
    x = jnp.concatenate([task[:, None, :], x], axis=1)                                # [b, 1 + P, d]
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))

    positions = jnp.concatenate([jnp.zeros((1, 2), jnp.int32), patch_positions(g)], axis=0)
    positions = jnp.broadcast_to(positions[None], (b, 1 + g * g, 2))
    rotate_mask = jnp.broadcast_to(jnp.arange(1 + g * g) > 0, (b, 1 + g * g))
    valid = jnp.ones((b, g * g), jnp.bool_) if key_mask is None else key_mask.astype(jnp.bool_)
    mask = padding_mask(jnp.concatenate([jnp.ones((b, 1), jnp.bool_), valid], axis=1))

    for i in range(cfg.num_layers):
      x = PostNormBlock(cfg, name=f'layers_{i}')(x, mask=mask, positions=positions, rotate_mask=rotate_mask,
                                                 deterministic=deterministic)
    x = LayerNorm(name='final_norm')(x)
    logits = nn.Dense(cfg.num_classes * p * p,
                      kernel_init=nn.with_logical_partitioning(default_kernel_init, ('embed', 'vocab')),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('vocab',)),
                      name='head')(x[:, 1:])                                          # [b, P, 12·p²]
    logits = logits.reshape(b, g, g, p, p, cfg.num_classes).transpose(0, 1, 3, 2, 4, 5)
    return logits.reshape(b, c, c, cfg.num_classes).astype(jnp.float32)


def masked_cross_entropy(logits: Array, targets: Array, loss_mask: Array) -> tuple[Array, dict[str, Array]]:
  """Mean cross-entropy over the pixels where loss_mask is 1, and accuracy metrics.

  Args:
    logits: [batch, C, C, classes]; targets: [batch, C, C] int; loss_mask: [batch, C, C] float.

  Returns:
    (loss, {'pixel_acc', 'exact'}): exact is the fraction of examples whose masked pixels are all right.
  """
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
  m = loss_mask.astype(jnp.float32)
  denom = jnp.maximum(m.sum(), 1.)
  right = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  wrong_per_ex = ((1. - right) * m).sum(axis=(1, 2))
  return (nll * m).sum() / denom, {'pixel_acc': (right * m).sum() / denom,
                                   'exact': jnp.mean((wrong_per_ex == 0).astype(jnp.float32))}


def fresh_task_tokens(params: Any, num_tasks: int, rng: Array) -> Any:
  """Params with the task-token table replaced by `num_tasks` freshly initialised rows (for TTT).

  Works on boxed (nn.Partitioned) or plain params; every other weight is kept.
  """
  table = params['task_embed']['embedding']
  boxed = isinstance(table, nn.Partitioned)
  raw = table.value if boxed else table
  d = raw.shape[-1]
  new = jax.random.normal(rng, (num_tasks, d), raw.dtype) * d ** -0.5
  new = table.replace_boxed(new) if boxed else new
  out = dict(params)
  out['task_embed'] = {'embedding': new}
  return out
