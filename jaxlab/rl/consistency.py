"""Self-CTRL: consistency training between a model's self-explanations and its behaviour, on the one trainer.

Pres, Ruis, Ghebreselassie, Li, Andreas, "Self-CTRL" (arXiv 2606.18327); facts from the official code
(Itam67/Self-CTRL). Each trainer step, for every prompt of the batch (a "coin", a "request", ...):

* K behaviours are sampled from the behaviour prompt and K explanations from the explanation prompt (both from
  the *current* params, through jaxlab.rl.rollout.sample), each scored by its per-token mean NLL.
* Explanation update (λ < 1): anchor = one behaviour (the lowest-NLL one, or a random one for the ablation),
  rewards r_k = φ(anchor, explanation_k). Behaviour update (λ > 0): anchor = the lowest-NLL *valid*
  explanation (or a random valid one), rewards r_k = φ(behaviour_k, anchor).
* A reward of None marks the sample invalid: it is masked out of the advantage statistics and the loss.
  `consistency_advantages`: A = (r - mean)/max(std, floor) over the valid samples of a group, with the
  *population* std; one valid sample gives A = r (the official code's special case); invalid samples get 0.
* Loss (REINFORCE: no ratio, no clip) L = (1 - λ)·L_expl + λ·L_beh, L_side = Σ A·NLL·m / Σ m over that
  side's rows, NLL the per-token mean of the completion and m the validity mask; plus two regularisers: the
  "untouched side" NLL of one sample per prompt drawn once from the starting model and frozen (the official
  "λ_KL" term; coins: a behaviour rollout) and a continued-training NLL on supervised records (e.g. the SFT
  data), each the mean per-token NLL of its rows times its coefficient.

Pluggable pieces: a `Domain` holds the two prompt builders, the two parsers and φ. The engine
(`SelfCTRL`) builds a trainer Task whose rollout callback makes the batch, so runs are resumable exactly as
GRPO runs are (the prompt iterator is checkpointed; the rollout key depends only on (seed, step)).

Batch layout (rows, all completions right-padded to one length): [K·P explanation rows][K·P behaviour rows]
[P untouched-side rows][P continued-training rows, if any][zero-weight padding up to a multiple of
``row_multiple``]. Both sides are always sampled (each anchor needs the other side); the side with weight 0
gets weight 0 rows, so λ = 0 and λ = 1 touch only their own side's tokens.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab.nn import lora as lora_lib
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.rl import rollout as rollout_lib
from jaxlab.rl import sft as sft_lib
from jaxlab.train.step import TrainState
from jaxlab.train.trainer import RolloutContext, Task

ANCHORS = ("lowest_nll", "random")


# ----------------------------------------------------------------------------------------------------------
# The coins domain's parser and reward (official formulas).

_PROGRAM_H = re.compile(r"\{[\"']?H[\"']?:(-?(?:\d+\.?\d*|\.\d+))")


def parse_program_bias(text: str) -> float | None:
  """p̂ from ``def flip_Coin_S(): return {"H": p, "T": 1 - p}`` (or the compact ``{ H : 0 . 3 7 ... }``).

  Whitespace is ignored, so word-tokenised programs parse like the Python text. Returns p̂ rounded to 3
  decimals, or None when there is no ``{"H": number`` or the number is outside [0, 1].
  """
  m = _PROGRAM_H.search("".join(text.split()))
  if not m:
    return None
  try:
    p = round(float(m.group(1)), 3)
  except ValueError:
    return None
  return p if 0.0 <= p <= 1.0 and math.isfinite(p) else None


def count_flips(text: str) -> tuple[int, int] | None:
  """(heads, tails) of a space-separated H/T string; None when it holds no flip or any other word."""
  words = text.split()
  if not words or any(w not in ("H", "T") for w in words):
    return None
  h = sum(w == "H" for w in words)
  return h, len(words) - h


def coin_phi(flips: tuple[int, int] | None, p_hat: float | None, *, unparseable: float = -15.0,
             clamp: float = 1e-6) -> float | None:
  """φ(behaviour, explanation) = (h·ln p̂ + t·ln(1 - p̂))/n, p̂ clamped to [clamp, 1 - clamp].

  An unparseable explanation scores ``unparseable`` (-15, kept in the group); a behaviour without flips
  makes the pair invalid (None, masked).
  """
  if flips is None or sum(flips) == 0:
    return None
  if p_hat is None:
    return float(unparseable)
  h, t = flips
  p = min(max(p_hat, clamp), 1.0 - clamp)
  return (h * math.log(p) + t * math.log(1.0 - p)) / (h + t)


# ----------------------------------------------------------------------------------------------------------
# Anchors and advantages.

def mean_nll(logprobs: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Per-row mean negative log-likelihood over the masked tokens ([rows]; inf for an empty row)."""
  mask = np.asarray(mask, bool)
  n = mask.sum(axis=1)
  s = -np.where(mask, logprobs, 0.0).sum(axis=1)
  return np.where(n > 0, s / np.maximum(n, 1), np.inf)


def select_anchor(nll: np.ndarray, valid: np.ndarray | None = None, *, rule: str = "lowest_nll",
                  rng: np.random.Generator | None = None) -> int | None:
  """Index of the anchor among one group's samples.

  Args:
    nll: [K] per-token mean NLL of each sample.
    valid: [K] bool (None: all valid); only valid samples can be the anchor.
    rule: 'lowest_nll' (ties: the first) or 'random' (uniform over the valid ones; needs rng).

  Returns the index, or None when no sample is valid.
  """
  nll = np.asarray(nll, np.float64)
  valid = np.ones(nll.shape, bool) if valid is None else np.asarray(valid, bool)
  idx = np.flatnonzero(valid)
  if idx.size == 0:
    return None
  if rule == "lowest_nll":
    return int(idx[np.argmin(nll[idx])])
  if rule == "random":
    if rng is None:
      raise ValueError("anchor rule 'random' needs an rng")
    return int(rng.choice(idx))
  raise ValueError(f"anchor rule {rule!r} is not one of {ANCHORS}")


def consistency_advantages(rewards: Sequence[float | None], std_floor: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
  """The Self-CTRL advantage of one group.

  Args:
    rewards: [K] rewards, None for an invalid sample.
    std_floor: the floor of the population std (official 0.05).

  Returns:
    (advantages [K] float32: (r - mean)/max(std, floor) over valid samples, r itself when only one sample
    is valid, 0 for invalid ones; valid [K] bool).
  """
  valid = np.asarray([r is not None for r in rewards], bool)
  r = np.asarray([0.0 if x is None else float(x) for x in rewards], np.float64)
  adv = np.zeros(r.shape)
  n = int(valid.sum())
  if n == 1:
    adv[valid] = r[valid]
  elif n > 1:
    v = r[valid]
    adv[valid] = (v - v.mean()) / max(float(v.std()), std_floor)
  return adv.astype(np.float32), valid


# ----------------------------------------------------------------------------------------------------------
# Configuration, domain and loss.

@dataclasses.dataclass(frozen=True)
class ConsistencyConfig:
  """The Self-CTRL part of an experiment config (``config.rl.ctrl``)."""
  group_size: int = 10             # K behaviours and K explanations per prompt
  prompts_per_step: int = 10       # prompts per update (official batch 10)
  lam: float = 0.0                 # λ: 0 updates explanations only, 1 behaviour only
  anchor: str = "lowest_nll"       # 'lowest_nll' | 'random' (the ablation)
  std_floor: float = 0.05          # floor of the population std in the advantage
  behaviour_tokens: int = 32       # sampling budget of a behaviour
  explanation_tokens: int = 16     # sampling budget of an explanation
  temperature: float = 1.0         # sampling temperature of both sides
  untouched_coef: float = 0.0      # weight of the frozen untouched-side NLL (official coins: 0.3)
  continued_coef: float = 0.0      # weight of the continued-training NLL
  row_multiple: int = 8            # batch rows padded (zero weight) to a multiple of this (data-parallel)

  def validate(self) -> None:
    if self.group_size < 1 or self.prompts_per_step < 1:
      raise ValueError("config.rl.ctrl.group_size and prompts_per_step must be ≥ 1")
    if not 0.0 <= self.lam <= 1.0:
      raise ValueError(f"config.rl.ctrl.lam={self.lam} must be in [0, 1]")
    if self.anchor not in ANCHORS:
      raise ValueError(f"config.rl.ctrl.anchor={self.anchor!r} is not one of {ANCHORS}")
    if self.std_floor <= 0 or self.untouched_coef < 0 or self.continued_coef < 0 or self.temperature <= 0:
      raise ValueError("config.rl.ctrl.std_floor and temperature must be > 0; the regulariser coefficients ≥ 0")
    if self.behaviour_tokens < 1 or self.explanation_tokens < 1 or self.row_multiple < 1:
      raise ValueError("config.rl.ctrl.behaviour_tokens, explanation_tokens and row_multiple must be ≥ 1")

  def batch_rows(self, continued: bool) -> int:
    rows = 2 * self.group_size * self.prompts_per_step + self.prompts_per_step * (1 + int(continued))
    return rows + (-rows) % self.row_multiple

  @property
  def completion_len(self) -> int:
    return max(self.behaviour_tokens, self.explanation_tokens)

  @classmethod
  def from_config(cls, c: ml_collections.ConfigDict) -> ConsistencyConfig:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(c.keys()) - known)
    if unknown:
      raise ValueError(f"config.rl.ctrl has unknown keys {unknown}; known: {sorted(known)}")
    return cls(**{k: c[k] for k in known if k in c})


@dataclasses.dataclass(frozen=True)
class Domain:
  """What a consistency domain plugs in.

  Attributes:
    behaviour_prompt, explanation_prompt: ``example -> prompt token ids`` (the prompt builders).
    parse_behaviour, parse_explanation: ``text -> parsed value or None`` (None: unparseable).
    phi: ``(parsed behaviour, parsed explanation) -> reward or None`` (None: invalid pair, masked); it sees
      unparseable sides as None and decides what they score (coins: -15 for an unparseable explanation).
      With ``context_fields`` it is called ``phi(behaviour, explanation, context)``, context the dict of those
      fields of the prompt's record (e.g. a request's severity, which a jury needs to judge a rule).
    behaviour_phi: the reward of behaviour updates (λ > 0) when it differs from the consistency φ (the
      constitutional domain's 0.6·jury + 0.4·engagement); same signature as phi; None: phi.
    context_fields: record fields passed to phi / behaviour_phi (stored by `prompt_records(fields=...)`).
  """
  behaviour_prompt: Callable[[Mapping[str, Any]], Sequence[int]]
  explanation_prompt: Callable[[Mapping[str, Any]], Sequence[int]]
  parse_behaviour: Callable[[str], Any]
  parse_explanation: Callable[[str], Any]
  phi: Callable[..., float | None]
  behaviour_phi: Callable[..., float | None] | None = None
  context_fields: tuple[str, ...] = ()

  def reward(self, side: str, behaviour: Any, explanation: Any, context: Mapping[str, Any]) -> float | None:
    """φ of one (behaviour, explanation) pair for the update of ``side`` ('expl' or 'beh')."""
    fn = self.behaviour_phi if side == "beh" and self.behaviour_phi is not None else self.phi
    return fn(behaviour, explanation, context) if self.context_fields else fn(behaviour, explanation)


def prompt_records(domain: Domain, examples: Sequence[Mapping[str, Any]], prompt_len: int, pad_id: int = 0,
                   fields: Sequence[str] = ()) -> list[dict[str, np.ndarray]]:
  """One record per example: 'beh_prompt', 'expl_prompt' (+ masks) and the named example fields."""
  bp, bm = sft_lib.pack_prompts([domain.behaviour_prompt(e) for e in examples], prompt_len, pad_id)
  ep, em = sft_lib.pack_prompts([domain.explanation_prompt(e) for e in examples], prompt_len, pad_id)
  return [{"beh_prompt": bp[i], "beh_prompt_mask": bm[i], "expl_prompt": ep[i], "expl_prompt_mask": em[i],
           **{k: np.asarray(examples[i][k]) for k in fields}} for i in range(len(examples))]


def attach_rows(records: list[dict[str, np.ndarray]], name: str, prompt: np.ndarray, prompt_mask: np.ndarray,
                completion: np.ndarray, completion_mask: np.ndarray, length: int) -> None:
  """Stores one regulariser row per record as '<name>_prompt', '_prompt_mask', '_completion', '_mask'
  (name 'untouched' or 'continued'); completions are cut or right-padded to ``length``."""
  c = np.zeros((len(records), length), np.int32)
  m = np.zeros((len(records), length), np.float32)
  n = min(length, completion.shape[1])
  c[:, :n], m[:, :n] = completion[:, :n], completion_mask[:, :n]
  for i, r in enumerate(records):
    r.update({f"{name}_prompt": prompt[i], f"{name}_prompt_mask": prompt_mask[i], f"{name}_completion": c[i],
              f"{name}_mask": m[i]})


def consistency_loss(nll: jax.Array, batch: Mapping[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Σ_rows (policy_weight·A + reg_weight)·NLL from per-row mean NLLs.

  Args:
    nll: [rows] per-token mean NLL of each completion under the params differentiated.
    batch: 'advantages', 'policy_weight' (coefficient of the row's side × validity / Σ validity of the side)
      and 'reg_weight' (regulariser coefficient / its rows), all [rows].
  """
  policy = jnp.sum(batch["policy_weight"] * batch["advantages"] * nll)
  reg = jnp.sum(batch["reg_weight"] * nll)
  return policy + reg, {"policy_loss": policy, "reg_loss": reg}


def row_nll(model: DecoderLM, params: Any, batch: Mapping[str, jax.Array], *,
            lora: lora_lib.LoraConfig | None = None, base: Any = None) -> jax.Array:
  """[rows] per-token mean completion NLL; with ``lora``, ``params`` are the adapters on the frozen ``base``."""
  if lora is None:
    logp, _ = rollout_lib.sequence_logprobs(model, params, batch["prompt"], batch["prompt_mask"],
                                            batch["completion"])
  else:
    seq = jnp.concatenate([batch["prompt"], batch["completion"]], axis=1)
    padding = jnp.concatenate([batch["prompt_mask"], jnp.ones(batch["completion"].shape, jnp.bool_)], axis=1)
    logits = lora_lib.apply(model, {"params": base}, params, seq, padding=padding, config=lora)
    logits = logits[:, batch["prompt"].shape[1] - 1:-1]
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), batch["completion"][..., None], axis=-1)[..., 0]
  m = batch["completion_mask"].astype(jnp.float32)
  return -jnp.sum(logp * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


def make_loss_fn(model: DecoderLM, lora: lora_lib.LoraConfig | None = None) -> Callable:
  """The trainer loss: ``(params, batch, rng)``, or ``(adapters, batch, rng, base)`` under LoRA."""
  if lora is None:
    def loss_fn(params, batch, rng):
      del rng
      return consistency_loss(row_nll(model, params, batch), batch)
    return loss_fn

  def lora_loss_fn(adapters, batch, rng, base):
    del rng
    return consistency_loss(row_nll(model, adapters, batch, lora=lora, base=base), batch)
  return lora_loss_fn


# ----------------------------------------------------------------------------------------------------------
# The engine.

def _pad_to(x: np.ndarray, length: int) -> np.ndarray:
  return np.pad(x, ((0, 0), (0, length - x.shape[1])))


@dataclasses.dataclass
class SelfCTRL:
  """Builds the trainer Task of a Self-CTRL run.

  Attributes:
    model: the DecoderLM trained.
    cfg: ConsistencyConfig.
    domain: prompt builders (used by `prompt_records`), parsers and φ.
    sampling: SamplingConfig for both sides (max_new_tokens and temperature are set per side from cfg;
      eos / pad / stops from here).
    decode: token ids -> text.
    prompts: iterator of `prompt_records` batches (P records each), with the 'untouched_*' fields when
      cfg.untouched_coef > 0 and 'continued_*' when cfg.continued_coef > 0 (`attach_rows`); checkpointed.
    init_params: ``rng -> params`` (e.g. returning the SFT params; under LoRA: fresh adapters).
    explanation_stop: extra token-id stops of the explanation side (e.g. the closing brace).
    lora, base_params, frozen_id: LoRA training (jaxlab.nn.lora): the trainer state holds only the adapters,
      ``base_params`` (the frozen model) ride as the trainer's ``Task.frozen_params``; both sides are sampled
      from ``lora.merge(base, adapters)`` (the current policy) at full decoding speed.
  """
  model: DecoderLM
  cfg: ConsistencyConfig
  domain: Domain
  sampling: rollout_lib.SamplingConfig
  decode: rollout_lib.Decode
  prompts: Iterator[Mapping[str, np.ndarray]]
  init_params: Callable[[jax.Array], Any]
  explanation_stop: tuple[tuple[int, ...], ...] = ()
  lora: lora_lib.LoraConfig | None = None
  base_params: Any = None
  frozen_id: str = ""

  def __post_init__(self):
    if (self.lora is None) != (self.base_params is None):
      raise ValueError("SelfCTRL: lora and base_params go together (LoRA adapters on a frozen base)")
    self.cfg.validate()
    self._beh = dataclasses.replace(self.sampling, max_new_tokens=self.cfg.behaviour_tokens,
                                    temperature=self.cfg.temperature)
    self._expl = dataclasses.replace(self.sampling, max_new_tokens=self.cfg.explanation_tokens,
                                     temperature=self.cfg.temperature,
                                     stop_sequences=tuple(self.sampling.stop_sequences) + tuple(self.explanation_stop))
    self._logprobs = jax.jit(lambda params, p, pm, c: rollout_lib.sequence_logprobs(self.model, params, p, pm, c)[0])

  def task(self) -> Task:
    return Task(init_params=self.init_params, loss_fn=make_loss_fn(self.model, self.lora), train_data=self.prompts,
                tokens_per_example=self.cfg.completion_len, rollout=self.rollout, frozen_params=self.base_params,
                frozen_id=self.frozen_id)

  def policy_params(self, params: Any) -> Any:
    """The full params the sampler runs: ``params`` itself, or the base with the adapters merged in."""
    if self.lora is None:
      return params
    if not hasattr(self, "_merge"):
      self._merge = jax.jit(lambda base, adapters: lora_lib.merge(base, adapters, self.lora))
    return self._merge(self.base_params, params)

  def rollout(self, state: TrainState, item: Mapping[str, np.ndarray], ctx: RolloutContext):
    return self.build_batch(self.policy_params(state.params), item, ctx.rng, ctx.batch_sharding)

  def nll(self, params, comp: rollout_lib.Completions) -> np.ndarray:
    """Per-sample mean NLL under ``params`` (the sampler's log-probs are the model's at temperature 1)."""
    if self.cfg.temperature == 1.0 and comp.logprobs is not None:
      return mean_nll(comp.logprobs, comp.mask)
    logp = self._logprobs(params, comp.prompt, comp.prompt_mask, comp.tokens)
    return mean_nll(np.asarray(logp), comp.mask)

  def build_batch(self, params, item: Mapping[str, np.ndarray], rng: jax.Array,
                  sharding: jax.sharding.NamedSharding | None = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Samples both sides, picks the anchors, scores, and assembles one training batch (+ host metrics)."""
    cfg, d = self.cfg, self.domain
    k, p = cfg.group_size, cfg.prompts_per_step
    if np.asarray(item["beh_prompt"]).shape[0] != p:
      raise ValueError(f"the prompt iterator gave {np.asarray(item['beh_prompt']).shape[0]} prompts; "
                       f"config.rl.ctrl.prompts_per_step={p}")
    r_beh, r_expl, r_anchor = jax.random.split(rng, 3)
    t0 = time.perf_counter()
    beh = rollout_lib.sample(self.model, params, np.asarray(item["beh_prompt"]), np.asarray(item["beh_prompt_mask"]),
                             group_size=k, rng=r_beh, cfg=self._beh, decode=self.decode, sharding=sharding)
    expl = rollout_lib.sample(self.model, params, np.asarray(item["expl_prompt"]),
                              np.asarray(item["expl_prompt_mask"]), group_size=k, rng=r_expl, cfg=self._expl,
                              decode=self.decode, sharding=sharding)
    sample_s = time.perf_counter() - t0
    beh_nll, expl_nll = self.nll(params, beh), self.nll(params, expl)
    beh_parsed = [d.parse_behaviour(t) for t in beh.texts]
    expl_parsed = [d.parse_explanation(t) for t in expl.texts]
    np_rng = np.random.default_rng(np.asarray(jax.random.key_data(r_anchor)).ravel().astype(np.uint32))
    adv = {"expl": np.zeros(p * k, np.float32), "beh": np.zeros(p * k, np.float32)}
    valid = {"expl": np.zeros(p * k, bool), "beh": np.zeros(p * k, bool)}
    rewards = {"expl": [], "beh": []}
    no_anchor = {"expl": 0, "beh": 0}
    for i in range(p):
      sl = slice(i * k, (i + 1) * k)
      ctx = {f: np.asarray(item[f])[i] for f in d.context_fields}
      if cfg.lam < 1:  # explanation update: anchor behaviour, r_k = φ(anchor, expl_k)
        a = select_anchor(beh_nll[sl], rule=cfg.anchor, rng=np_rng)
        r = [d.reward("expl", beh_parsed[i * k + a], e, ctx) for e in expl_parsed[sl]]
        adv["expl"][sl], valid["expl"][sl] = consistency_advantages(r, cfg.std_floor)
        rewards["expl"] += [x for x in r if x is not None]
      if cfg.lam > 0:  # behaviour update: anchor = a valid explanation, r_k = φ(beh_k, anchor)
        ok = np.asarray([e is not None for e in expl_parsed[sl]])
        a = select_anchor(expl_nll[sl], ok, rule=cfg.anchor, rng=np_rng)
        if a is None:
          no_anchor["beh"] += 1
          continue
        r = [d.reward("beh", b, expl_parsed[i * k + a], ctx) for b in beh_parsed[sl]]
        adv["beh"][sl], valid["beh"][sl] = consistency_advantages(r, cfg.std_floor)
        rewards["beh"] += [x for x in r if x is not None]
    return self._assemble(item, beh, expl, adv, valid), self._metrics(
        beh, expl, beh_nll, expl_nll, beh_parsed, expl_parsed, rewards, valid, no_anchor, sample_s)

  def _assemble(self, item, beh, expl, adv, valid) -> dict[str, np.ndarray]:
    cfg = self.cfg
    length = cfg.completion_len
    coef = {"expl": 1.0 - cfg.lam, "beh": cfg.lam}
    parts = {"prompt": [expl.prompt, beh.prompt], "prompt_mask": [expl.prompt_mask, beh.prompt_mask],
             "completion": [_pad_to(expl.tokens, length), _pad_to(beh.tokens, length)],
             "completion_mask": [_pad_to(expl.mask.astype(np.float32), length),
                                 _pad_to(beh.mask.astype(np.float32), length)],
             "advantages": [adv["expl"], adv["beh"]]}
    pw = [coef[s] * valid[s] / max(int(valid[s].sum()), 1) for s in ("expl", "beh")]
    parts["policy_weight"] = [w.astype(np.float32) for w in pw]
    parts["reg_weight"] = [np.zeros(len(adv["expl"]), np.float32), np.zeros(len(adv["beh"]), np.float32)]
    p = cfg.prompts_per_step
    for name, c in (("untouched", cfg.untouched_coef), ("continued", cfg.continued_coef)):
      if f"{name}_prompt" not in item:
        if c > 0:
          raise ValueError(f"config.rl.ctrl.{name}_coef > 0 but the prompt records have no '{name}_*' rows")
        if name == "untouched":  # the layout always holds P untouched rows (zero weight without them)
          parts["prompt"].append(np.asarray(item["beh_prompt"]))
          parts["prompt_mask"].append(np.asarray(item["beh_prompt_mask"]))
          parts["completion"].append(np.zeros((p, length), np.int32))
          parts["completion_mask"].append(np.zeros((p, length), np.float32))
          parts["advantages"].append(np.zeros(p, np.float32))
          parts["policy_weight"].append(np.zeros(p, np.float32))
          parts["reg_weight"].append(np.zeros(p, np.float32))
        continue
      parts["prompt"].append(np.asarray(item[f"{name}_prompt"]))
      parts["prompt_mask"].append(np.asarray(item[f"{name}_prompt_mask"]))
      parts["completion"].append(_pad_to(np.asarray(item[f"{name}_completion"]), length)[:, :length])
      parts["completion_mask"].append(_pad_to(np.asarray(item[f"{name}_mask"], np.float32), length)[:, :length])
      parts["advantages"].append(np.zeros(p, np.float32))
      parts["policy_weight"].append(np.zeros(p, np.float32))
      parts["reg_weight"].append(np.full(p, c / p, np.float32))
    batch = {key: np.concatenate(v) for key, v in parts.items()}
    rows = batch["advantages"].shape[0]
    target = cfg.batch_rows("continued_prompt" in item)
    pad = target - rows
    if pad < 0:
      raise ValueError(f"the batch has {rows} rows, more than config.rl.ctrl.batch_rows = {target}")
    for key, v in batch.items():  # zero-weight padding rows (copies of the first row)
      batch[key] = np.concatenate([v, np.repeat(v[:1] * (0 if key.endswith("weight") else 1), pad, axis=0)])
    batch["prompt"], batch["completion"] = batch["prompt"].astype(np.int32), batch["completion"].astype(np.int32)
    batch["prompt_mask"] = batch["prompt_mask"].astype(bool)
    return batch

  def _metrics(self, beh, expl, beh_nll, expl_nll, beh_parsed, expl_parsed, rewards, valid, no_anchor, sample_s):
    out = {"ctrl/beh_parse_rate": float(np.mean([b is not None for b in beh_parsed])),
           "ctrl/expl_parse_rate": float(np.mean([e is not None for e in expl_parsed])),
           "ctrl/beh_nll": float(np.mean(beh_nll[np.isfinite(beh_nll)])) if np.isfinite(beh_nll).any() else 0.0,
           "ctrl/expl_nll": float(np.mean(expl_nll[np.isfinite(expl_nll)])) if np.isfinite(expl_nll).any() else 0.0,
           "ctrl/beh_no_anchor": float(no_anchor["beh"]),
           "rollout/seconds": sample_s,
           "rollout/tokens_per_sec": float((beh.lengths.sum() + expl.lengths.sum()) / max(sample_s, 1e-9))}
    for side in ("expl", "beh"):
      if rewards[side]:
        out[f"reward/{side}"] = float(np.mean(rewards[side]))
        out[f"ctrl/{side}_valid"] = float(valid[side].mean())
    return out
