"""Batched, jitted autoregressive sampling from a `DecoderLM` with its KV cache.

`generate(model, params, prompts, prompt_mask, ...)` runs one prefill over left-padded prompts and then
a `lax.while_loop` of single-token decode steps, all inside one jit. Decoding is greedy when
`temperature == 0`, else temperature + nucleus (top-p) sampling. Each sequence stops at its own `eos_id`
or after any of the optional `stop_sequences` (token-id sequences, e.g. a closing tag; the stop tokens are
kept); later positions are masked out. `active` [batch] switches individual rows off (they generate
nothing: padding rows that make a batch divisible by the mesh). The loop ends when every sequence is
done or after `max_new_tokens`.

Outputs are fixed-shape so RL code can batch them: tokens [batch, max_new_tokens], a bool mask of the
real generated tokens (the eos token itself included), per-token log-probabilities under the model
(temperature 1, for policy-gradient losses) and lengths.

Continuous tokens: `inputs_embeds` [batch, prompt_len, embed] with `embeds_mask` [batch, prompt_len]
put vectors in place of the prompt's token embeddings at the masked positions (the ids there are
ignored) during the prefill. `hooks` (jaxlab.interp.hooks interventions, e.g. a steering vector)
apply to the prefill and to every decode step; their masks must broadcast to both (where=None, a
[batch, 1] mask or a head mask), and captures are not returned (use jaxlab.interp.hooks.run).

For RoPE models the KV cache is sized to the slots the call needs (prompt length + max_new_tokens - 1: the
last token is never fed back), not config.max_len, and the decode loop runs in segments over growing
caches (`cache_buckets`: 256, 512, ... slots, then the rest; `cache_bucket=0` for one segment), so a step
reads at most about twice the filled part of the cache instead of every slot of a long generation. Each
segment is its own `lax.while_loop` in the one jit (one more compiled loop body per segment).

Speed (experiments/benchmarks/README.md, "LM prefill and decode"): the sampler is chosen on the host, so the
compiled loop holds only what it needs: greedy is a max and a min over the maximal ids (`_greedy`, two
vectorised reductions; XLA:CPU's (value, index) argmax reduce was 3x slower), and the recorded log-prob
is logit - logsumexp at the chosen token (`_token_logprob`; no [batch, vocab] log-softmax is written);
temperature sampling with top_p == 1 skips the nucleus; top_p < 1 finds the nucleus by bisection over the
float order (`nucleus_threshold`, 32 vectorised passes) instead of a full vocabulary sort, which XLA:CPU
runs as a scalar comparator loop (the sort alone took ~1 s per step at batch 32 over SmolLM2's 49k
vocabulary on the 2-core test machine). The prefill projects only the last prompt position to the
vocabulary (`DecoderLM(last_only=True)`). `sample_logits` (traced temperature and top_p) keeps every branch.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxlab.nn.lm.transformer import DecoderLM, init_cache

Array = jax.Array


class GenerateOutput(NamedTuple):
  tokens: Array     # [batch, max_new_tokens] int32; pad_id after a sequence is done.
  mask: Array       # [batch, max_new_tokens] bool, True for generated tokens (eos included).
  logprobs: Array   # [batch, max_new_tokens] float32 log p(token) under the model (0 where masked).
  lengths: Array    # [batch] int32 number of generated tokens.


def left_pad(sequences: list[list[int]], pad_id: int = 0) -> tuple[Array, Array]:
  """Left-pads token lists into ([batch, max_len] int32 tokens, [batch, max_len] bool mask)."""
  if not sequences or any(len(s) == 0 for s in sequences):
    raise ValueError('Every prompt needs at least one token.')
  n = max(len(s) for s in sequences)
  toks = [[pad_id] * (n - len(s)) + list(s) for s in sequences]
  mask = [[False] * (n - len(s)) + [True] * len(s) for s in sequences]
  return jnp.asarray(toks, jnp.int32), jnp.asarray(mask, jnp.bool_)


def _ordered_key(x: Array) -> Array:
  """float32 -> int32 with the same order (negative floats have their magnitude bits flipped)."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
  return jnp.where(bits >= 0, bits, bits ^ jnp.int32(0x7FFFFFFF))


def _key_to_float(key: Array) -> Array:
  bits = jnp.where(key >= 0, key, key ^ jnp.int32(0x7FFFFFFF))
  return jax.lax.bitcast_convert_type(bits, jnp.float32)


def nucleus_threshold_sort(scaled: Array, top_p: Array | float) -> Array:
  """Reference form: the smallest logit of the nucleus, by a full sort. [batch, vocab] -> [batch, 1]."""
  sorted_logits = jnp.sort(scaled, axis=-1)[:, ::-1]
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  cum_before = jnp.cumsum(probs, axis=-1) - probs            # probability mass ranked above each token
  keep_sorted = cum_before < top_p                            # always keeps the top token
  return jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)


def nucleus_threshold(scaled: Array, top_p: Array | float) -> Array:
  """Fast form of `nucleus_threshold_sort`: bisection over the float32 order, no sort.

  A token is in the nucleus iff the probability mass of the tokens strictly above it is < top_p; that
  predicate is monotone in the logit, so the smallest kept logit is found exactly by 32 bisection steps
  over the int32 image of the float order, each one masked sum over the vocabulary. XLA:CPU's sort of a
  [batch, 49152] row is a scalar comparator loop (about a second per step at batch 32 on the 2-core test
  machine); this is 32 vectorised passes.

  Args:
    scaled: [batch, vocab] float32 logits (already divided by the temperature).
    top_p: scalar in (0, 1].

  Returns:
    [batch, 1] float32: keep the tokens with scaled >= it.
  """
  scaled = scaled.astype(jnp.float32)
  probs = jax.nn.softmax(scaled, axis=-1)
  lo = _ordered_key(jnp.min(scaled, axis=-1))                 # [batch]
  hi = _ordered_key(jnp.max(scaled, axis=-1))                 # the top token is always kept

  def body(_, bounds):
    lo, hi = bounds
    mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)               # floor((lo + hi) / 2) without overflow
    above = jnp.sum(jnp.where(scaled > _key_to_float(mid)[:, None], probs, 0.), axis=-1)
    keep = above < top_p                                      # the logit `mid` would be kept
    open_ = lo < hi
    return jnp.where(open_ & ~keep, mid + 1, lo), jnp.where(open_ & keep, mid, hi)

  lo, _ = jax.lax.fori_loop(0, 32, body, (lo, hi))
  return _key_to_float(lo)[:, None]


def sample_logits(logits: Array, rng: Array, temperature: Array | float, top_p: Array | float) -> Array:
  """Greedy (temperature <= 0) or temperature + top-p sampling.

  Args:
    logits: [batch, vocab] float32.
    rng: PRNG key.
    temperature: scalar; <= 0 means argmax.
    top_p: scalar in (0, 1]; the smallest set of tokens whose probability reaches top_p is kept.

  Returns:
    [batch] int32 token ids.
  """
  temperature = jnp.asarray(temperature, jnp.float32)
  greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  scaled = logits / jnp.maximum(temperature, 1e-6)
  filtered = jnp.where(scaled >= nucleus_threshold(scaled, top_p), scaled, -jnp.inf)
  sampled = jax.random.categorical(rng, filtered, axis=-1).astype(jnp.int32)
  return jnp.where(temperature > 0, sampled, greedy)


def stop_table(stop_sequences) -> Array:
  """Token-id stop sequences -> [num_stops, max_len] int32, right-aligned, -1 = wildcard (left pad).

  A row of all -1 would match anything, so empty sequences are an error.
  """
  seqs = [list(map(int, s)) for s in stop_sequences]
  if not seqs:
    return jnp.zeros((0, 1), jnp.int32)
  if any(len(s) == 0 for s in seqs):
    raise ValueError('stop_sequences must not contain an empty sequence.')
  n = max(len(s) for s in seqs)
  return jnp.asarray([[-1] * (n - len(s)) + s for s in seqs], jnp.int32)


def _cache_model(model: DecoderLM, total_len: int) -> DecoderLM:
  cfg = model.config
  if cfg.pos == 'rope':
    return DecoderLM(dataclasses.replace(cfg, max_len=total_len))
  if total_len > cfg.max_len:
    raise ValueError(f'prompt + max_new_tokens = {total_len} exceeds max_len {cfg.max_len}.')
  return model


def cache_buckets(prompt_len: int, max_new_tokens: int, first: int = 256) -> tuple[int, ...]:
  """KV-cache sizes of the decode segments: first, 2·first, 4·first, ... up to half the slots needed, then those.

  The prompt takes `prompt_len` slots and every generated token but the last is fed back, so a call needs
  need = prompt_len + max_new_tokens - 1 slots. Each size s with prompt_len < s <= need / 2 ends a segment
  whose steps attend over s slots only (at most about twice the filled part), instead of the whole cache
  from the first step; the last segment has `need`. `first` <= 0 gives one segment (one loop body).
  """
  need = prompt_len + max_new_tokens - 1
  sizes = []
  size = first
  while 0 < size and 2 * size <= need:
    if size > prompt_len:
      sizes.append(size)
    size *= 2
  return tuple(sizes) + (need,)


def _grow_cache(cache: Any, model: DecoderLM, batch: int) -> Any:
  """Zero-pads every cache leaf (k/v [batch, slots, ...], valid [batch, slots]) to `model`'s cache shapes."""
  shapes = jax.eval_shape(lambda: init_cache(model, batch))
  grow = lambda x, s: x if x.shape == s.shape else jnp.pad(x, [(0, n - m) for m, n in zip(x.shape, s.shape)])
  return jax.tree.map(grow, cache, shapes)


def _greedy(logits: Array) -> Array:
  """jnp.argmax(logits, -1) (the first maximum) as a max then a min over the maximal ids: two plain
  reductions, which XLA:CPU vectorises, instead of its (value, index) pair reduce (3x slower at
  [32, 49152]). [batch, vocab] -> [batch] int32."""
  vocab = logits.shape[-1]
  top = jnp.max(logits, axis=-1, keepdims=True)
  ids = jnp.where(logits == top, jnp.arange(vocab, dtype=jnp.int32), vocab)
  return jnp.minimum(jnp.min(ids, axis=-1), vocab - 1)  # vocab - 1 only for an all-NaN row


def _next_token(logits: Array, rng: Array, temperature: Array, top_p: Array, sampler: str) -> Array:
  """`sample_logits` with the branch chosen at trace time: 'greedy' is one argmax (no sort, no softmax),
  'temperature' skips the nucleus (top_p == 1), 'nucleus' adds the bisection threshold. [batch] int32."""
  if sampler == 'greedy':
    return _greedy(logits)
  scaled = logits / jnp.maximum(temperature, 1e-6)
  if sampler == 'nucleus':
    scaled = jnp.where(scaled >= nucleus_threshold(scaled, top_p), scaled, -jnp.inf)
  return jax.random.categorical(rng, scaled, axis=-1).astype(jnp.int32)


def _token_logprob(logits: Array, tok: Array) -> Array:
  """log_softmax(logits)[tok] without materialising the [batch, vocab] log-softmax. [batch] float32."""
  top = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
  lse = top + jnp.log(jnp.sum(jnp.exp(logits - top[:, None]), axis=-1))
  return jnp.take_along_axis(logits, tok[:, None], -1)[:, 0] - lse


@functools.partial(jax.jit, static_argnames=('models', 'max_new_tokens', 'sampler'))
def _generate(models, params, prompts, prompt_mask, rng, temperature, top_p, eos_id, pad_id, stops, active,
              inputs_embeds, embeds_mask, hooks, *, max_new_tokens, sampler):
  """models: one DecoderLM per decode segment, with growing cache sizes (see `cache_buckets`)."""
  b, prompt_len = prompts.shape
  cache = init_cache(models[0], b)
  logits, state = models[0].apply({'params': params, 'cache': cache}, prompts, padding=prompt_mask,
                                  decode=True, mutable=['cache'], inputs_embeds=inputs_embeds,
                                  embeds_mask=embeds_mask, hooks=hooks, last_only=True)

  def record(step, logits, rng, done, toks, mask, lps, recent):
    """Samples token `step` from `logits` [batch, vocab] and writes it (pad_id where already done)."""
    rng, sub = jax.random.split(rng)
    tok = _next_token(logits, sub, temperature, top_p, sampler)
    lp = _token_logprob(logits, tok)
    live = jnp.logical_not(done)
    tok = jnp.where(live, tok, pad_id)
    toks = toks.at[:, step].set(tok)
    mask = mask.at[:, step].set(live)
    lps = lps.at[:, step].set(jnp.where(live, lp, 0.))
    stopped = tok == eos_id  # eos_id -1: never
    if stops.shape[0]:  # the last stops.shape[1] generated tokens (-2 before the first) against each stop
      recent = jnp.concatenate([recent[:, 1:], tok[:, None]], axis=1)
      hit = jnp.all((recent[:, None, :] == stops[None]) | (stops[None] == -1), axis=-1)  # [batch, num_stops]
      stopped = jnp.logical_or(stopped, jnp.any(hit, axis=-1))
    done = jnp.logical_or(done, jnp.logical_and(live, stopped))
    return rng, done, toks, mask, lps, recent

  outs = record(0, logits[:, -1], rng, jnp.logical_not(active),
                jnp.full((b, max_new_tokens), pad_id, jnp.int32), jnp.zeros((b, max_new_tokens), jnp.bool_),
                jnp.zeros((b, max_new_tokens), jnp.float32), jnp.full((b, stops.shape[1]), -2, jnp.int32))
  carry = (jnp.int32(1), state['cache']) + outs

  # Step s >= 1 feeds token s - 1 (into slot prompt_len + s - 1) and samples token s; the last token is
  # never fed. Segment j runs the steps whose slot fits its cache, attending over that many slots only.
  for j, model in enumerate(models):
    if j:
      carry = (carry[0], _grow_cache(carry[1], model, b)) + carry[2:]
    end = min(max_new_tokens, model.config.max_len - prompt_len + 1)

    def cond(carry, end=end):
      step, done = carry[0], carry[3]
      return jnp.logical_and(step < end, jnp.logical_not(jnp.all(done)))

    def body(carry, model=model):
      step, cache, rng, done, toks, mask, lps, recent = carry
      logits, state = model.apply({'params': params, 'cache': cache}, toks[:, step - 1][:, None], decode=True,
                                  mutable=['cache'], hooks=hooks)
      return (step + 1, state['cache']) + record(step, logits[:, -1], rng, done, toks, mask, lps, recent)

    carry = jax.lax.while_loop(cond, body, carry)
  _, _, _, _, toks, mask, lps, _ = carry
  return GenerateOutput(toks, mask, lps, jnp.sum(mask, axis=-1, dtype=jnp.int32))


def generate(model: DecoderLM, params: Any, prompts: Array, prompt_mask: Array | None = None, *,
             max_new_tokens: int, rng: Array | None = None, temperature: float = 0.,
             top_p: float = 1., eos_id: int | None = None, pad_id: int = 0,
             stop_sequences: Sequence[Sequence[int]] = (), active: Array | None = None,
             inputs_embeds: Array | None = None, embeds_mask: Array | None = None,
             hooks: Any = None, cache_bucket: int = 256) -> GenerateOutput:
  """Samples continuations of a batch of left-padded prompts.

  Args:
    model: a DecoderLM (its config picks the architecture; its max_len bounds learned positions).
    params: the model's 'params' collection.
    prompts: [batch, prompt_len] int32, left-padded (see `left_pad`).
    prompt_mask: [batch, prompt_len] bool, False = padding (default: all True).
    max_new_tokens: number of decode steps at most.
    rng: PRNG key (needed only when temperature > 0; defaults to key 0).
    temperature: 0 = greedy.
    top_p: nucleus mass in (0, 1].
    eos_id: a sequence is done after emitting this token (None: never).
    pad_id: token written after a sequence is done.
    stop_sequences: token-id sequences; a sequence is done once its last generated tokens equal one of
      them (the stop tokens are part of the output and of the mask).
    active: [batch] bool; False rows generate nothing (mask all False, length 0). Default: all True.
    inputs_embeds: [batch, prompt_len, embed] continuous prompt inputs, used where `embeds_mask`.
    embeds_mask: [batch, prompt_len] bool (default with inputs_embeds: every prompt position).
    hooks: {site: hook} interventions applied at the prefill and at every step (see module docstring).
    cache_bucket: first KV-cache size of the decode segments (`cache_buckets`; RoPE attention models):
      each segment attends over its own cache size, so early steps do not read the empty slots of a long
      generation; each segment compiles its own loop body. 0: one segment over the whole cache.

  Returns:
    GenerateOutput(tokens, mask, logprobs, lengths).
  """
  if max_new_tokens <= 0:
    raise ValueError(f'max_new_tokens must be positive, got {max_new_tokens}.')
  if not 0. < top_p <= 1.:
    raise ValueError(f'top_p must be in (0, 1], got {top_p}.')
  prompts = jnp.asarray(prompts, jnp.int32)
  if prompts.ndim != 2 or prompts.shape[0] == 0 or prompts.shape[1] == 0:
    raise ValueError(f'prompts must be a non-empty [batch, prompt_len] array, got shape {prompts.shape}.')
  active = jnp.ones((prompts.shape[0],), jnp.bool_) if active is None else jnp.asarray(active, jnp.bool_)
  if active.shape != (prompts.shape[0],):
    raise ValueError(f'active must have shape [batch]=({prompts.shape[0]},), got {active.shape}.')
  if prompt_mask is None:
    prompt_mask = jnp.ones(prompts.shape, jnp.bool_)
  rng = jax.random.key(0) if rng is None else rng
  if any(getattr(h, 'capture', False) for h in (hooks or {}).values()):
    raise ValueError('generate() does not return captures; run the model with jaxlab.interp.hooks.run.')
  if inputs_embeds is not None and embeds_mask is None:
    embeds_mask = jnp.ones(prompts.shape, jnp.bool_)
  prompt_len = prompts.shape[1]
  if model.config.pos == 'rope' and model.config.mixer == 'attention':
    sizes = cache_buckets(prompt_len, max_new_tokens, cache_bucket)
  else:  # learned positions fix the cache size (the position table); affine mixers keep a fixed state
    sizes = (prompt_len + max_new_tokens - 1,)
  models = tuple(_cache_model(model, max(size, prompt_len)) for size in sizes)
  temperature, top_p = float(temperature), float(top_p)
  sampler = 'greedy' if temperature <= 0 else ('temperature' if top_p >= 1 else 'nucleus')
  return _generate(models, params, prompts, jnp.asarray(prompt_mask, jnp.bool_), rng,
                   jnp.float32(temperature), jnp.float32(top_p),
                   jnp.int32(-1 if eos_id is None else eos_id), jnp.int32(pad_id), stop_table(stop_sequences),
                   active, inputs_embeds, embeds_mask, hooks, max_new_tokens=max_new_tokens, sampler=sampler)
