"""MDLM: a masked (absorbing-state) discrete diffusion language model, loss and ancestral sampler.

Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language Models". Forward process with the
linear schedule α_t = 1 - t: each token is independently replaced by [MASK] with probability t. The
network (SUBS parameterisation) predicts the clean token at every masked position; unmasked tokens are
carried over and the [MASK] class is never predicted. The continuous-time negative ELBO is

    L = E_{t ~ U(0, 1)} [ (-α'_t / (1 - α_t)) Σ_i 1[z_i = MASK] · (-log p_θ(x_i | z_t)) ] / L
      = E_t [ (1/t) Σ_{masked i} -log p_θ(x_i | z_t) ] / L        (nats per token, an NLL upper bound),

with t drawn by MDLM's low-discrepancy sampler (t_j = (u + j/B) mod 1, one u per batch) and clipped to
[t_min, 1]. Ancestral sampling from t = 1 (all masked) to 0 on a uniform grid of N steps: from t to
s < t, each still-masked token is revealed with probability (α_s - α_t)/(1 - α_t) = (t - s)/t, drawn
from p_θ(· | z_t); revealed tokens never change. The last step (s = 0) reveals every remaining token.

The network reuses ELF's backbone pieces so that the two compare at about the same size: token
embedding (vocab + 1 rows, the last is [MASK]) -> jaxlab.nn.lm.transformer.Block × N (bidirectional, RoPE,
QK-norm, SwiGLU, biases) -> RMSNorm -> the same factored head Dense(d -> decoder_dim) -> GELU ->
Dense(-> vocab). No time conditioning (MDLM finds it unnecessary for the absorbing state).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn.diffusion import flow
from jaxlab.nn.lm import transformer
from jaxlab.nn.layers import Embed, RMSNorm

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class MdlmConfig:
  """Architecture of the MDLM network (the [MASK] id is vocab_size)."""
  vocab_size: int                 # Data tokens (outputs); inputs have one more row for [MASK].
  num_layers: int = 4             # Transformer blocks.
  embed_dim: int = 256            # Residual width.
  num_heads: int = 4              # Attention heads.
  mlp_dim: int = 0                # SwiGLU hidden; 0 -> int(4·d·2/3).
  decoder_dim: int = 384          # Output head d -> decoder_dim -> vocab (as ELF's decode head).
  norm_eps: float = 1e-6          # RMSNorm epsilon.
  rope_base: float = 10000.       # RoPE base.

  def __post_init__(self):
    for name in ('vocab_size', 'num_layers', 'embed_dim', 'num_heads', 'decoder_dim'):
      if getattr(self, name) <= 0:
        raise ValueError(f'MdlmConfig.{name} must be positive, got {getattr(self, name)}')

  @property
  def mask_id(self) -> int:
    return self.vocab_size

  def block_config(self) -> transformer.TransformerConfig:
    return transformer.TransformerConfig(
        vocab_size=self.vocab_size + 1, num_layers=self.num_layers, embed_dim=self.embed_dim,
        num_heads=self.num_heads, mlp_dim=self.mlp_dim or int(4 * self.embed_dim * 2 / 3), max_len=8,
        norm='rms', norm_eps=self.norm_eps, mlp='swiglu', pos='rope', rope_base=self.rope_base,
        use_bias=True, qk_norm=True)


class Mdlm(nn.Module):
  """[batch, length] ids (with [MASK] = vocab_size) -> [batch, length, vocab] float32 logits."""
  config: MdlmConfig

  @nn.compact
  def __call__(self, z: Array) -> Array:
    cfg = self.config
    x = Embed(cfg.vocab_size + 1, cfg.embed_dim, name='embed')(z)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    block_cfg = cfg.block_config()
    for i in range(cfg.num_layers):
      x = transformer.Block(block_cfg, name=f'layers_{i}')(x)
    x = RMSNorm(epsilon=cfg.norm_eps, name='out_norm')(x)
    init = nn.initializers.xavier_uniform()
    h = nn.Dense(cfg.decoder_dim, kernel_init=nn.with_logical_partitioning(init, ('embed', 'mlp')),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('mlp',)), name='dec_proj')(x)
    logits = nn.Dense(cfg.vocab_size, kernel_init=nn.with_logical_partitioning(init, ('mlp', 'vocab')),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ('vocab',)),
                      name='dec_unembed')(nn.gelu(h, approximate=True))
    return nn.with_logical_constraint(logits.astype(jnp.float32), ('batch', 'length', 'vocab'))


def low_discrepancy_times(rng: Array, n: int, t_min: float = 1e-3) -> Array:
  """[n] times t_j = (u + j/n) mod 1 with one u ~ U(0, 1), mapped to [t_min, 1]."""
  u = jax.random.uniform(rng, ())
  t = jnp.mod(u + jnp.arange(n, dtype=jnp.float32) / n, 1.)
  return t_min + (1. - t_min) * t


def nelbo_terms(logits: Array, tokens: Array, masked: Array, t: Array) -> Array:
  """Per-sequence negative ELBO in nats per token: (1/t) Σ_masked -log p(x_i) / length.

  Args:
    logits: [batch, length, vocab] network output at z_t.
    tokens: [batch, length] clean ids.
    masked: [batch, length] bool, True where z_t is [MASK].
    t: [batch] times.

  Returns:
    [batch].
  """
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, tokens[..., None], axis=-1)[..., 0]
  return jnp.sum(nll * masked, axis=-1) / (t * tokens.shape[1])


def mdlm_loss(model: Mdlm, params, batch: dict, rng: Array, t_min: float = 1e-3) -> tuple[Array, dict]:
  """Mean negative ELBO (nats/token) of batch['tokens'] [batch, length]."""
  tokens = batch['tokens']
  k_t, k_m = jax.random.split(rng)
  t = low_discrepancy_times(k_t, tokens.shape[0], t_min)
  masked = jax.random.uniform(k_m, tokens.shape) < t[:, None]
  z = jnp.where(masked, model.config.mask_id, tokens)
  logits = model.apply({'params': params}, z)
  nelbo = jnp.mean(nelbo_terms(logits, tokens, masked, t))
  acc = jnp.sum((jnp.argmax(logits, -1) == tokens) * masked) / jnp.maximum(jnp.sum(masked), 1)
  return nelbo, {'nelbo': nelbo, 'masked_acc': acc}


def ancestral_step(logits: Array, z: Array, t: Array, s: Array, rng: Array, mask_id: int) -> Array:
  """One MDLM ancestral update of z [batch, length] from time t to s < t given logits at z."""
  k_reveal, k_draw = jax.random.split(rng)
  is_masked = z == mask_id
  reveal = jax.random.uniform(k_reveal, z.shape) < (t - s) / t
  draw = jax.random.categorical(k_draw, logits, axis=-1).astype(z.dtype)
  return jnp.where(is_masked & reveal, draw, z)


@functools.partial(jax.jit, static_argnames=('model', 'num_samples', 'length', 'num_steps', 'eos_id', 'pad_id'))
def _generate(model, params, rng, *, num_samples, length, num_steps, eos_id, pad_id):
  mask_id = model.config.mask_id
  grid = jnp.linspace(1., 0., num_steps + 1)
  z0 = jnp.full((num_samples, length), mask_id, jnp.int32)

  def body(z, xs):
    t, s, key = xs
    return ancestral_step(model.apply({'params': params}, z), z, t, s, key, mask_id), None

  z, _ = jax.lax.scan(body, z0, (grid[:-1], grid[1:], jax.random.split(rng, num_steps)))
  if eos_id is not None:
    z = flow.mask_after_eos(z, eos_id, pad_id)
  return z


def generate(model: Mdlm, params, rng: Array, *, num_samples: int, length: int, num_steps: int,
             eos_id: int | None = None, pad_id: int = 0) -> Array:
  """Ancestral sampling with `num_steps` network evaluations; returns [num_samples, length] int32."""
  flow.check_steps(num_steps)
  if num_samples <= 0 or length <= 0:
    raise ValueError(f'num_samples ({num_samples}) and length ({length}) must be positive')
  return _generate(model, params, rng, num_samples=num_samples, length=length, num_steps=int(num_steps),
                   eos_id=eos_id, pad_id=pad_id)
