"""Rollouts: G completions per prompt from jaxlab.nn.lm.generate on the training mesh, decoded and scored.

`sample` repeats each left-padded prompt G times (rows i·G … i·G+G-1 belong to prompt i), places the rows
on the mesh's batch axes (padding with inactive rows up to a multiple of the data-parallel size) and runs
the one jitted KV-cache sampler. `decode_and_stop` turns tokens into text and cuts each completion after
its first stop string, masking the tokens after it (a text stop can end inside a token, and BPE may not
produce the stop string's own token ids). `score` applies a reward function to each text: a reward that
raises is logged and scores every component 0 for that sample; the run goes on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxlab.nn.lm import generate as generate_lib
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.rl.rewards import RewardFn

Decode = Callable[[Sequence[int]], str]


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  """How completions are drawn."""
  max_new_tokens: int
  temperature: float = 1.0
  top_p: float = 1.0
  eos_id: int | None = None
  pad_id: int = 0
  stop_sequences: tuple[tuple[int, ...], ...] = ()   # token-id stops checked inside the sampler
  stop_strings: tuple[str, ...] = ()                 # text stops applied after decoding


@dataclasses.dataclass
class Completions:
  """G completions per prompt, flattened prompt-major: row i·G + j is sample j of prompt i."""
  prompt: np.ndarray           # [rows, prompt_len] int32, left-padded
  prompt_mask: np.ndarray      # [rows, prompt_len] bool
  tokens: np.ndarray           # [rows, max_new_tokens] int32
  mask: np.ndarray             # [rows, max_new_tokens] bool (after stop-string truncation)
  texts: list[str]             # decoded completions (cut after the first stop string)
  seconds: float               # wall time of sampling (device) + decoding (host)
  logprobs: np.ndarray | None = None  # [rows, max_new_tokens] float32 sampler log-probs (temperature 1)

  @property
  def lengths(self) -> np.ndarray:
    return self.mask.sum(axis=1)


def check_prompts(prompt: np.ndarray, prompt_mask: np.ndarray) -> None:
  """Clear errors for an empty batch, wrong ranks or a prompt without tokens."""
  prompt, prompt_mask = np.asarray(prompt), np.asarray(prompt_mask)
  if prompt.ndim != 2 or prompt.shape[0] == 0:
    raise ValueError(f"the prompt batch is empty or not [num_prompts, prompt_len]: shape {prompt.shape}")
  if prompt_mask.shape != prompt.shape:
    raise ValueError(f"prompt_mask shape {prompt_mask.shape} differs from prompt shape {prompt.shape}")
  empty = np.flatnonzero(~prompt_mask.any(axis=1))
  if len(empty):
    raise ValueError(f"prompts {empty[:8].tolist()} have no tokens (all padding)")


def data_parallel_size(sharding: jax.sharding.NamedSharding | None) -> int:
  if sharding is None:
    return 1
  spec = sharding.spec[0] if sharding.spec else None
  axes = () if spec is None else (spec if isinstance(spec, tuple) else (spec,))
  return int(np.prod([sharding.mesh.shape[a] for a in axes])) if axes else 1


def sample(model: DecoderLM, params: Any, prompt: np.ndarray, prompt_mask: np.ndarray, *, group_size: int,
           rng: jax.Array, cfg: SamplingConfig, decode: Decode,
           sharding: jax.sharding.NamedSharding | None = None) -> Completions:
  """Samples ``group_size`` completions of each prompt and decodes them.

  Args:
    model: the policy's DecoderLM.
    params: its params (any sharding; the sampler runs where they live).
    prompt: [num_prompts, prompt_len] int32, left-padded.
    prompt_mask: [num_prompts, prompt_len] bool.
    group_size: completions per prompt (G).
    rng: sampling key.
    cfg: SamplingConfig.
    decode: token ids -> text (special tokens dropped).
    sharding: batch sharding on the training mesh (None: default device placement).

  Returns:
    Completions with num_prompts·G rows.
  """
  check_prompts(prompt, prompt_mask)
  if group_size < 1:
    raise ValueError(f"group_size={group_size} must be ≥ 1")
  t0 = time.perf_counter()
  rows = np.repeat(np.asarray(prompt, np.int32), group_size, axis=0)
  row_mask = np.repeat(np.asarray(prompt_mask, bool), group_size, axis=0)
  n = rows.shape[0]
  dp = data_parallel_size(sharding)
  pad = (-n) % dp
  active = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
  prompts_in = np.concatenate([rows, np.repeat(rows[:1], pad, axis=0)])
  mask_in = np.concatenate([row_mask, np.repeat(row_mask[:1], pad, axis=0)])
  args = [prompts_in, mask_in, active]
  if sharding is not None:
    args = [jax.device_put(a, sharding) for a in args]
  out = generate_lib.generate(model, params, args[0], args[1], max_new_tokens=cfg.max_new_tokens, rng=rng,
                              temperature=cfg.temperature, top_p=cfg.top_p, eos_id=cfg.eos_id, pad_id=cfg.pad_id,
                              stop_sequences=cfg.stop_sequences, active=args[2])
  tokens, mask, logprobs = (np.asarray(x)[:n] for x in jax.device_get((out.tokens, out.mask, out.logprobs)))
  texts, mask = decode_and_stop(tokens, mask, decode, cfg.stop_strings)
  return Completions(rows, row_mask, tokens, mask, texts, time.perf_counter() - t0, np.where(mask, logprobs, 0.0))


def decode_and_stop(tokens: np.ndarray, mask: np.ndarray, decode: Decode, stop_strings: Sequence[str] = ()
                    ) -> tuple[list[str], np.ndarray]:
  """Decodes each row's masked tokens; cuts text and mask after the first stop string.

  Args:
    tokens: [rows, length] int32.
    mask: [rows, length] bool.
    decode: ids -> text.
    stop_strings: text stops; the kept text ends with the stop string, the mask keeps the tokens up to and
      including the one that completes it.

  Returns:
    (texts, mask [rows, length] bool).
  """
  texts, new_mask = [], np.array(mask, bool)
  for r in range(tokens.shape[0]):
    ids = tokens[r][mask[r]].tolist()
    text = decode(ids)
    hits = [(text.find(s), s) for s in stop_strings if s and s in text]
    if hits:
      pos, stop = min(hits)
      text = text[:pos + len(stop)]
      lo, hi = 1, len(ids)  # smallest prefix whose decoding contains the kept text's stop
      while lo < hi:
        mid = (lo + hi) // 2
        if decode(ids[:mid]).find(stop) == pos:
          hi = mid
        else:
          lo = mid + 1
      keep = np.flatnonzero(mask[r])[:lo]
      new_mask[r] = False
      new_mask[r, keep] = True
    texts.append(text)
  return texts, new_mask


@dataclasses.dataclass
class Scores:
  """Per-sample reward components, weighted totals and the count of reward errors."""
  components: dict[str, np.ndarray]   # name -> [rows] float
  total: np.ndarray                   # [rows] float: Σ weight·component
  errors: int


def score(texts: Sequence[str], examples: Sequence[Mapping[str, Any]], reward_fn: RewardFn,
          weights: Mapping[str, float]) -> Scores:
  """Applies ``reward_fn`` to every (text, example); failures score 0 and are logged, never raised.

  A component named in ``weights`` but missing from a sample's output counts 0 for it; components without a
  weight are logged only.
  """
  if len(texts) != len(examples):
    raise ValueError(f"{len(texts)} completions for {len(examples)} examples")
  rows: list[Mapping[str, float]] = []
  errors = 0
  for i, (text, ex) in enumerate(zip(texts, examples)):
    try:
      comps = {k: float(v) for k, v in reward_fn(text, ex).items()}
      if not all(np.isfinite(v) for v in comps.values()):
        raise ValueError(f"non-finite reward components {comps}")
    except Exception as e:  # pylint: disable=broad-except
      errors += 1
      if errors <= 3:
        logging.warning("reward function failed on sample %d (scored 0): %s: %s; text=%r", i, type(e).__name__,
                        e, text[:200])
      comps = {}
    rows.append(comps)
  names = sorted(set(weights) | {k for r in rows for k in r})
  components = {k: np.asarray([r.get(k, 0.0) for r in rows], np.float64) for k in names}
  total = np.zeros(len(rows))
  for k, w in weights.items():
    total = total + float(w) * components[k]
  return Scores(components, total, errors)


def sequence_logprobs(model: DecoderLM, params: Any, prompt: jax.Array, prompt_mask: jax.Array,
                      completion: jax.Array, temperature: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Log-probabilities and entropies of the completion tokens under ``params``.

  Args:
    prompt: [rows, prompt_len] int32 left-padded; prompt_mask: [rows, prompt_len] bool.
    completion: [rows, length] int32 (tokens after a sequence's end are ignored by callers via the mask).
    temperature: logits are divided by it (as the sampler does) before the softmax.

  Returns:
    (logp [rows, length] float32, entropy [rows, length] float32).
  """
  seq = jnp.concatenate([prompt, completion], axis=1)
  padding = jnp.concatenate([prompt_mask, jnp.ones(completion.shape, jnp.bool_)], axis=1)
  logits = model.apply({"params": params}, seq, padding=padding)
  p_len = prompt.shape[1]
  logits = logits[:, p_len - 1:-1] / temperature
  logz = jax.nn.log_softmax(logits, axis=-1)
  logp = jnp.take_along_axis(logz, completion[..., None], axis=-1)[..., 0]
  entropy = -jnp.sum(jnp.exp(logz) * logz, axis=-1)
  return logp, entropy
