"""The outcome table: every strategy run on every task once, correctness and cost recorded.

A strategy is a model × a decoding method (CONCUR's definition). For each chat model (jaxlab.agents.chat:
SmolLM2-135M-Instruct, Gemma 3 270M) the methods are

  direct  greedy, "reply with only the answer", `direct_tokens` new tokens at most;
  cot     greedy, "think step by step ... end with 'Answer: X'", `cot_tokens` at most;
  sc4     self-consistency: 4 samples at `temperature` of the CoT prompt (`sc_prompt='cot'`, the paper's
          form) or of the direct prompt (`sc_prompt='direct'`: short sampled answers, what a loaded 2-core
          CPU affords), majority vote of the extracted answers (ties: the answer seen first);
  sc2     the first 2 of those 4 samples, voted the same way: a free sub-strategy (no extra sampling; its
          cost is the cost of those 2 samples).

Cost is model FLOPs (jaxlab.train.flops: prompt tokens × forward FLOPs at the prompt length + generated
tokens × forward FLOPs at the full length; padding not counted; each SC sample pays its own prefill, as
an unshared batch does) and wall seconds (each batch's wall time shared equally by its tasks).

`run_model_method(...)` runs one (model, method) on a list of tasks in fixed-shape batches (every prompt
left-padded to `prompt_len`, so each method compiles once per model) and returns per-task records. The
caller caches each (model, method) through jaxlab.train.runrecord.reuse_or_run, which makes the
precompute resumable.
"""

from __future__ import annotations

import collections
import math
import re
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.routing.tasks import NUMERIC, Task
from jaxlab.train import flops as flops_lib

METHODS = ('direct', 'cot', 'sc4')  # sc2 is derived from sc4's samples
DIRECT_SUFFIX = '\nReply with only the final answer, nothing else.'
COT_SUFFIX = "\nThink step by step, briefly. End with 'Answer: <answer>'."
_NUMBER = re.compile(r'-?\d+(?:\.\d+)?')


def prompt_text(task: Task, method: str) -> str:
  return task.question.strip() + (DIRECT_SUFFIX if method == 'direct' else COT_SUFFIX)


def extract_answer(text: str, family: str, method: str) -> str:
  """The final answer in a completion: after the last 'Answer:', else (numeric families) the first number
  of a direct reply / the last number of a CoT, else the first line."""
  text = text.strip()
  if 'answer:' in text.lower():
    tail = text[text.lower().rindex('answer:') + len('answer:'):].strip()
    line = tail.splitlines()[0].strip() if tail else ''
    if family in NUMERIC:
      nums = _NUMBER.findall(line.replace(',', ''))
      return nums[0] if nums else line
    return line.strip(' .*"\'`')
  if family in NUMERIC:
    nums = _NUMBER.findall(text.replace(',', ''))
    if nums:
      return nums[0] if method == 'direct' else nums[-1]
    return ''
  first = text.splitlines()[0] if text else ''
  return first.strip(' .*"\'`')


def majority(answers: Sequence[str]) -> str:
  """The most frequent non-empty answer (ties: the first seen); '' when all are empty."""
  counts = collections.Counter(a for a in answers if a)
  if not counts:
    return ''
  best = max(counts.values())
  return next(a for a in answers if a and counts[a] == best)


def sequence_flops(cfg, prompt_tokens: int, new_tokens: int) -> float:
  """Model FLOPs of a prefill of `prompt_tokens` and `new_tokens` decode steps (jaxlab.train.flops)."""
  total = prompt_tokens + new_tokens
  return (prompt_tokens * flops_lib.lm_forward_flops_per_token(cfg, max(prompt_tokens, 1))
          + new_tokens * flops_lib.lm_forward_flops_per_token(cfg, total))


def sample(chat, ids: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float, seed: int,
           batch_size: int, prompt_len: int) -> list[tuple[str, int, float]]:
  """(text, generated tokens, batch wall seconds / rows) per prompt; every batch has one shape."""
  from jaxlab.nn.lm import transformer  # pylint: disable=import-outside-toplevel
  from jaxlab.nn.lm.generate import generate  # pylint: disable=import-outside-toplevel
  model = transformer.DecoderLM(chat.config)
  too_long = [len(s) for s in ids if len(s) > prompt_len]
  if too_long:
    raise ValueError(f'a prompt has {max(too_long)} tokens > prompt_len={prompt_len}; raise config.prompt_len')
  out = []
  for start in range(0, len(ids), batch_size):
    chunk = ids[start:start + batch_size]
    toks = np.full((batch_size, prompt_len), chat.pad_id, np.int32)
    mask = np.zeros((batch_size, prompt_len), bool)
    for i, s in enumerate(chunk):
      toks[i, prompt_len - len(s):], mask[i, prompt_len - len(s):] = s, True
    mask[len(chunk):, -1] = True
    active = np.arange(batch_size) < len(chunk)
    t0 = time.perf_counter()
    res = generate(model, chat.params, jnp.asarray(toks), jnp.asarray(mask), max_new_tokens=max_new_tokens,
                   rng=jax.random.fold_in(jax.random.key(seed), start), temperature=temperature,
                   eos_id=chat.eos_id, pad_id=chat.pad_id, stop_sequences=chat.stop_sequences,
                   active=jnp.asarray(active))
    tokens, keep = np.asarray(res.tokens), np.asarray(res.mask)
    wall = (time.perf_counter() - t0) / len(chunk)
    for row in range(len(chunk)):
      gen = [int(t) for t, k in zip(tokens[row], keep[row]) if k]
      text = chat.tokenizer.decode([t for t in gen if t != chat.eos_id], skip_special_tokens=True)
      out.append((text, len(gen), wall))
  return out


def run_model_method(chat, tasks: Sequence[Task], method: str, *, direct_tokens: int, cot_tokens: int,
                     temperature: float, seed: int, batch_size: int, prompt_len: int,
                     sc_prompt: str = 'cot') -> dict[str, dict]:
  """Per task id the records of `method` ('direct' / 'cot' / 'sc4'; 'sc4' also yields its 'sc2').

  sc_prompt: the prompt the self-consistency samples answer ('cot', or 'direct': short sampled answers).

  Returns {strategy_method: {task_id: {'correct', 'flops', 'seconds', 'answer', 'tokens'}}}.
  """
  if method not in METHODS:
    raise ValueError(f'unknown method {method!r}; expected one of {METHODS}')
  if sc_prompt not in ('cot', 'direct'):
    raise ValueError(f"sc_prompt must be 'cot' or 'direct', got {sc_prompt!r}")
  asked = sc_prompt if method == 'sc4' else method
  ids = [chat.prompt_ids([{'role': 'user', 'content': prompt_text(t, asked)}]) for t in tasks]
  if method in ('direct', 'cot'):
    outs = sample(chat, ids, max_new_tokens=direct_tokens if method == 'direct' else cot_tokens,
                  temperature=0., seed=seed, batch_size=batch_size, prompt_len=prompt_len)
    recs = {}
    for t, s, (text, n, wall) in zip(tasks, ids, outs):
      ans = extract_answer(text, t.family, method)
      recs[t.id] = dict(correct=bool(t.correct(ans)), flops=sequence_flops(chat.config, len(s), n),
                        seconds=wall, answer=ans, tokens=n, text=text)
    return {method: recs}
  k = 4
  rep = [s for s in ids for _ in range(k)]
  outs = sample(chat, rep, max_new_tokens=cot_tokens if sc_prompt == 'cot' else direct_tokens,
                temperature=temperature, seed=seed, batch_size=batch_size, prompt_len=prompt_len)
  result = {'sc2': {}, 'sc4': {}}
  for i, (t, s) in enumerate(zip(tasks, ids)):
    samples = outs[k * i:k * (i + 1)]
    answers = [extract_answer(text, t.family, sc_prompt) for text, _, _ in samples]
    for name, m in (('sc2', 2), ('sc4', 4)):
      vote = majority(answers[:m])
      result[name][t.id] = dict(
          correct=bool(t.correct(vote)), answer=vote, answers=answers[:m],
          flops=float(sum(sequence_flops(chat.config, len(s), n) for _, n, _ in samples[:m])),
          seconds=float(sum(w for _, _, w in samples[:m])), tokens=int(sum(n for _, n, _ in samples[:m])))
  return result


def batches_needed(n_tasks: int, method: str, batch_size: int) -> int:
  return math.ceil(n_tasks * (4 if method == 'sc4' else 1) / batch_size)
