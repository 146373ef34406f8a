"""Transformer-PSM (Yau et al. 2025): a transformer over chunks glued by a learned prefix scan.

The sequence is cut into chunks C_i of `chunk_size` c tokens.

* Enc: x_i = token embedding + learned *chunk-local* position embedding (positions 0..c-1 in every
  chunk; no global positions, which is what lets lengths generalise). x_i is [c, d].
* Agg(x, y) = LayerNorm(RH(bidirectional transformer([x | y] + slot positions))), RH = the right c
  tokens. Agg is not associative; the prefix states s_i = Agg-bracketed(x_0 .. x_{i-1}) use the static
  Blelloch bracketing (blelloch.py) in training and the binary counter (same bracketing) in decoding.
  The identity state (the prefix of chunk 0) is a learned [c, d] `empty_state`.
* Inf(s, C_i) = RH(causal transformer([s_{i-1} | x_i] + positions 0..2c-1)) -> norm -> output head.

Targets: EVERY token of a chunk is a target. logits[t] is a function of the prefix state of t's chunk and
the tokens of that chunk up to and including t (so for an LM, logits[t] predicts token t+1; for a
labelling task such as S5, logits[t] predicts the label of position t). This differs from the reference
code, whose Inf sees [prefix; first c-1 tokens] so that the first token of each chunk is never a target.

`TransformerPSM.__call__` is the training form (all chunks at once, Blelloch scan, one vectorised Agg per
tree level). `StreamingDecoder` is the inference form: a `BinaryCounter` of chunk states (O(log n) roots)
plus a KV cache of 2c slots for Inf inside the current chunk; its logits equal the training logits
(tests/psm/test_psm_transformer.py). Dropout is not used (the modules run deterministically).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

from jaxlab.nn.attention import causal_mask
from jaxlab.nn.layers import Embed, FlatDense, LayerNorm, default_kernel_init
from jaxlab.nn.psm.blelloch import BinaryCounter, blelloch_exclusive_scan
from jaxlab.nn.lm.transformer import Block, TransformerConfig

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class PSMConfig:
  """Architecture of a Transformer-PSM."""
  vocab_size: int                 # Input token ids.
  chunk_size: int                 # c: tokens per chunk (1 for S5).
  embed_dim: int = 64             # d.
  num_heads: int = 4              # Heads of the Agg and Inf transformers.
  mlp_dim: int = 0                # MLP width; 0 -> 4 * embed_dim.
  agg_layers: int = 1             # Layers of the bidirectional Agg transformer.
  inf_layers: int = 2             # Layers of the causal Inf transformer.
  out_size: int | None = None     # Output classes; None -> vocab_size (LM).
  max_len: int = 4096             # Decode budget in tokens (the binary counter's capacity).

  def __post_init__(self):
    for name in ('vocab_size', 'chunk_size', 'embed_dim', 'num_heads', 'agg_layers', 'inf_layers',
                 'max_len'):
      value = getattr(self, name)
      if not isinstance(value, int) or value <= 0:
        raise ValueError(f'{name} must be a positive int, got {value!r}.')
    if self.embed_dim % self.num_heads:
      raise ValueError(f'embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads}).')

  @property
  def num_outputs(self) -> int:
    return self.out_size or self.vocab_size

  @property
  def max_chunks(self) -> int:
    return -(-self.max_len // self.chunk_size)

  def block_config(self, layers: int) -> TransformerConfig:
    """GPT-2-style blocks (LayerNorm, GELU, biases) without RoPE; positions are added by the PSM."""
    return TransformerConfig(vocab_size=1, num_layers=layers, embed_dim=self.embed_dim,
                             num_heads=self.num_heads, mlp_dim=self.mlp_dim, max_len=2 * self.chunk_size,
                             norm='layer', mlp='gelu', pos='learned', use_bias=True)


class TransformerPSM(nn.Module):
  """Enc / Agg / Inf; see the module docstring."""
  config: PSMConfig

  def setup(self):
    cfg = self.config
    c, d = cfg.chunk_size, cfg.embed_dim
    self.tok_embed = Embed(cfg.vocab_size, d)
    self.chunk_pos = Embed(c, d)
    self.agg_pos = Embed(2 * c, d)
    self.agg_blocks = [Block(cfg.block_config(cfg.agg_layers)) for _ in range(cfg.agg_layers)]
    self.agg_norm = LayerNorm()
    self.inf_pos = Embed(2 * c, d)
    self.inf_blocks = [Block(cfg.block_config(cfg.inf_layers)) for _ in range(cfg.inf_layers)]
    self.inf_norm = LayerNorm()
    self.head = FlatDense(cfg.num_outputs, kernel_init=nn.with_logical_partitioning(
        default_kernel_init, ('embed', 'vocab')), bias_init=nn.with_logical_partitioning(
            nn.initializers.zeros, ('vocab',)))  # Rank-2 GEMM (see layers.FlatDense).
    self.empty_state = self.param('empty_state', nn.with_logical_partitioning(
        nn.initializers.normal(d ** -0.5), (None, 'embed')), (c, d))

  # Enc.
  def encode(self, tokens: Array, positions: Array) -> Array:
    """tokens, positions (chunk-local, 0..c-1): [...] ints -> [..., d]."""
    return self.tok_embed(tokens) + self.chunk_pos(positions)

  # Agg.
  def aggregate(self, left: Array, right: Array) -> Array:
    """Agg(left, right): [m, c, d] x [m, c, d] -> [m, c, d] (right half of a bidirectional transformer)."""
    c = self.config.chunk_size
    h = jnp.concatenate([left, right], axis=1) + self.agg_pos(jnp.arange(2 * c))
    for block in self.agg_blocks:
      h = block(h)  # mask=None: bidirectional.
    return self.agg_norm(h[:, c:])

  # Inf.
  def infer(self, state: Array, x: Array) -> Array:
    """Inf(s, x): state [m, c, d], chunk encodings x [m, L <= c, d] -> logits [m, L, out] (causal)."""
    c, length = self.config.chunk_size, x.shape[1]
    h = jnp.concatenate([state, x], axis=1) + self.inf_pos(jnp.arange(c + length))
    mask = causal_mask(c + length)
    for block in self.inf_blocks:
      h = block(h, mask=mask)
    return self.head(self.inf_norm(h[:, c:])).astype(jnp.float32)

  def infer_prefill(self, state: Array) -> Array:
    """Writes the prefix state [m, c, d] into Inf's KV cache (decode mode; pass mutable=['cache'])."""
    h = state + self.inf_pos(jnp.arange(self.config.chunk_size))
    for block in self.inf_blocks:
      h = block(h, decode=True)
    return h

  def infer_step(self, x: Array, position: Array) -> Array:
    """One token of the current chunk: x [m, 1, d], position c + j -> logits [m, 1, out] (decode mode)."""
    h = x + self.inf_pos(jnp.reshape(position, (1,)))
    for block in self.inf_blocks:
      h = block(h, decode=True)
    return self.head(self.inf_norm(h)).astype(jnp.float32)

  def empty(self, batch: int) -> Array:
    """The identity prefix state, [batch, c, d]."""
    return jnp.broadcast_to(self.empty_state, (batch,) + self.empty_state.shape)

  def __call__(self, tokens: Array, *, deterministic: bool = True) -> Array:
    """Training form.

    Args:
      tokens: [batch, T] int ids, any T >= 1 (the last chunk is padded; padding never influences the
        returned logits because Inf is causal and the padded chunk is nobody's prefix).
      deterministic: accepted for interface parity with DecoderLM; the PSM has no dropout.

    Returns:
      logits [batch, T, out] float32 (every position is a target; see the module docstring).
    """
    del deterministic
    cfg = self.config
    b, t = tokens.shape
    c, d = cfg.chunk_size, cfg.embed_dim
    n = -(-t // c)
    tokens = jnp.pad(tokens, ((0, 0), (0, n * c - t)))
    x = self.encode(tokens.reshape(b, n, c), jnp.arange(c))                # [b, n, c, d]
    if self.is_initializing():  # A single chunk calls no Agg: create its parameters anyway.
      self.aggregate(x[:, 0], x[:, 0])

    def agg(left, right):  # [m, b, c, d] pairs -> one batched Agg call.
      m = left.shape[0]
      return self.aggregate(left.reshape(m * b, c, d), right.reshape(m * b, c, d)).reshape(m, b, c, d)
    prefix, ident = blelloch_exclusive_scan(agg, jnp.swapaxes(x, 0, 1))  # [n, b, c, d], [n]
    prefix = jnp.where(ident[:, None, None, None], self.empty(b)[None], prefix)
    prefix = jnp.swapaxes(prefix, 0, 1).reshape(b * n, c, d)
    logits = self.infer(prefix, x.reshape(b * n, c, d))
    return logits.reshape(b, n * c, -1)[:, :t]


class StreamingDecoder:
  """Token-by-token inference: binary counter over chunk states + Inf KV cache inside the chunk.

  Memory: at most ⌈log2(n_chunks + 1)⌉ roots (+ as many cached folds) of [batch, c, d] and a 2c-slot
  KV cache; amortised O(1) Agg calls per chunk. Feeding more than `config.max_len` tokens raises.
  """

  def __init__(self, model: TransformerPSM, params: Any, batch_size: int):
    self.model, self.params, self.batch_size = model, params, batch_size
    cfg = model.config
    self.c = cfg.chunk_size
    variables = {'params': params}
    self._agg = jax.jit(lambda l, r: model.apply(variables, l, r, method=TransformerPSM.aggregate))
    self._encode = jax.jit(lambda tok, j: model.apply(variables, tok, j, method=TransformerPSM.encode))
    self._prefill = jax.jit(lambda cache, s: model.apply(
        {'params': params, 'cache': cache}, s, method=TransformerPSM.infer_prefill,
        mutable=['cache'])[1]['cache'])
    self._step = jax.jit(lambda cache, x, pos: model.apply(
        {'params': params, 'cache': cache}, x, pos, method=TransformerPSM.infer_step, mutable=['cache']))
    self._empty = model.apply(variables, batch_size, method=TransformerPSM.empty)
    state = jnp.zeros((batch_size, self.c, cfg.embed_dim))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), state,
                                               method=TransformerPSM.infer_prefill))['cache']
    self._zero_cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    self.counter = BinaryCounter(self._agg, max_chunks=cfg.max_chunks)
    self.num_tokens = 0
    self._chunk: list[Array] = []
    self._cache = None

  def step(self, tokens: Array) -> Array:
    """Consumes one token per sequence ([batch] ints) and returns its logits [batch, out]."""
    cfg = self.model.config
    tokens = jnp.asarray(tokens)
    if tokens.shape != (self.batch_size,):
      raise ValueError(f'step expects tokens of shape ({self.batch_size},), got {tokens.shape}.')
    if self.num_tokens >= cfg.max_len:
      raise ValueError(f'decode past max_len={cfg.max_len} tokens (the binary counter holds '
                       f'{cfg.max_chunks} chunks); build the model with a larger max_len.')
    j = len(self._chunk)
    if j == 0:
      prefix = self.counter.prefix
      self._cache = self._prefill(self._zero_cache, self._empty if prefix is None else prefix)
    x = self._encode(tokens[:, None], jnp.full((1,), j))                  # [b, 1, d]
    logits, upd = self._step(self._cache, x, jnp.asarray(self.c + j))
    self._cache = upd['cache']
    self._chunk.append(x)
    self.num_tokens += 1
    if len(self._chunk) == self.c:
      self.counter.push(jnp.concatenate(self._chunk, axis=1))
      self._chunk = []
    return logits[:, 0]

  def state_bytes(self) -> int:
    """Bytes held for the prefix: stored roots and cached folds (not the fixed 2c-slot KV cache)."""
    held = [r for r in self.counter.roots + self.counter.folds if r is not None]
    unique = {id(r): r for r in held}.values()
    return int(sum(np.prod(r.shape) * r.dtype.itemsize for r in unique))
