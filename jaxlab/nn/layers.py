"""Basic building blocks: normalisation, feed-forward, embeddings and rotary position embeddings.

Every parameter carries logical axis names (`nn.with_logical_partitioning`) drawn from
'embed', 'mlp', 'heads', 'kv', 'vocab', so `jaxlab.train` can shard them with a small rule table.
Activations are annotated with `nn.with_logical_constraint`, a no-op without rules or a mesh.

Numerics: normalisations and RoPE compute in float32 and cast back to the module's `dtype`;
parameters are stored in `param_dtype` (float32 by default).

RoPE follows the Hugging Face Llama "rotate_half" convention: feature i is paired with feature
i + head_dim/2 (not with its neighbour i+1 as in the original GPT-J/"interleaved" form), so weights
imported from HF Llama / SmolLM2 checkpoints give the same activations without permuting q/k kernels.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import flax.linen as nn

Array = jax.Array
Dtype = Any
Initializer = Callable[..., Array]

default_kernel_init = nn.initializers.lecun_normal()

_MLP_ACTIVATIONS = ('swiglu', 'gelu', 'geglu')


class FlatDense(nn.Dense):
  """nn.Dense computed as one rank-2 GEMM: x [..., in] -> [n, in] @ [in, out] -> [..., out].

  XLA:CPU runs the weight gradient of a Dense on [batch, length, in] (two contracting dimensions) ~2x slower
  than the same GEMM on [batch·length, in] (experiments/benchmarks/README.md); the parameters (names,
  shapes, logical axes) are nn.Dense's.
  """

  def __call__(self, x: Array) -> Array:
    return super().__call__(x.reshape(-1, x.shape[-1])).reshape(x.shape[:-1] + (self.features,))


class RMSNorm(nn.Module):
  """Root-mean-square normalisation: y = x * rsqrt(mean(x**2) + epsilon) * scale.

  Attributes:
    epsilon: added to the mean square before the reciprocal square root.
    dtype: output dtype (the statistics are always computed in float32).
    param_dtype: dtype of the `scale` parameter.
    param_axis: logical axis name of `scale` ('embed' for the residual stream; attention uses 'kv'
      for per-head q/k norms).
  """
  epsilon: float = 1e-6
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  param_axis: str = 'embed'

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Normalises over the last axis.

    Args:
      x: [..., features].

    Returns:
      [..., features] in `dtype`.
    """
    features = x.shape[-1]
    scale = self.param('scale', nn.with_logical_partitioning(nn.initializers.ones, (self.param_axis,)),
                       (features,), self.param_dtype)
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + self.epsilon)
    return (y * scale.astype(jnp.float32)).astype(self.dtype)


class LayerNorm(nn.Module):
  """Layer normalisation: y = (x - mean) / sqrt(var + epsilon) * scale + bias.

  Attributes:
    epsilon: added to the variance.
    use_bias: whether to learn the additive `bias`.
    dtype: output dtype (statistics are always computed in float32).
    param_dtype: dtype of `scale` and `bias`.
  """
  epsilon: float = 1e-5
  use_bias: bool = True
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """Normalises over the last axis.

    Args:
      x: [..., features].

    Returns:
      [..., features] in `dtype`.
    """
    features = x.shape[-1]
    scale = self.param('scale', nn.with_logical_partitioning(nn.initializers.ones, ('embed',)),
                       (features,), self.param_dtype)
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
    y = (xf - mean) * jax.lax.rsqrt(var + self.epsilon) * scale.astype(jnp.float32)
    if self.use_bias:
      bias = self.param('bias', nn.with_logical_partitioning(nn.initializers.zeros, ('embed',)),
                        (features,), self.param_dtype)
      y = y + bias.astype(jnp.float32)
    return y.astype(self.dtype)


class Mlp(nn.Module):
  """Position-wise feed-forward block.

  'swiglu' (Llama): out = wo(silu(wi_gate(x)) * wi_up(x)).
  'gelu' (GPT-2):   out = wo(gelu_tanh(wi(x))).
  'geglu' (Gemma):  out = wo(gelu_tanh(wi_gate(x)) * wi_up(x)) (swiglu's parameter names).

  Dropout (if `dropout_rate` > 0) is applied to the hidden activation; it needs a 'dropout' rng when
  `deterministic` is False.

  Attributes:
    hidden_dim: width of the hidden ('mlp') layer.
    activation: 'swiglu', 'gelu' or 'geglu'.
    use_bias: whether the dense layers have biases.
    dropout_rate: dropout on the hidden activation.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  hidden_dim: int
  activation: str = 'swiglu'
  use_bias: bool = False
  dropout_rate: float = 0.
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32

  def _dense(self, features: int, axes: tuple[str, str], name: str) -> nn.Dense:
    return nn.Dense(
        features, use_bias=self.use_bias, dtype=self.dtype, param_dtype=self.param_dtype,
        kernel_init=nn.with_logical_partitioning(default_kernel_init, axes),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]),
        name=name)

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    """Applies the feed-forward block.

    Args:
      x: [batch, length, embed] (any leading axes work).
      deterministic: disables dropout when True.

    Returns:
      [batch, length, embed] in `dtype`.
    """
    if self.activation not in _MLP_ACTIVATIONS:
      raise ValueError(f'Unknown Mlp activation {self.activation!r}; expected one of {_MLP_ACTIVATIONS}.')
    shape, embed = x.shape, x.shape[-1]
    # Rank-2 matmuls: XLA:CPU runs the weight gradient of a [batch, length, embed] Dense (two contracting
    # dims) ~1.8x slower than the same GEMM on [batch·length, embed] (experiments/benchmarks/README.md).
    # The merged leading dim keeps the batch sharding, so this is neutral on other backends.
    x = x.reshape(-1, embed)
    if self.activation == 'swiglu':
      gate = self._dense(self.hidden_dim, ('embed', 'mlp'), 'wi_gate')(x)
      up = self._dense(self.hidden_dim, ('embed', 'mlp'), 'wi_up')(x)
      h = nn.silu(gate) * up
    elif self.activation == 'geglu':
      gate = self._dense(self.hidden_dim, ('embed', 'mlp'), 'wi_gate')(x)
      up = self._dense(self.hidden_dim, ('embed', 'mlp'), 'wi_up')(x)
      h = nn.gelu(gate, approximate=True) * up
    else:
      h = nn.gelu(self._dense(self.hidden_dim, ('embed', 'mlp'), 'wi')(x), approximate=True)
    h = nn.with_logical_constraint(h, ('batch', 'mlp'))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    return self._dense(embed, ('mlp', 'embed'), 'wo')(h).reshape(shape[:-1] + (embed,))


class Embed(nn.Module):
  """Token (or position) embedding table with an `attend` method for tied output heads.

  Attributes:
    num_embeddings: table size ('vocab' axis).
    features: embedding width ('embed' axis).
    dtype: compute dtype of the looked-up vectors and of `attend`.
    param_dtype: dtype of the table.
    embedding_init: initialiser of the [num_embeddings, features] table; None means
      normal(stddev=1/sqrt(features)), which gives unit-scale logits for tied heads on normalised
      inputs.
  """
  num_embeddings: int
  features: int
  dtype: Dtype = jnp.float32
  param_dtype: Dtype = jnp.float32
  embedding_init: Initializer | None = None

  def setup(self):
    init = self.embedding_init or nn.initializers.normal(stddev=self.features ** -0.5)
    self.embedding = self.param('embedding', nn.with_logical_partitioning(init, ('vocab', 'embed')),
                                (self.num_embeddings, self.features), self.param_dtype)

  def __call__(self, ids: Array) -> Array:
    """Looks up embeddings.

    Args:
      ids: [...] integer ids in [0, num_embeddings).

    Returns:
      [..., features] in `dtype`.
    """
    if not jnp.issubdtype(ids.dtype, jnp.integer):
      raise ValueError(f'Embed expects integer ids, got dtype {ids.dtype}.')
    return jnp.take(jnp.asarray(self.embedding, self.dtype), ids, axis=0)

  def attend(self, x: Array) -> Array:
    """Scores `x` against every embedding (x @ embedding.T), for tied output heads.

    Args:
      x: [..., features].

    Returns:
      [..., num_embeddings] in `dtype`.
    """
    emb = jnp.asarray(self.embedding, self.dtype)
    flat = x.reshape(-1, x.shape[-1]).astype(self.dtype) @ emb.T  # rank-2 GEMM (see Mlp)
    return flat.reshape(x.shape[:-1] + (emb.shape[0],))


# ----------------------------------------------------------------------------------------------------
# Rotary position embeddings.
# ----------------------------------------------------------------------------------------------------

def _rotate_half(x: Array) -> Array:
  """[..., d] -> [..., d]: (x1, x2) -> (-x2, x1) with x1, x2 the two halves of the last axis."""
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([-x2, x1], axis=-1)


def _rope(x: Array, positions: Array, base: float) -> Array:
  """Rotate-half RoPE in float32.

  Args:
    x: [batch, length, heads, dim] with dim even.
    positions: [batch, length] (int or float).
    base: wavelength base.

  Returns:
    [batch, length, heads, dim] float32.
  """
  dim = x.shape[-1]
  inv_freq = 1.0 / (base ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))  # [dim/2]
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq                  # [b, l, dim/2]
  angles = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]              # [b, l, 1, dim]
  xf = x.astype(jnp.float32)
  return xf * jnp.cos(angles) + _rotate_half(xf) * jnp.sin(angles)


def _check_rope_inputs(x: Array, positions: Array, pos_ndim: int, multiple: int, fn: str) -> None:
  if x.ndim != 4:
    raise ValueError(f'{fn}: x must be [batch, length, heads, head_dim], got shape {x.shape}.')
  if x.shape[-1] % multiple:
    raise ValueError(f'{fn}: head_dim must be divisible by {multiple}, got head_dim={x.shape[-1]}.')
  if positions.ndim != pos_ndim:
    raise ValueError(f'{fn}: positions must have {pos_ndim} dims, got shape {positions.shape}.')


def _masked(rotated: Array, x: Array, rotate_mask: Array | None) -> Array:
  if rotate_mask is not None:
    rotated = jnp.where(rotate_mask[:, :, None, None], rotated, x.astype(rotated.dtype))
  return rotated.astype(x.dtype)


def rope_1d(x: Array, positions: Array, base: float = 10000.0,
            rotate_mask: Array | None = None) -> Array:
  """1D rotary position embedding, Hugging Face Llama convention (rotate_half).

  Feature i (i < head_dim/2) is rotated together with feature i + head_dim/2 by the angle
  position * base**(-2i/head_dim). Scores q·k of rotated vectors depend only on the position
  difference.

  Args:
    x: [batch, length, heads, head_dim], head_dim even.
    positions: [batch, length] integer or float positions (batch may be 1 to broadcast).
    base: wavelength base (Llama 10000, SmolLM2 100000, ...).
    rotate_mask: optional [batch, length] bool; where False the token is returned unrotated
      (task/control tokens).

  Returns:
    [batch, length, heads, head_dim] in x's dtype.
  """
  _check_rope_inputs(x, positions, 2, 2, 'rope_1d')
  return _masked(_rope(x, positions, base), x, rotate_mask)


def rope_2d(x: Array, positions_yx: Array, base: float = 10000.0,
            rotate_mask: Array | None = None) -> Array:
  """2D (axial) rotary position embedding for image patches.

  The first half of head_dim is rotated by the row position with `rope_1d` (rotate_half within that
  half), the second half by the column position.

  Args:
    x: [batch, length, heads, head_dim], head_dim divisible by 4.
    positions_yx: [batch, length, 2] (row, col) positions, integer or float.
    base: wavelength base.
    rotate_mask: optional [batch, length] bool; where False the token is returned unrotated.

  Returns:
    [batch, length, heads, head_dim] in x's dtype.
  """
  _check_rope_inputs(x, positions_yx, 3, 4, 'rope_2d')
  if positions_yx.shape[-1] != 2:
    raise ValueError(f'rope_2d: positions_yx must be [batch, length, 2], got {positions_yx.shape}.')
  x_row, x_col = jnp.split(x, 2, axis=-1)
  rotated = jnp.concatenate([_rope(x_row, positions_yx[..., 0], base),
                             _rope(x_col, positions_yx[..., 1], base)], axis=-1)
  return _masked(rotated, x, rotate_mask)
