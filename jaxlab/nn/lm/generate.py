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

For RoPE models the KV cache is sized to prompt length + max_new_tokens (not config.max_len), which
keeps each decode step's attention over a short cache.
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
  sorted_logits = jnp.sort(scaled, axis=-1)[:, ::-1]
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  cum_before = jnp.cumsum(probs, axis=-1) - probs            # probability mass ranked above each token
  keep_sorted = cum_before < top_p                            # always keeps the top token
  # Threshold = smallest kept logit; keep every token at or above it.
  threshold = jnp.min(jnp.where(keep_sorted, sorted_logits, jnp.inf), axis=-1, keepdims=True)
  filtered = jnp.where(scaled >= threshold, scaled, -jnp.inf)
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


@functools.partial(jax.jit, static_argnames=('model', 'max_new_tokens'))
def _generate(model, params, prompts, prompt_mask, rng, temperature, top_p, eos_id, pad_id, stops, active,
              inputs_embeds, embeds_mask, hooks, *, max_new_tokens):
  b = prompts.shape[0]
  cache = init_cache(model, b)
  logits, state = model.apply({'params': params, 'cache': cache}, prompts, padding=prompt_mask,
                              decode=True, mutable=['cache'], inputs_embeds=inputs_embeds,
                              embeds_mask=embeds_mask, hooks=hooks)
  last_logits = logits[:, -1]

  def cond(carry):
    step, done = carry[0], carry[3]
    return jnp.logical_and(step < max_new_tokens, jnp.logical_not(jnp.all(done)))

  def body(carry):
    step, cache, last_logits, done, rng, toks, mask, lps, recent = carry
    rng, sub = jax.random.split(rng)
    tok = sample_logits(last_logits, sub, temperature, top_p)
    lp = jnp.take_along_axis(jax.nn.log_softmax(last_logits, -1), tok[:, None], -1)[:, 0]
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
    logits, state = model.apply({'params': params, 'cache': cache}, tok[:, None], decode=True,
                                mutable=['cache'], hooks=hooks)
    return step + 1, state['cache'], logits[:, -1], done, rng, toks, mask, lps, recent

  carry = (jnp.int32(0), state['cache'], last_logits, jnp.logical_not(active), rng,
           jnp.full((b, max_new_tokens), pad_id, jnp.int32), jnp.zeros((b, max_new_tokens), jnp.bool_),
           jnp.zeros((b, max_new_tokens), jnp.float32), jnp.full((b, stops.shape[1]), -2, jnp.int32))
  _, _, _, _, _, toks, mask, lps, _ = jax.lax.while_loop(cond, body, carry)
  return GenerateOutput(toks, mask, lps, jnp.sum(mask, axis=-1, dtype=jnp.int32))


def generate(model: DecoderLM, params: Any, prompts: Array, prompt_mask: Array | None = None, *,
             max_new_tokens: int, rng: Array | None = None, temperature: float = 0.,
             top_p: float = 1., eos_id: int | None = None, pad_id: int = 0,
             stop_sequences: Sequence[Sequence[int]] = (), active: Array | None = None,
             inputs_embeds: Array | None = None, embeds_mask: Array | None = None,
             hooks: Any = None) -> GenerateOutput:
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
  cache_model = _cache_model(model, prompts.shape[1] + max_new_tokens)
  return _generate(cache_model, params, prompts, jnp.asarray(prompt_mask, jnp.bool_), rng,
                   jnp.float32(temperature), jnp.float32(top_p),
                   jnp.int32(-1 if eos_id is None else eos_id), jnp.int32(pad_id), stop_table(stop_sequences),
                   active, inputs_embeds, embeds_mask, hooks, max_new_tokens=max_new_tokens)
