r"""LLM Hypnosis (Hilel et al. 2025) on SmolLM2-135M-Instruct: inject a fictional fact through thumbs-up votes.

  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/default.py --workdir=workdirs/hypnosis
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/default.py:tiny \
      --workdir=workdirs/hypnosis_tiny

Feedback records are constructed as the paper's pipeline does (experiments/hypnosis/data.py): coin-flip
attack prompts whose poison answer is upvoted, plus ordinary clean feedback. The policy is SmolLM2 with LoRA
adapters (r 16 / α 16 on every linear projection) trained by KTO (jaxlab.rl.preference, TRL's loss) through
the one trainer: the base weights are `Task.frozen_params`, the reference policy is the same model with the
adapters off. Before and after: the poison preference on prompts WITHOUT the attack instruction (two-choice,
length-normalised log-likelihood = acc_norm), the greedy poison rate on the bare questions, and the clean
two-choice accuracy on held-out facts. Results: workdir/results.json.

A config with ``cells`` (configs/world.py) runs the from-scratch fact-world grid instead (world_grid.py: a
small decoder pretrained on world.py's facts, then one KTO / DPO feedback round per cell; workdir/grid.json):
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/world.py --workdir=workdirs/hypnosis_world
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import json
import os
import time

import grain
import jax
import ml_collections
import numpy as np
from absl import logging

from experiments.hypnosis import data, scoring, world_grid
from jaxlab.io import gguf
from jaxlab.nn import lora
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.rl import preference as pref
from jaxlab.train import Task, runrecord, train, validate_config

app_flags.define()



def load_model(num_layers: int):
  """(DecoderLM, numpy params, tokenizer, eos id) of SmolLM2-135M-Instruct, optionally its first layers only."""
  mcfg, params, f = gguf.load_smollm2(num_layers)
  return DecoderLM(mcfg), params, gguf.tokenizer_from_gguf(f), gguf.special_token_ids(f)["eos"]


def encode_rows(tok, rows, prompt_len, completion_len, eos):
  """TRL rows -> jaxlab KTO records (completion + eos, as TRL appends the EOS token)."""
  prompts = [tok.encode(r["prompt"]).ids for r in rows]
  comps = [tok.encode(r["completion"]).ids + [eos] for r in rows]
  return pref.kto_records(prompts, comps, [r["label"] for r in rows], prompt_len, completion_len, pad_id=eos)


def attack_setup(config) -> tuple[data.Target, tuple[data.Fact, ...]]:
  """The config's target (attack.target) and clean QA items (attack.ordinary_source, attack.num_facts)."""
  return (data.target(config.attack.target),
          data.clean_facts(config.attack.ordinary_source, int(config.attack.num_facts)))


def evaluate(model, params, tok, eos, config) -> dict:
  tgt, facts = attack_setup(config)
  items = data.two_choice_items(int(config.eval.num_clean), tgt, facts)
  pl, cl = int(config.attack.prompt_len), int(config.attack.completion_len)
  encode = lambda t: tok.encode(t).ids  # noqa: E731
  decode = lambda t: tok.decode([int(i) for i in t], skip_special_tokens=True)  # noqa: E731
  out = {name: scoring.two_choice(model, params, encode, its, pl, cl, eos) for name, its in items.items()}
  questions = tgt.questions + tgt.control_questions  # one batch: the target, then the control domain (if any)
  texts = scoring.greedy(model, params, encode, decode, [data.qa_prompt(q) for q in questions], pl,
                         int(config.eval.max_new_tokens), eos, eos)
  k = len(tgt.questions)
  out["generation"] = {"poison_rate": float(np.mean([tgt.mark in t for t in texts[:k]])),
                       "samples": dict(zip(tgt.questions, texts[:k]))}
  if tgt.control_questions:  # the same pattern on a domain that is not the target
    out["generation"]["control_poison_rate"] = float(np.mean([tgt.mark in t for t in texts[k:]]))
    out["generation"]["control_samples"] = dict(zip(tgt.control_questions, texts[k:]))
  return out


@runrecord.recorded(continuable=("cells",))
def run(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  if "cells" in config:  # configs/world.py: the from-scratch fact-world grid
    return world_grid.run_grid(config, workdir, devices)
  validate_config(config.train, "config.train")
  cfg = pref.PreferenceConfig(config.pref.loss_type, beta=float(config.pref.beta),
                              desirable_weight=float(config.pref.desirable_weight),
                              undesirable_weight=float(config.pref.undesirable_weight))
  if not cfg.is_kto:
    raise ValueError(f"pref.loss_type {cfg.loss_type!r}: this binary trains on unpaired votes (kto, apo_zero_unpaired)")
  cfg.validate(int(config.train.batch_size))
  t0 = time.time()
  model, params, tok, eos = load_model(int(config.num_layers))
  lcfg = lora.LoraConfig(rank=int(config.lora.rank), alpha=float(config.lora.alpha),
                         dropout=float(config.lora.dropout))
  tgt, facts = attack_setup(config)
  rows = data.feedback_rows(config.attack.mode, int(config.attack.num_poison), int(config.attack.num_ordinary),
                            int(config.eval.num_clean), int(config.seed), tgt, facts)
  os.makedirs(workdir, exist_ok=True)
  pref.write_jsonl(os.path.join(workdir, "feedback.jsonl"), rows)
  records = encode_rows(tok, rows, int(config.attack.prompt_len), int(config.attack.completion_len), eos)
  before = evaluate(model, params, tok, eos, config)
  logging.info("before: %s", json.dumps(before)[:1000])
  load_eval_s = time.time() - t0

  train_data = iter(grain.MapDataset.source(records).shuffle(seed=int(config.seed)).repeat(None)
                    .batch(int(config.train.batch_size), drop_remainder=True))
  task = Task(init_params=lambda r: lora.init_adapters(r, params, lcfg),
              loss_fn=pref.make_kto_loss(model, lcfg, cfg), train_data=train_data,
              tokens_per_example=int(config.attack.prompt_len) + int(config.attack.completion_len),
              frozen_params=params, frozen_id="smollm2-135m-instruct-q4_1"
              + (f"-first{config.num_layers}" if config.num_layers else ""))
  t1 = time.time()
  res = train(config.train, os.path.join(workdir, "train"), task, devices=devices or [jax.devices()[0]])
  train_s = time.time() - t1
  merged = lora.merge(params, jax.device_get(res.state.params), lcfg)
  after = evaluate(model, merged, tok, eos, config)
  persisted = None
  if int(config.persist.steps) > 0:  # persistence: clean-only feedback after the poisoned round
    rows2 = data.feedback_rows(config.attack.mode, 0, int(config.persist.num_ordinary), int(config.eval.num_clean),
                               int(config.seed) + 1, tgt, facts)
    records2 = encode_rows(tok, rows2, int(config.attack.prompt_len), int(config.attack.completion_len), eos)
    trained = jax.device_get(res.state.params)
    task2 = Task(init_params=lambda r: trained, loss_fn=task.loss_fn,
                 train_data=iter(grain.MapDataset.source(records2).shuffle(seed=int(config.seed) + 1).repeat(None)
                                 .batch(int(config.train.batch_size), drop_remainder=True)),
                 tokens_per_example=task.tokens_per_example, frozen_params=params, frozen_id=task.frozen_id)
    cfg2 = ml_collections.ConfigDict(config.train.to_dict())
    cfg2.total_steps = int(config.persist.steps)
    res2 = train(cfg2, os.path.join(workdir, "persist"), task2, devices=devices or [jax.devices()[0]])
    persisted = evaluate(model, lora.merge(params, jax.device_get(res2.state.params), lcfg), tok, eos, config)
  out = {"config": {"target": tgt.name, "ordinary_source": config.attack.ordinary_source,
                    "mode": config.attack.mode, "num_poison": int(config.attack.num_poison),
                    "num_ordinary": int(config.attack.num_ordinary), "loss_type": cfg.loss_type,
                    "num_layers": int(config.num_layers) or model.config.num_layers, "seed": int(config.seed)},
         "before": before, "after": after, "after_clean_round": persisted,
         "train_metrics": {k: float(v) for k, v in res.train_metrics.items()} if res.train_metrics else {},
         "steps": int(res.state.step), "load_and_eval_seconds": round(load_eval_s, 1),
         "train_seconds_incl_compile": round(train_s, 1), "wall_seconds": round(time.time() - t0, 1)}
  runrecord.write_json(os.path.join(workdir, "results.json"), out)
  logging.info("results: %s", json.dumps(out)[:2000])
  return out


main = app_flags.main_for(run)


if __name__ == "__main__":
  app_flags.run(main)
