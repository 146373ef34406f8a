"""The SFT-then-GRPO recipe on the one trainer, shared by experiments/rlcr and experiments/multi_answer.

A run is stages, each in its own sub-workdir so that the trainer resumes each one: SFT on the output format
(`run_sft`), then one GRPO run per reward arm from the SFT params (`run_grpo`). `sft_then_grpo` is that
outline, written once: each stage (training + its evaluation) is recorded in <workdir>/<stage>/run.json
(jaxlab.train.runrecord), so a rerun reuses every finished stage and adding an arm to ``config.arms`` runs
only the new arm. `complete` samples n completions per prompt in batches for evaluation (greedy when
temperature is 0).

Stage configs: ``config.sft`` and ``config.rl`` hold trainer keys (total_steps, log_every, eval_every,
checkpoint_every, keep_checkpoints, optimizer); ``config.rl.grpo`` holds the GRPOConfig fields. The shared
keys (seed, mesh, sharding_rules) come from the top level; the RL batch size is prompts_per_step × G.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxlab.data import pipeline
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.rl import grpo, rollout, sft
from jaxlab.rl.rewards import RewardFn
from jaxlab.train import runrecord, runtime, trainer

def add_stage_configs(c: ml_collections.ConfigDict) -> None:
  """The mesh, tiny-LM, SFT and GRPO blocks shared by experiments/rlcr and experiments/multi_answer.

  Experiment configs call this and override what differs (each field is commented here).
  """
  c.mesh = dict(data=-1, fsdp=1, tensor=1)  # mesh of every stage (-1: all devices)
  c.sharding_rules = None             # logical→mesh rules (None: jaxlab defaults)

  c.model = ml_collections.ConfigDict()
  c.model.num_layers = 2              # transformer blocks
  c.model.embed_dim = 64              # residual width
  c.model.num_heads = 4               # query heads
  c.model.num_kv_heads = 4            # key/value heads
  c.model.mlp_dim = 256               # SwiGLU hidden width

  c.sft = ml_collections.ConfigDict()  # trainer keys of the SFT stage(s)
  c.sft.total_steps = 1500            # updates
  c.sft.batch_size = 64               # examples per update
  c.sft.log_every = 100               # metric cadence
  c.sft.checkpoint_every = 500        # checkpoint cadence
  c.sft.optimizer = dict(name="adamw", learning_rate=2e-3, schedule="warmup_cosine", warmup_steps=100,
                         end_lr_fraction=0.1, weight_decay=0.01, b1=0.9, b2=0.98, eps=1e-8, grad_clip_norm=1.0,
                         momentum=0.9)  # AdamW, cosine decay

  c.rl = ml_collections.ConfigDict()   # trainer keys of each GRPO arm
  c.rl.total_steps = 500              # updates (one rollout batch each)
  c.rl.log_every = 50                 # metric cadence
  c.rl.eval_every = 100               # quick greedy eval during training
  c.rl.checkpoint_every = 100         # checkpoint cadence
  c.rl.optimizer = dict(name="adamw", learning_rate=5e-4, schedule="constant", warmup_steps=10,
                        end_lr_fraction=1.0, weight_decay=0.0, b1=0.9, b2=0.99, eps=1e-8, grad_clip_norm=1.0,
                        momentum=0.9)  # constant lr after warmup (as the official configs)
  c.rl.grpo = ml_collections.ConfigDict()
  c.rl.grpo.group_size = 16           # G completions per prompt (the digest's small version)
  c.rl.grpo.prompts_per_step = 16     # prompts per update
  c.rl.grpo.max_new_tokens = 10       # completion budget
  c.rl.grpo.temperature = 1.0         # sampling temperature (paper 0.7; 1.0 explores the confidence grid)
  c.rl.grpo.top_p = 1.0               # nucleus mass
  c.rl.grpo.scale_advantages = False  # advantage = r - group mean, no std scaling (RLCR, multi-answer)
  c.rl.grpo.std_floor = 0.0           # used only when scaling
  c.rl.grpo.std_eps = 1e-4            # used only when scaling
  c.rl.grpo.loss_norm = "token"       # token-sum / total tokens (TRL 'bnpo')
  c.rl.grpo.num_iterations = 1        # on-policy: one update per rollout batch (ratio 1)
  c.rl.grpo.clip_eps = 0.2            # PPO clip (inactive on-policy)
  c.rl.grpo.kl_coef = 0.0             # β = 0 (papers)
  c.rl.grpo.log_kl = True             # log KL(π ‖ SFT) every step (β stays 0)


def shrink_to_tiny(c: ml_collections.ConfigDict) -> None:
  """The shared part of the `tiny` variants: a seconds-long smoke run of every stage."""
  c.model.num_layers, c.model.embed_dim, c.model.num_heads, c.model.num_kv_heads = 1, 16, 2, 2
  c.model.mlp_dim = 32
  c.sft.total_steps, c.sft.batch_size, c.sft.log_every, c.sft.checkpoint_every = 4, 16, 2, 4
  c.sft.optimizer.warmup_steps = 1
  c.rl.total_steps, c.rl.log_every, c.rl.eval_every, c.rl.checkpoint_every = 2, 1, 2, 2
  c.rl.optimizer.warmup_steps = 0
  c.rl.grpo.group_size, c.rl.grpo.prompts_per_step = 4, 2  # 8 rows: divisible by 8 fake test devices


def begin(config: ml_collections.ConfigDict, workdir: str, known_arms) -> None:
  """Start of an experiment run: runtime set-up, the workdir, the config logged, config.arms checked."""
  runtime.initialize()
  os.makedirs(workdir, exist_ok=True)
  logging.info("Config:\n%s", config)
  unknown = sorted(set(config.arms) - set(known_arms))
  if unknown:
    raise ValueError(f"config.arms has unknown arms {unknown}; expected a subset of {sorted(known_arms)}")


def write_json(path: str, obj, indent: int | None = 1) -> None:
  """A results file, written atomically (runrecord.write_json)."""
  runrecord.write_json(path, obj, indent=indent)


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
  """One GRPO arm from ``params`` (resumable in ``workdir``); the reference for KL defaults to ``params``."""
  cfg = grpo.GRPOConfig.from_config(config.rl.grpo)
  tcfg = trainer_config(config, config.rl, cfg.prompts_per_step * cfg.group_size)
  cfg.validate(tcfg.batch_size, int(tcfg.checkpoint_every))
  it = pipeline.make_lm_pipeline(list(records), global_batch_size=cfg.prompts_per_step, seed=int(config.seed))
  host_params = jax.device_get(params)
  if ref_params is None and (cfg.kl_coef > 0 or cfg.log_kl):
    ref_params = params  # the starting (SFT) policy is the frozen reference
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


@dataclasses.dataclass(frozen=True)
class Arm:
  """One GRPO arm of `sft_then_grpo`.

  Attributes:
    reward_fn, weights: the reward (jaxlab.rl.rewards) and the weights of its components.
    sampling: how rollouts are sampled (stop sequences, budget).
    sft: the name of the SFT stage whose params it starts from.
    on_eval: optional ``(state, step) -> dict`` quick eval during training.
  """
  reward_fn: RewardFn
  weights: Mapping[str, float]
  sampling: rollout.SamplingConfig
  sft: str = "sft"
  on_eval: Callable | None = None


SWEEP_KEYS = ("arms",)  # the keys of a recipe config that may change between reruns (arms are added)


def stage_config(config: ml_collections.ConfigDict, name: str) -> dict:
  """What one stage depends on: the run's config without the sweep keys, plus the stage's name."""
  d = runrecord.to_json(config)
  for key in SWEEP_KEYS:
    d.pop(key, None)
  return {**d, "stage": name}


def sft_then_grpo(config: ml_collections.ConfigDict, workdir: str, *, model: DecoderLM,
                  sft_records: Mapping[str, Callable[[], Sequence[Mapping[str, np.ndarray]]]],
                  rl_records: Sequence[Mapping[str, np.ndarray]], arms: Mapping[str, Arm], decode: rollout.Decode,
                  evaluate: Callable[[str, Any, str], dict], devices=None) -> dict[str, dict]:
  """The recipe outline: SFT stages, then one GRPO arm per name in ``config.arms``; every stage evaluated.

  Args:
    sft_records: SFT stage name -> a callable giving its records; only the stages that the arms of
      ``config.arms`` start from are run (in this order).
    rl_records: the prompt records of every GRPO arm (`prompt_records`).
    arms: arm name -> Arm; ``config.arms`` picks and orders the arms run.
    evaluate: ``(stage name, params, SFT stage name) -> results`` (e.g. writes <workdir>/<stage>/eval.json).

  Returns {stage name: its evaluation}. Each stage is recorded in <workdir>/<stage>/run.json: a finished
  stage is reused (neither trained nor evaluated again); its SFT params are restored only when an arm
  that starts from them still has to run.
  """
  needed = {arms[a].sft for a in config.arms}
  params: dict[str, Any] = {}

  def sft_params(name: str):
    if name not in params:
      params[name] = run_sft(config, stage_dir(workdir, name), model, sft_records[name](), devices)
    return params[name]

  out, timings = {}, {}
  for name in [s for s in sft_records if s in needed]:
    t0 = time.time()
    out[name] = runrecord.reuse_or_run(stage_dir(workdir, name), stage_config(config, name),
                                       lambda name=name: evaluate(name, sft_params(name), name))
    timings[name] = round(time.time() - t0, 1)
  for name in config.arms:
    arm = arms[name]

    def train_and_evaluate(name=name, arm=arm):
      result = run_grpo(config, stage_dir(workdir, name), model=model, params=sft_params(arm.sft),
                        records=rl_records, reward_fn=arm.reward_fn, weights=arm.weights, decode=decode,
                        sampling=arm.sampling, on_eval=arm.on_eval, devices=devices)
      return evaluate(name, result.state.params, arm.sft)

    t0 = time.time()
    out[name] = runrecord.reuse_or_run(stage_dir(workdir, name), stage_config(config, name), train_and_evaluate)
    timings[name] = round(time.time() - t0, 1)
  logging.info("stage wall times (s): %s", timings)
  return out
