"""ELF: a DiT-style denoiser of frozen-encoder embeddings with a shared-weight token decoder.

Embedded Language Flows (arXiv 2605.10938, official code lillian039/ELF). The network maps a noisy
sequence of encoder embeddings z_t [batch, length, latent_dim] at time t to a clean estimate
x̂ [batch, length, latent_dim] (denoise mode) or to token logits [batch, length, vocab] (decode mode,
run once at t = 1 after sampling). Layout, as the official model:

  input   concat[z, x̂_prev] (self-conditioning) -> Dense(2C -> C, bias) -> Dense(C -> bottleneck, no bias)
          -> Dense(bottleneck -> d, bias)
  prefix  [4 time tokens | 4 guidance tokens | 4 mode tokens] prepended in context (no adaLN):
          time_k = learned_k + MLP(sinusoid(t)), guidance_k = learned_k + MLP(sinusoid(w)),
          mode_k = learned_k · (1 in decode mode, 0 in denoise mode)
  blocks  jaxlab.nn.lm.transformer.Block: pre-norm RMSNorm, bidirectional attention with qkv (and
          output) biases, QK-RMSNorm, 1D RoPE, SwiGLU (hidden 4d·2/3). Control tokens sit at RoPE
          position 0, i.e. they are not rotated (cos 0 = 1, sin 0 = 0), exactly the official
          "empty token" rotation; text tokens take positions 0..L-1.
  output  denoise: RMSNorm -> zero-initialised Dense(d -> C) = x̂ (or v / ε for the ablations)
          decode:  logits = Dense(GELU_tanh(Dense(h; d -> 512)); 512 -> vocab) on the last hidden h
          (the official head reads the residual stream without the output norm)

The optional learnable token table (`embedding='learned'`, the ablation) lives here too:
`Elf.embed_tokens(tokens)` -> [batch, length, latent_dim], trained jointly through both losses.

Parameter paths (pinned by tests/elf/test_elf_model.py): self_cond_proj, in_proj, in_bottleneck,
time_embed/{mlp_0,mlp_2}, guidance_embed/{mlp_0,mlp_2}, time_tokens, guidance_tokens, mode_tokens,
layers_N/..., out_norm, out_proj, dec_proj, dec_unembed, token_table (learned embeddings only).
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn.lm import transformer
from jaxlab.nn.layers import RMSNorm

Array = jax.Array

EMBEDDINGS = ('frozen', 'learned')


@dataclasses.dataclass(frozen=True)
class ElfConfig:
  """Architecture of an ELF denoiser (defaults: the CPU-scale model of experiments/elf)."""
  latent_dim: int = 384           # C: width of the encoder embeddings (MiniLM 384; the paper's T5 512).
  vocab_size: int = 30522         # Decoder output classes.
  num_layers: int = 4             # Transformer blocks.
  embed_dim: int = 256            # d: residual width.
  num_heads: int = 4              # Attention heads (head_dim = d / heads).
  mlp_dim: int = 0                # SwiGLU hidden width; 0 -> int(4·d·2/3).
  bottleneck_dim: int = 128       # Input bottleneck C -> bottleneck -> d.
  num_time_tokens: int = 4        # In-context time tokens.
  num_guidance_tokens: int = 4    # In-context guidance-scale tokens.
  num_mode_tokens: int = 4        # In-context mode tokens (on in decode mode).
  decoder_dim: int = 512          # Decode head hidden -> decoder_dim -> vocab.
  freq_dim: int = 256             # Sinusoidal features of t and w.
  norm_eps: float = 1e-6          # RMSNorm epsilon (blocks, QK-norm, output norm).
  rope_base: float = 10000.       # RoPE wavelength base.
  embedding: str = 'frozen'       # 'frozen' (encoder latents come with the batch) | 'learned' (token_table).
  table_init_std: float = 0.2     # Learned table init std (the objective divides latents by latent_std).

  def __post_init__(self):
    for name in ('latent_dim', 'vocab_size', 'num_layers', 'embed_dim', 'num_heads', 'bottleneck_dim',
                 'num_time_tokens', 'decoder_dim', 'freq_dim'):
      if getattr(self, name) <= 0:
        raise ValueError(f'ElfConfig.{name} must be positive, got {getattr(self, name)}')
    for name in ('num_guidance_tokens', 'num_mode_tokens', 'mlp_dim'):
      if getattr(self, name) < 0:
        raise ValueError(f'ElfConfig.{name} must be >= 0, got {getattr(self, name)}')
    if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 2:
      raise ValueError(f'ElfConfig.embed_dim ({self.embed_dim}) must split into num_heads ({self.num_heads}) '
                       'heads of even size (RoPE)')
    if self.embedding not in EMBEDDINGS:
      raise ValueError(f'ElfConfig.embedding={self.embedding!r} is not one of {EMBEDDINGS}')

  @property
  def num_prefix_tokens(self) -> int:
    return self.num_time_tokens + self.num_guidance_tokens + self.num_mode_tokens

  def block_config(self) -> transformer.TransformerConfig:
    """The jaxlab transformer config of the blocks (bidirectional use: no mask is passed)."""
    return transformer.TransformerConfig(
        vocab_size=self.vocab_size, num_layers=self.num_layers, embed_dim=self.embed_dim,
        num_heads=self.num_heads, mlp_dim=self.mlp_dim or int(4 * self.embed_dim * 2 / 3), max_len=8,
        norm='rms', norm_eps=self.norm_eps, mlp='swiglu', pos='rope', rope_base=self.rope_base,
        use_bias=True, qk_norm=True)


def _dense(features: int, axes: tuple[str | None, str | None], name: str, *, bias: bool = True,
           init=nn.initializers.xavier_uniform()) -> nn.Dense:
  return nn.Dense(features, use_bias=bias, kernel_init=nn.with_logical_partitioning(init, axes),
                  bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]), name=name)


def sinusoid(t: Array, dim: int, max_period: float = 10000.) -> Array:
  """[batch] scalars -> [batch, dim] features [cos(t·f_k), sin(t·f_k)], f_k = max_period^(-k/half).

  The official TimestepEmbedder embeds t ∈ [0, 1] (and w) as is, without DiT's ×1000.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = t.astype(jnp.float32)[:, None] * freqs[None]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))


class ScalarEmbedder(nn.Module):
  """sinusoid(s) -> Dense -> SiLU -> Dense: [batch] -> [batch, features] (DiT's TimestepEmbedder)."""
  features: int
  freq_dim: int = 256

  @nn.compact
  def __call__(self, s: Array) -> Array:
    init = nn.initializers.normal(0.02)
    h = _dense(self.features, (None, 'embed'), 'mlp_0', init=init)(sinusoid(s, self.freq_dim))
    return _dense(self.features, (None, 'embed'), 'mlp_2', init=init)(nn.silu(h))


class Elf(nn.Module):
  """The ELF network (see the module docstring)."""
  config: ElfConfig

  def _tokens(self, name: str, n: int) -> Array:
    init = nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, None, 'embed'))
    return self.param(name, init, (1, n, self.config.embed_dim), jnp.float32)

  def embed_tokens(self, tokens: Array) -> Array:
    """Learned-table latents (embedding='learned'): [batch, length] ids -> [batch, length, latent_dim]."""
    return self(None, None, None, tokens=tokens)

  @nn.compact
  def __call__(self, z: Array, t: Array, guidance: Array, self_cond: Array | None = None, *,
               decode: bool = False, tokens: Array | None = None) -> Array:
    """Runs the network (or, with `tokens`, only looks up the learned table: see `embed_tokens`).

    Args:
      z: [batch, length, latent_dim] noisy latents (normalised: encoder output / latent_std).
      t: [batch] times in [0, 1] (decode mode: ones).
      guidance: [batch] guidance scales w (a conditioning input).
      self_cond: [batch, length, latent_dim] previous clean estimate, or None for zeros.
      decode: decode mode (mode tokens on, returns logits) instead of denoise mode (returns x̂).
      tokens: [batch, length] ids: return their learned-table rows [batch, length, latent_dim] instead.

    Returns:
      denoise mode: [batch, length, latent_dim] network output (x̂ for x-prediction);
      decode mode: [batch, length, vocab] float32 logits.
    """
    cfg = self.config
    if cfg.embedding == 'learned':
      init = nn.with_logical_partitioning(nn.initializers.normal(cfg.table_init_std), ('vocab', None))
      table = self.param('token_table', init, (cfg.vocab_size, cfg.latent_dim), jnp.float32)
      if tokens is not None:
        return jnp.take(table, tokens, axis=0)
    elif tokens is not None:
      raise ValueError("Elf.embed_tokens needs ElfConfig.embedding='learned'")
    b, length, c = z.shape
    if c != cfg.latent_dim:
      raise ValueError(f'Elf expects latents of width latent_dim={cfg.latent_dim}, got shape {z.shape}')
    sc = jnp.zeros_like(z) if self_cond is None else self_cond
    h = _dense(c, (None, None), 'self_cond_proj')(jnp.concatenate([z, sc], axis=-1))
    h = _dense(cfg.bottleneck_dim, (None, None), 'in_bottleneck', bias=False)(h)
    h = _dense(cfg.embed_dim, (None, 'embed'), 'in_proj')(h)

    prefix = [self._tokens('time_tokens', cfg.num_time_tokens)
              + ScalarEmbedder(cfg.embed_dim, cfg.freq_dim, name='time_embed')(t)[:, None]]
    if cfg.num_guidance_tokens:
      prefix.append(self._tokens('guidance_tokens', cfg.num_guidance_tokens)
                    + ScalarEmbedder(cfg.embed_dim, cfg.freq_dim, name='guidance_embed')(guidance)[:, None])
    if cfg.num_mode_tokens:
      prefix.append(jnp.broadcast_to(self._tokens('mode_tokens', cfg.num_mode_tokens) * float(decode),
                                     (b, cfg.num_mode_tokens, cfg.embed_dim)))
    n_pre = cfg.num_prefix_tokens
    x = jnp.concatenate([jnp.broadcast_to(p, (b,) + p.shape[1:]) for p in prefix] + [h], axis=1)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    positions = jnp.concatenate([jnp.zeros((n_pre,), jnp.int32), jnp.arange(length, dtype=jnp.int32)])
    positions = jnp.broadcast_to(positions, (b, n_pre + length))
    block_cfg = cfg.block_config()
    for i in range(cfg.num_layers):
      x = transformer.Block(block_cfg, name=f'layers_{i}')(x, positions=positions)
    x = x[:, n_pre:]

    outputs = None
    if decode or self.is_initializing():
      hid = nn.gelu(_dense(cfg.decoder_dim, ('embed', 'mlp'), 'dec_proj')(x), approximate=True)
      logits = _dense(cfg.vocab_size, ('mlp', 'vocab'), 'dec_unembed')(hid).astype(jnp.float32)
      outputs = nn.with_logical_constraint(logits, ('batch', 'length', 'vocab'))
    if not decode or self.is_initializing():
      y = RMSNorm(epsilon=cfg.norm_eps, name='out_norm')(x)
      outputs = _dense(c, ('embed', None), 'out_proj', init=nn.initializers.zeros)(y)
    return outputs


def init_params(model: Elf, rng: Array, length: int = 8) -> dict:
  """Boxed parameters of every head (denoise, decode, and the learned table if configured)."""
  c = model.config.latent_dim
  return jax.jit(model.init)(rng, jnp.zeros((1, length, c)), jnp.zeros((1,)), jnp.ones((1,)))['params']
