"""The SFT-then-GRPO recipe on the one trainer, shared by experiments/rlcr and experiments/multi_answer.

A run is stages, each in its own sub-workdir so that the trainer resumes each one: SFT on the output format
(`run_sft`), then one GRPO run per reward arm from the SFT params (`run_grpo`). `complete` samples n
completions per prompt in batches for evaluation (greedy when temperature is 0).

Stage configs: ``config.sft`` and ``config.rl`` hold trainer keys (total_steps, log_every, eval_every,
checkpoint_every, keep_checkpoints, optimizer); ``config.rl.grpo`` holds the GRPOConfig fields. The shared
keys (seed, mesh, sharding_rules) come from the top level; the RL batch size is prompts_per_step × G.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxlab.data import pipeline
from jaxlab.nn.transformer import DecoderLM
from jaxlab.rl import grpo, rollout, sft
from jaxlab.rl.rewards import RewardFn
from jaxlab.train import trainer

STAGE_DEFAULTS = dict(log_every=50, eval_every=0, checkpoint_every=0, keep_checkpoints=1, ema_decay=0.0,
                      measure_peak=False, peak_flops_per_device=0.0, num_microbatches=1)


def trainer_config(config: ml_collections.ConfigDict, stage: ml_collections.ConfigDict, batch_size: int
                   ) -> ml_collections.ConfigDict:
  """A trainer config for one stage: the stage's trainer keys + the run's seed / mesh / rules."""
  keys = {k: v for k, v in stage.to_dict().items() if k != "grpo"}
  out = ml_collections.ConfigDict({**STAGE_DEFAULTS, **keys})
  out.seed = int(config.seed)
  out.batch_size = int(batch_size)
  out.mesh = config.mesh.to_dict() if hasattr(config.mesh, "to_dict") else dict(config.mesh)
  out.sharding_rules = config.get("sharding_rules")
  return out


def init_fn(model: DecoderLM, length: int) -> Callable[[jax.Array], Any]:
  return lambda rng: model.init(rng, jnp.zeros((1, length), jnp.int32))["params"]


def run_sft(config: ml_collections.ConfigDict, workdir: str, model: DecoderLM,
            records: Sequence[Mapping[str, np.ndarray]], devices=None) -> Any:
  """Trains (or resumes, or reloads a finished) SFT stage; returns its params."""
  stage = config.sft
  it = pipeline.make_lm_pipeline(list(records), global_batch_size=int(stage.batch_size), seed=int(config.seed))
  length = records[0]["prompt"].shape[0] + records[0]["completion"].shape[0]
  task = trainer.Task(init_params=init_fn(model, length), loss_fn=sft.make_sft_loss(model), train_data=it,
                      tokens_per_example=int(records[0]["completion"].shape[0]))
  tcfg = trainer_config(config, stage, int(stage.batch_size))
  tcfg.checkpoint_every = tcfg.checkpoint_every or int(stage.total_steps)
  result = trainer.train(tcfg, workdir, task, devices)
  logging.info("SFT done at step %d: %s", int(result.state.step), result.train_metrics)
  return result.state.params


def prompt_records(prompts: Sequence[Sequence[int]], prompt_len: int, fields: Mapping[str, Sequence[Any]],
                   pad_id: int = 0) -> list[dict[str, np.ndarray]]:
  """Records for the RL prompt iterator: 'prompt', 'prompt_mask' and per-example fields (e.g. 'answer')."""
  p, m = sft.pack_prompts(prompts, prompt_len, pad_id)
  return [{"prompt": p[i], "prompt_mask": m[i], **{k: np.asarray(v[i]) for k, v in fields.items()}}
          for i in range(len(p))]


def run_grpo(config: ml_collections.ConfigDict, workdir: str, *, model: DecoderLM, params: Any,
             records: Sequence[Mapping[str, np.ndarray]], reward_fn: RewardFn, weights: Mapping[str, float],
             decode: rollout.Decode, sampling: rollout.SamplingConfig, ref_params: Any = None,
             on_eval: Callable | None = None, devices=None) -> trainer.TrainResult:
  """One GRPO arm from ``params`` (resumable in ``workdir``)."""
  cfg = grpo.GRPOConfig.from_config(config.rl.grpo)
  tcfg = trainer_config(config, config.rl, cfg.prompts_per_step * cfg.group_size)
  cfg.validate(tcfg.batch_size, int(tcfg.checkpoint_every))
  it = pipeline.make_lm_pipeline(list(records), global_batch_size=cfg.prompts_per_step, seed=int(config.seed))
  host_params = jax.device_get(params)
  engine = grpo.GRPO(model, cfg, sampling, reward_fn, weights, decode, it,
                     init_params=lambda rng: jax.tree.map(jnp.asarray, host_params), ref_params=ref_params)
  task = engine.task()
  task.on_eval = on_eval
  return trainer.train(tcfg, workdir, task, devices)


def complete(model: DecoderLM, params: Any, prompt: np.ndarray, prompt_mask: np.ndarray, *, n: int,
             sampling: rollout.SamplingConfig, decode: rollout.Decode, seed: int = 0, max_rows: int = 1024
             ) -> rollout.Completions:
  """n completions per prompt (rows prompt-major), sampled in equal chunks of at most ``max_rows`` rows.

  The last chunk is padded with copies of the first prompt (one compiled shape); their rows are dropped.
  """
  per = min(max(1, max_rows // n), len(prompt))
  total = len(prompt)
  pad = -total % per
  prompt = np.concatenate([prompt, np.repeat(prompt[:1], pad, axis=0)])
  prompt_mask = np.concatenate([prompt_mask, np.repeat(prompt_mask[:1], pad, axis=0)])
  parts = []
  for i, start in enumerate(range(0, len(prompt), per)):
    sl = slice(start, start + per)
    parts.append(rollout.sample(model, params, prompt[sl], prompt_mask[sl], group_size=n,
                                rng=jax.random.fold_in(jax.random.key(seed), i), cfg=sampling, decode=decode))
  rows = total * n
  cat = lambda name: np.concatenate([getattr(p, name) for p in parts])[:rows]  # noqa: E731
  return rollout.Completions(cat("prompt"), cat("prompt_mask"), cat("tokens"), cat("mask"),
                             [t for p in parts for t in p.texts][:rows], sum(p.seconds for p in parts),
                             cat("logprobs"))


def stage_dir(workdir: str, name: str) -> str:
  return os.path.join(workdir, name)
