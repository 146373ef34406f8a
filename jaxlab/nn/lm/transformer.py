"""Decoder-only transformer language model (Llama-, GPT-2- and Gemma-3-style) built from jaxlab.nn parts.

`TransformerConfig` describes the architecture; `llama_config`, `gpt2_config` and `gemma3_config`
give the three families. Gemma 3 adds, each as its own field (all off by default): norms after the
attention and MLP outputs (`post_norms`), GeGLU (`mlp='geglu'`), embeddings scaled by sqrt(embed_dim)
(`embed_scale`), sliding-window layers with their own RoPE base and a global layer every
`global_every` layers (`sliding_window`, `global_every`, `rope_local_base`), q k^T scaled by
`query_scale`, and optional final-logit soft-capping. `DecoderLM` is a plain Python loop of pre-norm `Block`s (no nn.scan), so parameter paths
are simple and stable: embed/embedding, layers_0/attn/query/kernel, layers_0/mlp/wi_gate/kernel, ...
(pinned by tests/nn/test_transformer.py; rename nothing without a checkpoint migration).

Decoding: `model.init(rng, tokens, decode=True)` (or `init_cache(model, batch_size)`) creates a
'cache' collection with one KV cache of `config.max_len` slots per layer plus the LM's
`position_index` [batch], the number of real (non-padding) tokens seen so far by each sequence.
Then call `model.apply({'params': p, 'cache': c}, tokens, decode=True, mutable=['cache'])` with a
prompt (prefill) and then one token at a time.

Positions: when `positions` is None they are computed from `padding` so that left-padded batches
need no bookkeeping: each real token gets the count of real tokens before it (in decode mode plus
`position_index`). Without padding this is arange(length) (plus the tokens already decoded). Pass
`positions` explicitly to override (e.g. packed documents).

Continuous tokens: `inputs_embeds` [batch, length, embed] with `embeds_mask` [batch, length] puts
given vectors in place of the token embeddings at the masked positions (an image patch, a soft prompt,
an explained activation), in training, scoring and generation (`jaxlab.nn.lm.generate`). With
`embed_scale` (Gemma) they replace the already scaled token embeddings, as Hugging Face's do.

Hooks: `hooks` maps site names to hooks (callables built by `jaxlab.interp.hooks`) that capture,
replace or add to activations. The sites are 'embeddings' (the input embeddings), 'final_hidden' (the
final norm's output) and per block `layers_{i}/` + one of `BLOCK_SITES` ('resid_pre', 'attn_out',
'resid_mid', 'mlp_out', 'resid_post') or 'attn/z', 'attn/head_out' (per-head outputs before and after
the output projection); `hook_sites(config)` lists them. With `hooks=None` nothing changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn

from jaxlab.nn.attention import Attention, apply_hook, causal_mask, combine_masks
from jaxlab.nn.layers import Embed, FlatDense, LayerNorm, Mlp, RMSNorm

Array = jax.Array

_NORMS = ('rms', 'layer')
_MLPS = ('swiglu', 'gelu', 'geglu')
_POSITIONS = ('rope', 'learned')
_MIXERS = ('attention', 'linear_attention', 'retnet', 'gla', 'mamba', 'mamba2', 'mlstm', 'deltanet')
# extend together with make_mixer; the affine mixers live in jaxlab.nn.psm.mixers.MIXERS.
LM_SITES = ('embeddings', 'final_hidden')
BLOCK_SITES = ('resid_pre', 'attn_out', 'resid_mid', 'mlp_out', 'resid_post')
ATTENTION_SITES = ('z', 'head_out')  # under layers_{i}/attn/ (mixer='attention' only).


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Architecture of a decoder-only LM. Parameters are always float32; `dtype` is the compute dtype."""
  vocab_size: int                 # Output classes / embedding rows.
  num_layers: int                 # Number of Blocks.
  embed_dim: int                  # Residual stream width.
  num_heads: int                  # Query heads per attention layer.
  num_kv_heads: int | None = None  # Key/value heads (grouped-query); None -> num_heads.
  head_dim: int | None = None     # Features per head; None -> embed_dim // num_heads.
  mlp_dim: int = 0                # MLP hidden width; 0 -> 4 * embed_dim.
  max_len: int = 2048             # Learned position table size and KV cache length.
  norm: str = 'rms'               # 'rms' (RMSNorm) or 'layer' (LayerNorm with bias).
  norm_eps: float = 1e-5          # Epsilon of every norm.
  mlp: str = 'swiglu'             # 'swiglu' or 'gelu' (tanh approximation).
  pos: str = 'rope'               # 'rope' (1D rotary in attention) or 'learned' (added table).
  rope_base: float = 10000.       # RoPE wavelength base.
  tie_embeddings: bool = True     # Output head is embed.attend (else a separate lm_head).
  use_bias: bool = False          # Biases in attention and MLP projections (GPT-2: True).
  dropout_rate: float = 0.        # Embedding, attention-weight and residual dropout.
  dtype: str = 'float32'          # Compute dtype name ('float32', 'bfloat16', ...).
  mixer: str = 'attention'        # Sequence mixer of each Block (see make_mixer).
  scan_form: str = 'auto'         # Affine mixers: 'sequential' | 'parallel' | 'chunkwise' | 'auto'.
  scan_chunk_size: int = 64       # Affine mixers: chunk length of the chunkwise form.
  qk_norm: bool = False           # RMSNorm on per-head q and k (Qwen3/OLMo2 style).
  remat: str = 'none'             # Per-Block rematerialisation: 'none', 'full', or a jax.checkpoint_policies name.
  # Gemma 3 (all off by default; see gemma3_config).
  post_norms: bool = False        # Extra norms on the attention and MLP outputs before each residual add.
  embed_scale: bool = False       # Token embeddings times sqrt(embed_dim) (in the compute dtype).
  sliding_window: int = 0         # > 0: local attention over this many most recent slots (0 = global).
  global_every: int = 0           # With sliding_window: layers i with (i + 1) % global_every == 0 are global.
  rope_local_base: float = 0.     # RoPE base of the sliding-window layers (0 -> rope_base).
  query_scale: float = 0.         # Multiplies q k^T (Gemma: query_pre_attn_scalar ** -0.5); 0 -> head_dim ** -0.5.
  final_logit_softcap: float = 0.  # > 0: logits = cap * tanh(logits / cap); 0 = none.
  attention_impl: str = 'reference'  # 'reference' | 'xla' | 'cudnn' | 'splash' | 'auto' (jaxlab.nn.fast_attention).

  @property
  def attention_applies_causal(self) -> bool:
    """True when the attention mixer itself applies the causal mask (a fast implementation, which is told
    "causal" rather than handed a dense mask); DecoderLM then leaves the mask to it."""
    return self.mixer == 'attention' and self.attention_impl != 'reference'

  def __post_init__(self):
    from jaxlab.nn import fast_attention  # pylint: disable=import-outside-toplevel
    if self.attention_impl not in fast_attention.IMPLEMENTATIONS:
      raise ValueError(f'attention_impl must be one of {fast_attention.IMPLEMENTATIONS}, got {self.attention_impl!r}.')
    for name in ('vocab_size', 'num_layers', 'embed_dim', 'num_heads', 'max_len'):
      if getattr(self, name) <= 0:
        raise ValueError(f'{name} must be positive, got {getattr(self, name)}.')
    for name in ('num_kv_heads', 'head_dim'):
      if getattr(self, name) is not None and getattr(self, name) <= 0:
        raise ValueError(f'{name} must be positive or None, got {getattr(self, name)}.')
    if self.scan_chunk_size <= 0:
      raise ValueError(f'scan_chunk_size must be positive, got {self.scan_chunk_size}.')
    if self.mlp_dim < 0:
      raise ValueError(f'mlp_dim must be >= 0 (0 means 4 * embed_dim), got {self.mlp_dim}.')
    if self.num_heads % self.resolved_kv_heads:
      raise ValueError(f'num_heads ({self.num_heads}) must be divisible by num_kv_heads '
                       f'({self.resolved_kv_heads}).')
    if self.head_dim is None and self.embed_dim % self.num_heads:
      raise ValueError(f'embed_dim ({self.embed_dim}) must be divisible by num_heads '
                       f'({self.num_heads}) when head_dim is None.')
    for name, allowed in (('norm', _NORMS), ('mlp', _MLPS), ('pos', _POSITIONS), ('mixer', _MIXERS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f'Unknown {name} {getattr(self, name)!r}; expected one of {allowed}.')
    if self.pos == 'rope' and self.resolved_head_dim % 2:
      raise ValueError(f'head_dim must be even for pos="rope", got {self.resolved_head_dim}.')
    if not 0. <= self.dropout_rate < 1.:
      raise ValueError(f'dropout_rate must be in [0, 1), got {self.dropout_rate}.')
    if self.norm_eps <= 0 or self.rope_base <= 0:
      raise ValueError(f'norm_eps ({self.norm_eps}) and rope_base ({self.rope_base}) must be positive.')
    if self.remat not in ('none', 'full') and not callable(
        getattr(jax.checkpoint_policies, self.remat, None)):
      raise ValueError(f"remat must be 'none', 'full' or a jax.checkpoint_policies name, "
                       f'got {self.remat!r}.')
    for name in ('sliding_window', 'global_every', 'rope_local_base', 'query_scale', 'final_logit_softcap'):
      if getattr(self, name) < 0:
        raise ValueError(f'{name} must be >= 0 (0 = off), got {getattr(self, name)}.')
    if self.global_every and not self.sliding_window:
      raise ValueError(f'global_every={self.global_every} needs sliding_window > 0.')
    try:
      jnp.dtype(self.dtype)
    except TypeError as e:
      raise ValueError(f'dtype {self.dtype!r} is not a dtype name.') from e

  @property
  def resolved_head_dim(self) -> int:
    return self.head_dim if self.head_dim is not None else self.embed_dim // self.num_heads

  @property
  def resolved_kv_heads(self) -> int:
    return self.num_kv_heads if self.num_kv_heads is not None else self.num_heads

  @property
  def resolved_mlp_dim(self) -> int:
    return self.mlp_dim or 4 * self.embed_dim

  @property
  def compute_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  def is_local_layer(self, i: int) -> bool:
    """Whether layer i uses sliding-window attention (Gemma 3: five local layers, then one global)."""
    return self.sliding_window > 0 and not (self.global_every and (i + 1) % self.global_every == 0)

  def layer_config(self, i: int) -> 'TransformerConfig':
    """The config Block i sees: a global layer has sliding_window 0, a local one its RoPE base.

    Returns self unchanged when there are no sliding-window layers (Llama, GPT-2).
    """
    if self.sliding_window <= 0:
      return self
    if self.is_local_layer(i):
      return dataclasses.replace(self, global_every=0,
                                 rope_base=self.rope_local_base or self.rope_base)
    return dataclasses.replace(self, sliding_window=0, global_every=0)

  def num_params(self) -> int:
    """Analytic parameter count of DecoderLM(self) (attention mixer only)."""
    if self.mixer != 'attention':
      raise NotImplementedError(f'num_params is analytic for mixer="attention" only; count the '
                                f'parameter tree for mixer={self.mixer!r}.')
    d, v, h, kv, hd, m = (self.embed_dim, self.vocab_size, self.num_heads, self.resolved_kv_heads,
                          self.resolved_head_dim, self.resolved_mlp_dim)
    bias = int(self.use_bias)
    norm = d * (2 if self.norm == 'layer' else 1)
    attn = d * (h + 2 * kv) * hd + h * hd * d + bias * ((h + 2 * kv) * hd + d)
    attn += 2 * hd * int(self.qk_norm)
    attn += 2 * norm * int(self.post_norms)
    if self.mlp in ('swiglu', 'geglu'):
      mlp = 3 * d * m + bias * (2 * m + d)
    else:
      mlp = 2 * d * m + bias * (m + d)
    total = v * d + self.num_layers * (2 * norm + attn + mlp) + norm
    total += self.max_len * d if self.pos == 'learned' else 0
    total += 0 if self.tie_embeddings else d * v
    return total


def llama_config(**overrides: Any) -> TransformerConfig:
  """Llama family (RMSNorm, SwiGLU, RoPE, no biases); defaults are SmolLM2-135M's shape."""
  base = dict(vocab_size=49152, num_layers=30, embed_dim=576, num_heads=9, num_kv_heads=3,
              mlp_dim=1536, max_len=2048, norm='rms', norm_eps=1e-5, mlp='swiglu', pos='rope',
              rope_base=100000., tie_embeddings=True, use_bias=False)
  return TransformerConfig(**{**base, **overrides})


def gpt2_config(**overrides: Any) -> TransformerConfig:
  """GPT-2 family (LayerNorm eps 1e-5, tanh-GELU, learned positions, biases, tied embeddings).

  Defaults are GPT-2 small (124M).
  """
  base = dict(vocab_size=50257, num_layers=12, embed_dim=768, num_heads=12, mlp_dim=3072,
              max_len=1024, norm='layer', norm_eps=1e-5, mlp='gelu', pos='learned',
              tie_embeddings=True, use_bias=True)
  return TransformerConfig(**{**base, **overrides})


def gemma3_config(**overrides: Any) -> TransformerConfig:
  """Gemma 3 text family; defaults are Gemma-3-270M's shape.

  RMSNorm eps 1e-6 everywhere (q/k norms too), pre- and post-norms of each sub-block, GeGLU,
  embeddings scaled by sqrt(embed_dim), tied 262k vocabulary, five sliding-window (512) layers with
  RoPE base 1e4 then one global layer with base 1e6, q k^T scaled by query_pre_attn_scalar ** -0.5
  (256 ** -0.5). The norm `scale` parameters are the effective multipliers, i.e. 1 + the Hugging Face
  Gemma weight (which is what GGUF files store).
  """
  base = dict(vocab_size=262144, num_layers=18, embed_dim=640, num_heads=4, num_kv_heads=1,
              head_dim=256, mlp_dim=2048, max_len=2048, norm='rms', norm_eps=1e-6, mlp='geglu',
              pos='rope', rope_base=1e6, tie_embeddings=True, use_bias=False, qk_norm=True,
              post_norms=True, embed_scale=True, sliding_window=512, global_every=6,
              rope_local_base=1e4, query_scale=256 ** -0.5)
  return TransformerConfig(**{**base, **overrides})


def make_norm(config: TransformerConfig, name: str) -> nn.Module:
  """The config's normalisation layer."""
  if config.norm == 'rms':
    return RMSNorm(epsilon=config.norm_eps, dtype=config.compute_dtype, name=name)
  return LayerNorm(epsilon=config.norm_eps, dtype=config.compute_dtype, name=name)


def make_mixer(config: TransformerConfig, name: str) -> nn.Module:
  """The sequence mixer of one Block.

  A mixer maps x [batch, length, embed] to [batch, length, embed] and accepts the keyword arguments
  mask, positions, deterministic, decode, padding and head_override (see `Attention.__call__`).
  Add new mixers here and to `_MIXERS`. Besides 'attention', the affine mixers of
  `jaxlab.nn.psm.mixers` ('linear_attention', 'retnet', 'gla', 'mamba', 'mamba2', 'mlstm',
  'deltanet') are available; they use `scan_form` / `scan_chunk_size`, carry a recurrent state in the
  'cache' collection when decoding, and support neither padding nor attention overrides.
  """
  if config.mixer == 'attention':
    return Attention(
        num_heads=config.num_heads, num_kv_heads=config.resolved_kv_heads,
        head_dim=config.resolved_head_dim, use_bias=config.use_bias, out_bias=config.use_bias,
        rope='1d' if config.pos == 'rope' else 'none', rope_base=config.rope_base,
        dropout_rate=config.dropout_rate, qk_norm=config.qk_norm, qk_norm_eps=config.norm_eps,
        sliding_window=config.sliding_window, query_scale=config.query_scale or None,
        max_cache_len=config.max_len, dtype=config.compute_dtype,
        implementation=config.attention_impl, causal=config.attention_applies_causal, name=name)
  if config.mixer in _MIXERS:
    from jaxlab.nn.psm import mixers as psm_mixers  # pylint: disable=g-import-not-at-top
    return psm_mixers.MIXERS[config.mixer](
        embed_dim=config.embed_dim, num_heads=config.num_heads, head_dim=config.resolved_head_dim,
        form=config.scan_form, chunk_size=config.scan_chunk_size, dtype=config.compute_dtype,
        name=name)
  raise ValueError(f'Unknown mixer {config.mixer!r}; expected one of {_MIXERS}.')


def hook_sites(config: TransformerConfig) -> tuple[str, ...]:
  """Every hook site name of DecoderLM(config), in forward order."""
  attn = tuple(f'attn/{n}' for n in ATTENTION_SITES) if config.mixer == 'attention' else ()
  per_layer = BLOCK_SITES[:1] + attn + BLOCK_SITES[1:]
  return (LM_SITES[:1] + tuple(f'layers_{i}/{n}' for i in range(config.num_layers) for n in per_layer)
          + LM_SITES[1:])


def _layer_hooks(config: TransformerConfig, hooks: Any) -> list[dict[str, Any] | None]:
  """Splits {site name: hook} into one {block site: hook, 'attn': {...}} (or None) per layer."""
  unknown = set(hooks) - set(hook_sites(config))
  if unknown:
    raise ValueError(f'Unknown hook sites {sorted(unknown)}; see hook_sites(config), e.g. '
                     f'{hook_sites(config)[:4]}.')
  out: list[dict[str, Any] | None] = [None] * config.num_layers
  for name, hook in hooks.items():
    if not name.startswith('layers_'):
      continue
    layer, site = name.split('/', 1)
    d = out[int(layer[len('layers_'):])] = out[int(layer[len('layers_'):])] or {}
    if site.startswith('attn/'):
      d.setdefault('attn', {})[site[len('attn/'):]] = hook
    else:
      d[site] = hook
  return out


class Block(nn.Module):
  """Pre-norm residual block: x + mixer(norm(x)), then x + mlp(norm(x)).

  With `config.post_norms` (Gemma): x + post_norm(mixer(norm(x))), likewise for the MLP.
  """
  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, positions: Array | None = None,
               deterministic: bool = True, decode: bool = False, padding: Array | None = None,
               head_override: tuple[Array, Array] | None = None, hooks: Any = None) -> Array:
    """Applies the block.

    Args:
      x: [batch, length, embed] residual stream.
      mask: bool mask for the mixer, [batch|1, heads|1, length, kv_len].
      positions: [batch, length] positions.
      deterministic: disables dropout when True.
      decode: use the KV cache.
      padding: [batch, length] bool, False = padding token.
      head_override: (weights [batch, heads, length, kv_len], use [heads]) or None.
      hooks: None or {site in BLOCK_SITES: hook, 'attn': {site in ATTENTION_SITES: hook}}.

    Returns:
      [batch, length, embed].
    """
    cfg = self.config
    x = apply_hook(self, hooks, 'resid_pre', x)
    mixer_hooks = {'hooks': hooks['attn']} if hooks and hooks.get('attn') else {}
    h = make_mixer(cfg, 'attn')(
        make_norm(cfg, 'attn_norm')(x), mask=mask, positions=positions, deterministic=deterministic,
        decode=decode, padding=padding, head_override=head_override, **mixer_hooks)
    if cfg.post_norms:
      h = make_norm(cfg, 'attn_post_norm')(h)
    h = apply_hook(self, hooks, 'attn_out', h)
    x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    x = apply_hook(self, hooks, 'resid_mid', x)
    h = Mlp(hidden_dim=cfg.resolved_mlp_dim, activation=cfg.mlp, use_bias=cfg.use_bias,
            dtype=cfg.compute_dtype, name='mlp')(make_norm(cfg, 'mlp_norm')(x), deterministic)
    if cfg.post_norms:
      h = make_norm(cfg, 'mlp_post_norm')(h)
    h = apply_hook(self, hooks, 'mlp_out', h)
    x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))
    return apply_hook(self, hooks, 'resid_post', x)


def positions_from_padding(padding: Array, offset: Array | int = 0) -> Array:
  """Positions that skip padding: each real token gets offset + (number of real tokens before it).

  Args:
    padding: [batch, length] bool, False = padding.
    offset: scalar or [batch] count of real tokens already processed.

  Returns:
    [batch, length] int32 (a padding token gets the position of the next real token).
  """
  counts = jnp.cumsum(padding.astype(jnp.int32), axis=-1) - padding.astype(jnp.int32)
  return (jnp.asarray(offset, jnp.int32).reshape(-1, 1) + counts).astype(jnp.int32)


class DecoderLM(nn.Module):
  """Causal decoder-only language model."""
  config: TransformerConfig

  @nn.compact
  def __call__(self, tokens: Array | None, *, positions: Array | None = None,
               mask: Array | None = None, deterministic: bool = True, decode: bool = False,
               padding: Array | None = None,
               attention_overrides: Sequence[tuple[Array, Array] | None] | None = None,
               return_hidden: bool = False, inputs_embeds: Array | None = None,
               embeds_mask: Array | None = None, hooks: Any = None,
               last_only: bool = False) -> Array | tuple[Array, Array]:
    """Computes next-token logits.

    Args:
      tokens: [batch, length] int32 token ids; may be None when `inputs_embeds` fills every position
        (not at init: the embedding table is created by a token lookup).
      positions: [batch, length] positions; default from `padding` (see module docstring).
      mask: extra bool mask ANDed with the causal mask, [batch|1, 1|heads, length, length]
        (document/packing masks); in decode mode [batch|1, 1|heads, length, max_len].
      deterministic: disables dropout when True (else a 'dropout' rng is needed).
      decode: use and update the KV cache (pass mutable=['cache']).
      padding: [batch, length] bool, False = padding token (e.g. left-padded prompts); padding keys
        are masked out and skipped by the default positions. Logits at padding tokens are unspecified.
      attention_overrides: None or a sequence of num_layers entries, each None or
        (weights [batch, heads, length, kv_len], use [heads] bool), forwarded as head_override.
      return_hidden: also return the final-norm hidden states.
      inputs_embeds: [batch, length, embed] continuous inputs used in place of the token embeddings
        where `embeds_mask` is True (the ids there are ignored); learned positions are still added.
      embeds_mask: [batch, length] bool; None with `inputs_embeds` means every position.
      hooks: None or {site name: hook} (see the module docstring and jaxlab.interp.hooks).
      last_only: project only the last position to the vocabulary (generation's prefill needs no other
        logits): logits and hidden come back with length 1. Hooks still see every position.

    Returns:
      logits [batch, length, vocab] float32, or (logits, hidden [batch, length, embed]) when
      return_hidden.
    """
    cfg = self.config
    if tokens is None and (inputs_embeds is None or embeds_mask is not None):
      raise ValueError('tokens may be None only when inputs_embeds fills every position '
                       '(embeds_mask=None).')
    b, t = tokens.shape if tokens is not None else inputs_embeds.shape[:2]
    if inputs_embeds is not None and inputs_embeds.shape != (b, t, cfg.embed_dim):
      raise ValueError(f'inputs_embeds must be [batch, length, embed] = {(b, t, cfg.embed_dim)}, '
                       f'got {inputs_embeds.shape}.')
    layer_hooks = [None] * cfg.num_layers if not hooks else _layer_hooks(cfg, hooks)
    if attention_overrides is not None and len(attention_overrides) != cfg.num_layers:
      raise ValueError(f'attention_overrides needs {cfg.num_layers} entries, '
                       f'got {len(attention_overrides)}.')
    real = jnp.ones((b, t), jnp.bool_) if padding is None else padding.astype(jnp.bool_)

    offset = 0
    if decode:
      position_index = self.variable('cache', 'position_index', jnp.zeros, (b,), jnp.int32)
      offset = position_index.value
      if not self.is_initializing():
        position_index.value = offset + jnp.sum(real, axis=-1, dtype=jnp.int32)
    if positions is None:
      positions = positions_from_padding(real, offset)

    embed = Embed(cfg.vocab_size, cfg.embed_dim, dtype=cfg.compute_dtype, name='embed')

    def embed_tokens(ids):
      e = embed(ids)
      if cfg.embed_scale:  # Gemma: sqrt(d) rounded to the compute dtype, as Hugging Face does.
        e = e * jnp.asarray(cfg.embed_dim ** 0.5, cfg.compute_dtype)
      return e

    if inputs_embeds is None:
      x = embed_tokens(tokens)
    elif tokens is None or embeds_mask is None:
      x = inputs_embeds.astype(cfg.compute_dtype)
    else:
      x = jnp.where(jnp.asarray(embeds_mask, jnp.bool_)[..., None],
                    inputs_embeds.astype(cfg.compute_dtype), embed_tokens(tokens))
    x = apply_hook(self, hooks, 'embeddings', x)
    if cfg.pos == 'learned':
      x = x + Embed(cfg.max_len, cfg.embed_dim, dtype=cfg.compute_dtype, name='pos_embed')(
          positions.astype(jnp.int32))
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ('batch', 'length', 'embed'))

    if not decode and not cfg.attention_applies_causal:  # Decode mode builds its causal mask from the cache.
      mask = combine_masks(causal_mask(t), mask)
    block_cls = Block
    if cfg.remat != 'none' and not decode:  # Decode path is not rematerialised.
      policy = None if cfg.remat == 'full' else getattr(jax.checkpoint_policies, cfg.remat)
      # Positional call: argnums count self, so deterministic=4 and decode=5 are static.
      block_cls = nn.remat(Block, policy=policy, static_argnums=(4, 5))
    for i in range(cfg.num_layers):
      x = block_cls(cfg.layer_config(i), name=f'layers_{i}')(
          x, mask, positions, deterministic, decode, padding,
          None if attention_overrides is None else attention_overrides[i], layer_hooks[i])

    hidden = apply_hook(self, hooks, 'final_hidden', make_norm(cfg, 'final_norm')(x))
    if last_only:
      hidden = hidden[:, -1:]
    if cfg.tie_embeddings:
      logits = embed.attend(hidden)
    else:
      logits = FlatDense(cfg.vocab_size, use_bias=False, dtype=cfg.compute_dtype,
                         kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                                  ('embed', 'vocab')),
                         name='lm_head')(hidden)
    logits = logits.astype(jnp.float32)
    if cfg.final_logit_softcap > 0:
      logits = jnp.tanh(logits / cfg.final_logit_softcap) * cfg.final_logit_softcap
    logits = nn.with_logical_constraint(logits, ('batch', 'length', 'vocab'))
    return (logits, hidden) if return_hidden else logits


def init_cache(model: DecoderLM, batch_size: int) -> Any:
  """A zero-filled 'cache' collection for `batch_size` sequences of up to config.max_len tokens.

  Uses jax.eval_shape, so no parameters are initialised.
  """
  tokens = jnp.zeros((batch_size, 1), jnp.int32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, decode=True))['cache']
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
