"""GRPO on the one jaxlab trainer: group-centred advantages, the policy-gradient loss, the rollout callback.

Each trainer step: the next batch of prompts comes from the (checkpointed) prompt iterator; the rollout
callback samples G completions per prompt from the *current* params on the training mesh, scores them
with host-side reward functions, turns rewards into group-centred advantages and returns the batch; the
trainer's jitted, donated step then minimises

    L = Σ_rows Σ_t m_t · ( -min(ρ_t A, clip(ρ_t, 1-ε_lo, 1+ε_hi) A) + β·KL_t ) / normaliser

with ρ_t = π(a_t)/π_old(a_t) (π_old = stop_gradient(π) when each batch gets one update, so ρ = 1 and the
clip never fires), KL_t the k3 estimator exp(r - l) - (r - l) - 1 against a frozen reference (l = log π,
r = log π_ref), and the normaliser one of
  * 'token'    – total completion tokens in the global batch (TRL 'bnpo'; the RLCR setting),
  * 'sequence' – per-sequence token means, averaged over sequences (TRL 'grpo'),
  * 'constant' – rows × max_new_tokens (Dr. GRPO).
'token' stays exact under gradient accumulation: each row carries N_tokens / rows and the loss divides by the
sum of that over the micro-batch's rows.

Advantages: A = r - mean_group(r), optionally divided by max(std_group(r), std_floor) + std_eps with the
unbiased std (TRL: floor 0, eps 1e-4; Self-CTRL: floor 0.05, eps 0).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.rl import rollout as rollout_lib
from jaxlab.rl.rewards import RewardFn
from jaxlab.train.step import TrainState
from jaxlab.train.trainer import RolloutContext, Task, to_global

LOSS_NORMS = ("token", "sequence", "constant")


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
  """The RL part of an experiment config (``config.rl``); see `from_config` for the field names."""
  group_size: int = 8              # G completions per prompt
  prompts_per_step: int = 8        # prompts per update; config.batch_size must equal prompts·G
  max_new_tokens: int = 32
  temperature: float = 0.7
  top_p: float = 1.0
  scale_advantages: bool = False   # divide by the group std (False in RLCR / multi-answer)
  std_floor: float = 0.0
  std_eps: float = 1e-4
  loss_norm: str = "token"
  num_iterations: int = 1          # updates per rollout batch (PPO-style reuse when > 1)
  clip_eps: float = 0.2
  clip_eps_high: float = 0.0       # 0: same as clip_eps
  kl_coef: float = 0.0             # β; > 0 needs reference params
  log_kl: bool = False             # log KL to the reference even when β = 0 (one more forward pass)
  loss_temperature: float = 0.0    # logits / τ in the loss; 0: the sampling temperature (1 if greedy)

  @property
  def tau(self) -> float:
    return self.loss_temperature or (self.temperature if self.temperature > 0 else 1.0)

  def validate(self, batch_size: int | None = None, checkpoint_every: int | None = None) -> None:
    """Raises ValueError naming the config.rl key."""
    if self.group_size < 2:
      raise ValueError(f"config.rl.group_size={self.group_size} must be ≥ 2: group-centred advantages "
                       "need at least two completions per prompt")
    for key in ("prompts_per_step", "max_new_tokens", "num_iterations"):
      if getattr(self, key) < 1:
        raise ValueError(f"config.rl.{key}={getattr(self, key)} must be ≥ 1")
    if self.temperature < 0 or not 0 < self.top_p <= 1:
      raise ValueError(f"config.rl.temperature={self.temperature} must be ≥ 0 and config.rl.top_p={self.top_p} "
                       "in (0, 1]")
    if self.loss_norm not in LOSS_NORMS:
      raise ValueError(f"config.rl.loss_norm={self.loss_norm!r} is not one of {LOSS_NORMS}")
    if self.std_floor < 0 or self.std_eps < 0 or self.kl_coef < 0 or self.clip_eps <= 0:
      raise ValueError("config.rl.std_floor, std_eps and kl_coef must be ≥ 0 and config.rl.clip_eps > 0")
    if batch_size is not None and batch_size != self.prompts_per_step * self.group_size:
      raise ValueError(f"config.batch_size={batch_size} must equal config.rl.prompts_per_step × "
                       f"config.rl.group_size = {self.prompts_per_step} × {self.group_size}")
    if self.num_iterations > 1 and checkpoint_every and checkpoint_every % self.num_iterations:
      raise ValueError(f"config.checkpoint_every={checkpoint_every} must be a multiple of "
                       f"config.rl.num_iterations={self.num_iterations} (a resumed run restarts at a rollout)")

  @classmethod
  def from_config(cls, rl: ml_collections.ConfigDict) -> GRPOConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(rl.keys()) - known - {"reward", "stop_strings"})
    if unknown:
      raise ValueError(f"config.rl has unknown keys {unknown}; known: {sorted(known)}")
    return cls(**{k: rl[k] for k in known if k in rl})


def group_advantages(rewards: np.ndarray, group_size: int, *, scale: bool = False, std_floor: float = 0.0,
                     std_eps: float = 1e-4) -> np.ndarray:
  """Group-centred advantages.

  Args:
    rewards: [num_prompts · G] float, prompt-major (rows i·G … i·G+G-1 share prompt i).
    group_size: G ≥ 2.
    scale: divide by max(unbiased group std, std_floor) + std_eps.

  Returns:
    [num_prompts · G] float32.
  """
  rewards = np.asarray(rewards, np.float64)
  if group_size < 2:
    raise ValueError(f"group_size={group_size} must be ≥ 2 for group-centred advantages")
  if rewards.ndim != 1 or rewards.size == 0 or rewards.size % group_size:
    raise ValueError(f"rewards of shape {rewards.shape} do not split into groups of {group_size}")
  r = rewards.reshape(-1, group_size)
  adv = r - r.mean(axis=1, keepdims=True)
  if scale:  # a zero-variance group has zero numerators: keep them 0 even when the denominator is 0
    denom = np.broadcast_to(np.maximum(r.std(axis=1, ddof=1, keepdims=True), std_floor) + std_eps, adv.shape)
    adv = np.divide(adv, denom, out=np.zeros_like(adv), where=denom > 0)
  return adv.reshape(-1).astype(np.float32)


def policy_gradient_loss(logp: jax.Array, batch: Mapping[str, jax.Array], cfg: GRPOConfig
                         ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The clipped policy-gradient loss (+ β·KL) from per-token log-probs.

  Args:
    logp: [rows, length] log π(a_t) under the params being differentiated.
    batch: 'completion_mask' [rows, length], 'advantages' [rows], 'tokens_per_row' [rows] and optionally
      'old_logprobs' / 'ref_logprobs' [rows, length].
    cfg: GRPOConfig (loss_norm, clip_eps, clip_eps_high, kl_coef, max_new_tokens).

  Returns:
    (scalar loss, metrics: ratio mean, clip fraction, KL).
  """
  m = batch["completion_mask"].astype(jnp.float32)
  adv = batch["advantages"][:, None]
  old = batch["old_logprobs"] if "old_logprobs" in batch else jax.lax.stop_gradient(logp)
  ratio = jnp.exp(logp - old)
  hi = cfg.clip_eps_high or cfg.clip_eps
  clipped = jnp.clip(ratio, 1.0 - cfg.clip_eps, 1.0 + hi)
  per_token = -jnp.minimum(ratio * adv, clipped * adv)
  n_tok = jnp.maximum(jnp.sum(m), 1.0)
  metrics = {"ratio_mean": jnp.sum(ratio * m) / n_tok,
             "clip_fraction": jnp.sum((jnp.abs(clipped - ratio) > 0) * m) / n_tok}
  if cfg.kl_coef > 0 and "ref_logprobs" not in batch:
    raise ValueError("config.rl.kl_coef > 0 needs reference log-probs in the batch (pass ref_params)")
  if "ref_logprobs" in batch:
    d = batch["ref_logprobs"] - logp
    kl = jnp.exp(d) - d - 1.0
    if cfg.kl_coef > 0:
      per_token = per_token + cfg.kl_coef * kl
    metrics["kl"] = jnp.sum(kl * m) / n_tok
  if cfg.loss_norm == "token":
    loss = jnp.sum(per_token * m) / jnp.maximum(jnp.sum(batch["tokens_per_row"]), 1.0)
  elif cfg.loss_norm == "sequence":
    loss = jnp.mean(jnp.sum(per_token * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0))
  else:
    loss = jnp.sum(per_token * m) / (m.shape[0] * cfg.max_new_tokens)
  return loss, metrics


def make_loss_fn(model: DecoderLM, cfg: GRPOConfig) -> Callable:
  """``(params, batch, rng) -> (loss, aux)`` for the trainer (aux: entropy, ratio, clip fraction, KL)."""

  def loss_fn(params, batch, rng):
    del rng
    logp, entropy = rollout_lib.sequence_logprobs(model, params, batch["prompt"], batch["prompt_mask"],
                                                  batch["completion"], cfg.tau)
    loss, metrics = policy_gradient_loss(logp, batch, cfg)
    m = batch["completion_mask"].astype(jnp.float32)
    metrics["entropy"] = jnp.sum(entropy * m) / jnp.maximum(jnp.sum(m), 1.0)
    return loss, metrics

  return loss_fn


@dataclasses.dataclass
class GRPO:
  """Builds the trainer Task of a GRPO run.

  Attributes:
    model: the policy DecoderLM.
    cfg: GRPOConfig.
    sampling: SamplingConfig (temperature/top-p/max tokens are taken from cfg).
    reward_fn: ``(text, example) -> {component: value}``.
    weights: component -> weight of the scalar reward.
    decode: token ids -> text.
    prompts: iterator of {'prompt' [P, L], 'prompt_mask' [P, L], <per-prompt example fields> [P]} with
      get_state/set_state (a grain iterator): the trainer checkpoints it.
    init_params: ``rng -> params`` (e.g. returning SFT params).
    ref_params: frozen reference params for the KL term (None: no KL).
  """
  model: DecoderLM
  cfg: GRPOConfig
  sampling: rollout_lib.SamplingConfig
  reward_fn: RewardFn
  weights: Mapping[str, float]
  decode: rollout_lib.Decode
  prompts: Iterator[Mapping[str, np.ndarray]]
  init_params: Callable[[jax.Array], Any]
  ref_params: Any = None

  def __post_init__(self):
    self.cfg.validate()
    if (self.cfg.kl_coef > 0 or self.cfg.log_kl) and self.ref_params is None:
      raise ValueError("config.rl.kl_coef > 0 and config.rl.log_kl need ref_params (the frozen reference policy)")
    self.sampling = dataclasses.replace(self.sampling, max_new_tokens=self.cfg.max_new_tokens,
                                        temperature=self.cfg.temperature, top_p=self.cfg.top_p)
    self._logprobs = jax.jit(_completion_logprobs, static_argnames=("model", "temperature"))
    if self.ref_params is not None:  # on the device once (an imported checkpoint may hold numpy arrays)
      self.ref_params = jax.tree.map(jnp.asarray, self.ref_params)
    self._cache: tuple[int, dict] | None = None

  def task(self) -> Task:
    return Task(init_params=self.init_params, loss_fn=make_loss_fn(self.model, self.cfg), train_data=self.prompts,
                tokens_per_example=self.cfg.max_new_tokens, rollout=self.rollout)

  def rollout(self, state: TrainState, item: Mapping[str, np.ndarray], ctx: RolloutContext
              ) -> tuple[dict[str, Any], dict[str, float]]:
    """The trainer's rollout callback: a fresh on-policy batch every ``num_iterations`` steps."""
    mu = self.cfg.num_iterations
    if mu > 1 and ctx.step % mu:
      if self._cache is None or self._cache[0] != ctx.step - ctx.step % mu:
        raise RuntimeError(f"no rollout cached for step {ctx.step}: a run with config.rl.num_iterations={mu} "
                           "must start or resume at a multiple of it")
      return self._cache[1], {}
    batch, metrics = self.build_batch(state.params, item, ctx.rng, ctx.batch_sharding)
    if mu > 1:
      self._cache = (ctx.step, batch)
    return batch, metrics

  def build_batch(self, params, item: Mapping[str, np.ndarray], rng: jax.Array,
                  sharding: jax.sharding.NamedSharding | None) -> tuple[dict[str, Any], dict[str, float]]:
    """Samples, scores and assembles one training batch (and its host metrics)."""
    g = self.cfg.group_size
    prompt, prompt_mask = np.asarray(item["prompt"]), np.asarray(item["prompt_mask"])
    rollout_lib.check_prompts(prompt, prompt_mask)
    if prompt.shape[0] != self.cfg.prompts_per_step:
      raise ValueError(f"the prompt iterator gave {prompt.shape[0]} prompts; config.rl.prompts_per_step="
                       f"{self.cfg.prompts_per_step}")
    comp = rollout_lib.sample(self.model, params, prompt, prompt_mask, group_size=g, rng=rng, cfg=self.sampling,
                              decode=self.decode, sharding=sharding)
    fields = {k: np.asarray(v) for k, v in item.items() if k not in ("prompt", "prompt_mask")}
    examples = [{k: v[i // g] for k, v in fields.items()} for i in range(len(comp.texts))]
    scores = rollout_lib.score(comp.texts, examples, self.reward_fn, self.weights)
    adv = group_advantages(scores.total, g, scale=self.cfg.scale_advantages, std_floor=self.cfg.std_floor,
                           std_eps=self.cfg.std_eps)
    n_tok = int(comp.mask.sum())
    rows = comp.mask.shape[0]
    batch = {"prompt": comp.prompt, "prompt_mask": comp.prompt_mask, "completion": comp.tokens,
             "completion_mask": comp.mask.astype(np.float32), "advantages": adv,
             "tokens_per_row": np.full((rows,), n_tok / rows, np.float32)}
    extra = {}
    t0 = time.perf_counter()
    if self.cfg.num_iterations > 1:
      extra["old_logprobs"] = self.model_logprobs(params, batch, sharding)
    if self.cfg.kl_coef > 0 or self.cfg.log_kl:
      extra["ref_logprobs"] = self.model_logprobs(self.ref_params, batch, sharding)
    batch.update(extra)
    metrics = rollout_metrics(comp, scores, adv, g, self.cfg.max_new_tokens)
    metrics["rollout/logprob_seconds"] = time.perf_counter() - t0  # old / reference log-prob passes
    return batch, metrics

  def model_logprobs(self, params, batch: Mapping[str, np.ndarray], sharding) -> jax.Array:
    """[rows, length] completion log-probs under ``params``, left on the device (the trainer takes jax.Arrays)."""
    args = {k: batch[k] for k in ("prompt", "prompt_mask", "completion")}
    if sharding is not None:
      args = to_global(args, sharding)
    logp = self._logprobs(self.model, params, args["prompt"], args["prompt_mask"], args["completion"],
                          temperature=self.cfg.tau)
    return logp.block_until_ready()  # so rollout/logprob_seconds times the passes


def _completion_logprobs(model: DecoderLM, params: Any, prompt: jax.Array, prompt_mask: jax.Array,
                         completion: jax.Array, *, temperature: float) -> jax.Array:
  """``sequence_logprobs`` without the entropies (the old / reference passes do not need them)."""
  return rollout_lib.sequence_logprobs(model, params, prompt, prompt_mask, completion, temperature)[0]


def rollout_metrics(comp: rollout_lib.Completions, scores: rollout_lib.Scores, adv: np.ndarray, group_size: int,
                    max_new_tokens: int) -> dict[str, float]:
  """Per-step host metrics: reward components, advantage stats, lengths, rollout throughput."""
  lengths = comp.lengths.astype(np.float64)
  group_std = scores.total.reshape(-1, group_size).std(axis=1)
  out = {f"reward/{k}": float(v.mean()) for k, v in scores.components.items()}
  out.update({
      "reward/total": float(scores.total.mean()), "reward/std": float(scores.total.std()),
      "reward/errors": float(scores.errors),
      "advantage/mean": float(adv.mean()), "advantage/std": float(adv.std()),
      "advantage/abs_mean": float(np.abs(adv).mean()), "advantage/zero_std_groups": float((group_std == 0).mean()),
      "response/length_mean": float(lengths.mean()), "response/length_min": float(lengths.min()),
      "response/length_max": float(lengths.max()),
      "response/truncated": float((lengths >= max_new_tokens).mean()),
      "rollout/seconds": comp.seconds, "rollout/tokens_per_sec": float(lengths.sum() / max(comp.seconds, 1e-9)),
  })
  return out
