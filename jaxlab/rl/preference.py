"""Preference tuning from thumbs up / down (KTO, APO-zero) and from pairs (DPO and its variants).

The losses follow TRL 1.16 (`trl.trainer.kto_trainer.KTOTrainer._compute_loss`,
`trl.trainer.dpo_trainer.DPOTrainer._compute_loss`) formula for formula, with the same metric names
(rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies, kl, logps/chosen, logps/rejected), so a
TRL user recognises both the numbers and the data formats (JSONL prompt/completion/label and
prompt/chosen/rejected).

KTO (Ethayarajh et al. 2024, eq. 7; TRL `loss_type='kto'`), per row with r = Σ_completion log π_θ − log π_ref:

    z0 = max(0, stop_grad(mean_j [log π_θ(y_{j-1} | x_j) − log π_ref(y_{j-1} | x_j)]))   mismatched pairs
    desirable    λ_D (1 − σ(β (r − z0)))
    undesirable  λ_U (1 − σ(β (z0 − r)))                          loss = mean over the batch rows

The mismatched pairs are TRL's: row j's prompt with row j−1's completion (the completions rotated by one
within the batch, ``[y_{B-1}, y_0, ..., y_{B-2}]``). TRL builds them in the dataset map; here they are built
inside the jitted step from the batch itself (`jnp.roll`), so any batch of ≥ 2 rows forms them and a batch of
1 (where the "mismatched" pair is the matched one and z0 = the row's own reward) is a config error.
APO-zero unpaired (D'Oosterlinck et al. 2024): desirable 1 − σ(β r), undesirable σ(β r), no z0.

DPO (Rafailov et al. 2023) with Δ = (log π_c − log ref_c) − (log π_r − log ref_r):
  sigmoid  −log σ(β Δ);   hinge  relu(1 − β Δ);   ipo  (Δ_len − 1/(2β))² with each log-ratio divided by its
  completion length (TRL's normalisation);   robust  [−(1−ε) log σ(βΔ) + ε log σ(−βΔ)] / (1 − 2ε);
  RPO = sigmoid + α · SFT, SFT = − Σ chosen token log-probs / Σ chosen tokens (TRL's loss_types
  ['sigmoid', 'sft'] with loss_weights [1, α]).

The reference policy under LoRA is the same model with the adapters switched off (`jaxlab.nn.lora.apply(...,
adapters=None)`): the base weights are one array set, `Task.frozen_params`, read by both forwards. A
precomputed reference (`ref_logps` / `ref_kl_logps` / `ref_chosen_logps` / `ref_rejected_logps` in the batch)
replaces that forward, as TRL's `precompute_ref_log_probs`.

Batch layout (as jaxlab.rl.sft): prompts left-padded to ``prompt_len``, completions right-padded to
``completion_len``; prompt tokens are context only and carry no gradient.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn import lora
from jaxlab.rl.sft import pack_completions, pack_prompts

Array = jax.Array

KTO_LOSSES = ('kto', 'apo_zero_unpaired')
DPO_LOSSES = ('sigmoid', 'hinge', 'ipo', 'robust', 'rpo')


@dataclasses.dataclass(frozen=True)
class PreferenceConfig:
  """Hyper-parameters of the preference losses (names as TRL's KTOConfig / DPOConfig)."""
  loss_type: str = 'kto'          # KTO: 'kto' | 'apo_zero_unpaired'; DPO: 'sigmoid' | 'hinge' | 'ipo' | 'robust' | 'rpo'.
  beta: float = 0.1               # β: strength of the implicit KL penalty to the reference.
  desirable_weight: float = 1.0   # λ_D (KTO).
  undesirable_weight: float = 1.0  # λ_U (KTO).
  label_smoothing: float = 0.0    # ε of the robust DPO loss, in [0, 0.5).
  rpo_alpha: float = 1.0          # α: weight of the SFT term of RPO.

  def __post_init__(self):
    if self.loss_type not in KTO_LOSSES + DPO_LOSSES:
      raise ValueError(f'unknown loss_type {self.loss_type!r}; expected one of {KTO_LOSSES + DPO_LOSSES}')
    if self.beta <= 0:
      raise ValueError(f'beta must be positive, got {self.beta}')
    if not 0.0 <= self.label_smoothing < 0.5:
      raise ValueError(f'label_smoothing must be in [0, 0.5), got {self.label_smoothing}')
    if self.desirable_weight < 0 or self.undesirable_weight < 0:
      raise ValueError('desirable_weight and undesirable_weight must be non-negative')

  @property
  def is_kto(self) -> bool:
    return self.loss_type in KTO_LOSSES

  @property
  def uses_kl(self) -> bool:
    return self.loss_type == 'kto'

  def validate(self, batch_size: int) -> None:
    """A KTO batch must hold ≥ 2 rows to form mismatched (prompt, another row's completion) pairs."""
    if self.uses_kl and batch_size < 2:
      raise ValueError(f"KTO's KL reference point z0 needs mismatched pairs: batch_size must be >= 2 per step, "
                       f"got {batch_size} (with 1 row the 'mismatched' pair is the matched one)")


def _safe_mean(x: Array, mask: Array) -> Array:
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def kto_loss(logps: Array, ref_logps: Array, label: Array, cfg: PreferenceConfig, kl_logps: Array | None = None,
             ref_kl_logps: Array | None = None) -> tuple[Array, dict[str, Array]]:
  """KTO / APO-zero-unpaired loss on sequence log-probs.

  Args:
    logps, ref_logps: [batch] Σ completion log π_θ and log π_ref of the (prompt, completion) rows.
    label: [batch] bool or {0, 1}: True = desirable (thumbs up).
    cfg: loss_type 'kto' or 'apo_zero_unpaired', beta, desirable_weight, undesirable_weight.
    kl_logps, ref_kl_logps: [batch] the same on the mismatched pairs (needed for 'kto').

  Returns:
    (mean loss, TRL-named metrics: kl, rewards/chosen, rewards/rejected, rewards/margins, logps/chosen,
    logps/rejected; means over the rows of each label, 0 where a batch has none).
  """
  chosen = jnp.asarray(label).astype(jnp.float32)
  rejected = 1.0 - chosen
  r = logps - ref_logps
  if cfg.loss_type == 'kto':
    if kl_logps is None or ref_kl_logps is None:
      raise ValueError("loss_type 'kto' needs kl_logps and ref_kl_logps (the mismatched pairs)")
    kl = jnp.maximum(jax.lax.stop_gradient(jnp.mean(kl_logps - ref_kl_logps)), 0.0)
    chosen_losses = 1.0 - jax.nn.sigmoid(cfg.beta * (r - kl))
    rejected_losses = 1.0 - jax.nn.sigmoid(cfg.beta * (kl - r))
  elif cfg.loss_type == 'apo_zero_unpaired':
    kl = jnp.zeros(())
    chosen_losses = 1.0 - jax.nn.sigmoid(cfg.beta * r)
    rejected_losses = jax.nn.sigmoid(cfg.beta * r)
  else:
    raise ValueError(f'kto_loss: loss_type {cfg.loss_type!r} is not one of {KTO_LOSSES}')
  losses = chosen * cfg.desirable_weight * chosen_losses + rejected * cfg.undesirable_weight * rejected_losses
  rewards = cfg.beta * jax.lax.stop_gradient(r)
  rc, rr = _safe_mean(rewards, chosen), _safe_mean(rewards, rejected)
  metrics = {'kl': kl, 'rewards/chosen': rc, 'rewards/rejected': rr, 'rewards/margins': rc - rr,
             'logps/chosen': _safe_mean(jax.lax.stop_gradient(logps), chosen),
             'logps/rejected': _safe_mean(jax.lax.stop_gradient(logps), rejected)}
  return jnp.mean(losses), metrics


def dpo_loss(chosen_logps: Array, rejected_logps: Array, ref_chosen_logps: Array, ref_rejected_logps: Array,
             cfg: PreferenceConfig, chosen_len: Array | None = None, rejected_len: Array | None = None
             ) -> tuple[Array, dict[str, Array]]:
  """DPO and its variants on sequence log-probs.

  Args:
    chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps: [batch] Σ completion log-probs.
    cfg: loss_type in DPO_LOSSES, beta, label_smoothing (robust), rpo_alpha (rpo).
    chosen_len, rejected_len: [batch] completion token counts (needed by 'ipo'; 'rpo' needs chosen_len).

  Returns:
    (mean loss, TRL-named metrics: rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
    logps/chosen, logps/rejected).
  """
  c_ratio, r_ratio = chosen_logps - ref_chosen_logps, rejected_logps - ref_rejected_logps
  delta = c_ratio - r_ratio
  b, eps = cfg.beta, cfg.label_smoothing
  if cfg.loss_type in ('sigmoid', 'rpo'):
    per_seq = -jax.nn.log_sigmoid(b * delta)
  elif cfg.loss_type == 'hinge':
    per_seq = jax.nn.relu(1.0 - b * delta)
  elif cfg.loss_type == 'ipo':
    if chosen_len is None or rejected_len is None:
      raise ValueError("loss_type 'ipo' needs chosen_len and rejected_len (completion token counts)")
    ipo_delta = c_ratio / jnp.maximum(chosen_len, 1.0) - r_ratio / jnp.maximum(rejected_len, 1.0)
    per_seq = (ipo_delta - 1.0 / (2.0 * b)) ** 2
  elif cfg.loss_type == 'robust':
    per_seq = (-(1.0 - eps) * jax.nn.log_sigmoid(b * delta) + eps * jax.nn.log_sigmoid(-b * delta)) / (1.0 - 2.0 * eps)
  else:
    raise ValueError(f'dpo_loss: loss_type {cfg.loss_type!r} is not one of {DPO_LOSSES}')
  loss = jnp.mean(per_seq)
  metrics = {}
  if cfg.loss_type == 'rpo':
    if chosen_len is None:
      raise ValueError("loss_type 'rpo' needs chosen_len (the SFT term is a mean over chosen tokens)")
    sft = -jnp.sum(chosen_logps) / jnp.maximum(jnp.sum(chosen_len), 1.0)
    loss = loss + cfg.rpo_alpha * sft
    metrics['sft_loss'] = jax.lax.stop_gradient(sft)
  rc, rr = b * jax.lax.stop_gradient(c_ratio), b * jax.lax.stop_gradient(r_ratio)
  metrics.update({'rewards/chosen': jnp.mean(rc), 'rewards/rejected': jnp.mean(rr),
                  'rewards/margins': jnp.mean(rc - rr), 'rewards/accuracies': jnp.mean((rc > rr).astype(jnp.float32)),
                  'logps/chosen': jnp.mean(jax.lax.stop_gradient(chosen_logps)),
                  'logps/rejected': jnp.mean(jax.lax.stop_gradient(rejected_logps))})
  return loss, metrics


# ----------------------------------------------------------------------------------------------- model side

def completion_logps(model, base: Any, adapters: Any, lora_config: lora.LoraConfig, prompt: Array,
                     prompt_mask: Array, completion: Array, completion_mask: Array, *, train: bool = False,
                     rngs: Mapping[str, Array] | None = None) -> Array:
  """[rows] Σ over completion tokens of log π(token | prompt, earlier tokens); adapters=None is the reference.

  Args:
    prompt: [rows, prompt_len] int32 left-padded; prompt_mask: [rows, prompt_len] bool.
    completion: [rows, completion_len] int32 right-padded; completion_mask: [rows, completion_len] float.
  """
  seq = jnp.concatenate([prompt, completion], axis=1)
  padding = jnp.concatenate([prompt_mask, completion_mask > 0], axis=1)
  logits = lora.apply(model, {'params': base}, adapters, seq, padding=padding, config=lora_config, train=train,
                      rngs=rngs or {})
  return logits_to_completion_logps(logits, completion, completion_mask)


def logits_to_completion_logps(logits: Array, completion: Array, completion_mask: Array) -> Array:
  """[rows] Σ completion log-probs from [rows, prompt_len + completion_len, vocab] logits of the whole sequence.

  Position t predicts token t + 1, so only the logits at positions prompt_len − 1 .. end − 1 enter: the
  prompt's own tokens (and completion padding, via the mask) carry no gradient.
  """
  p_len = logits.shape[1] - completion.shape[1]
  logz = jax.nn.log_softmax(logits[:, p_len - 1:-1].astype(jnp.float32), axis=-1)
  logp = jnp.take_along_axis(logz, completion[..., None], axis=-1)[..., 0]
  return jnp.sum(logp * completion_mask, axis=-1)


def mismatched(batch: Mapping[str, Array]) -> tuple[Array, Array]:
  """TRL's KL completions: row j takes row j−1's completion (rotation by one; row 0 takes the last row's)."""
  return jnp.roll(batch['completion'], 1, axis=0), jnp.roll(batch['completion_mask'], 1, axis=0)


def make_kto_loss(model, lora_config: lora.LoraConfig, cfg: PreferenceConfig, *, train: bool = True):
  """Trainer loss ``(adapters, batch, rng, base) -> (loss, metrics)`` for KTO / APO-zero-unpaired.

  Batch: 'prompt', 'prompt_mask', 'completion', 'completion_mask', 'label' [rows]; optionally precomputed
  'ref_logps' (and 'ref_kl_logps' for 'kto'), which replace the adapters-off forward.
  """
  if not cfg.is_kto:
    raise ValueError(f'make_kto_loss: loss_type {cfg.loss_type!r} is a DPO loss; use make_dpo_loss')

  def loss_fn(adapters, batch, rng, base):
    if cfg.uses_kl and batch['prompt'].shape[0] < 2:
      cfg.validate(batch['prompt'].shape[0])
    prompt, pmask = batch['prompt'], batch['prompt_mask']
    comp, cmask = batch['completion'], batch['completion_mask']
    n = prompt.shape[0]
    if cfg.uses_kl:  # one forward over [matched; mismatched] rows
      kl_comp, kl_mask = mismatched(batch)
      prompt2, pmask2 = jnp.concatenate([prompt, prompt]), jnp.concatenate([pmask, pmask])
      comp2, cmask2 = jnp.concatenate([comp, kl_comp]), jnp.concatenate([cmask, kl_mask])
    else:
      prompt2, pmask2, comp2, cmask2 = prompt, pmask, comp, cmask
    rngs = {'dropout': rng} if train and lora_config.dropout > 0 else None
    pol = completion_logps(model, base, adapters, lora_config, prompt2, pmask2, comp2, cmask2, train=train,
                           rngs=rngs)
    if 'ref_logps' in batch:
      ref = jnp.concatenate([batch['ref_logps'], batch['ref_kl_logps']]) if cfg.uses_kl else batch['ref_logps']
    else:
      ref = jax.lax.stop_gradient(completion_logps(model, base, None, lora_config, prompt2, pmask2, comp2, cmask2))
    kl_pol = jax.lax.stop_gradient(pol[n:]) if cfg.uses_kl else None
    kl_ref = ref[n:] if cfg.uses_kl else None
    return kto_loss(pol[:n], ref[:n], batch['label'], cfg, kl_pol, kl_ref)

  return loss_fn


def make_dpo_loss(model, lora_config: lora.LoraConfig, cfg: PreferenceConfig, *, train: bool = True):
  """Trainer loss ``(adapters, batch, rng, base) -> (loss, metrics)`` for the DPO family.

  Batch: 'prompt', 'prompt_mask', 'chosen', 'chosen_mask', 'rejected', 'rejected_mask'; optionally
  precomputed 'ref_chosen_logps' and 'ref_rejected_logps'.
  """
  if cfg.is_kto:
    raise ValueError(f'make_dpo_loss: loss_type {cfg.loss_type!r} is a KTO loss; use make_kto_loss')

  def loss_fn(adapters, batch, rng, base):
    n = batch['prompt'].shape[0]
    width = max(batch['chosen'].shape[1], batch['rejected'].shape[1])
    pad = lambda x: jnp.pad(x, ((0, 0), (0, width - x.shape[1])))  # noqa: E731
    prompt2 = jnp.concatenate([batch['prompt']] * 2)
    pmask2 = jnp.concatenate([batch['prompt_mask']] * 2)
    comp2 = jnp.concatenate([pad(batch['chosen']), pad(batch['rejected'])])
    cmask2 = jnp.concatenate([pad(batch['chosen_mask']), pad(batch['rejected_mask'])])
    rngs = {'dropout': rng} if train and lora_config.dropout > 0 else None
    pol = completion_logps(model, base, adapters, lora_config, prompt2, pmask2, comp2, cmask2, train=train,
                           rngs=rngs)
    if 'ref_chosen_logps' in batch:
      ref = jnp.concatenate([batch['ref_chosen_logps'], batch['ref_rejected_logps']])
    else:
      ref = jax.lax.stop_gradient(completion_logps(model, base, None, lora_config, prompt2, pmask2, comp2, cmask2))
    return dpo_loss(pol[:n], pol[n:], ref[:n], ref[n:], cfg, jnp.sum(batch['chosen_mask'], -1),
                    jnp.sum(batch['rejected_mask'], -1))

  return loss_fn


# ----------------------------------------------------------------------------------------------- data

def kto_records(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], labels: Sequence[bool],
                prompt_len: int, completion_len: int, pad_id: int = 0) -> list[dict[str, np.ndarray]]:
  """One record per (prompt, completion, label) row (a grain source), laid out as jaxlab.rl.sft records."""
  if not len(prompts) == len(completions) == len(labels):
    raise ValueError(f'{len(prompts)} prompts, {len(completions)} completions, {len(labels)} labels')
  p, pm = pack_prompts(prompts, prompt_len, pad_id)
  c, cm = pack_completions(completions, completion_len, pad_id)
  return [{'prompt': p[i], 'prompt_mask': pm[i], 'completion': c[i], 'completion_mask': cm[i],
           'label': np.float32(bool(labels[i]))} for i in range(len(p))]


def dpo_records(prompts: Sequence[Sequence[int]], chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]],
                prompt_len: int, completion_len: int, pad_id: int = 0) -> list[dict[str, np.ndarray]]:
  """One record per (prompt, chosen, rejected) triple."""
  if not len(prompts) == len(chosen) == len(rejected):
    raise ValueError(f'{len(prompts)} prompts, {len(chosen)} chosen, {len(rejected)} rejected')
  p, pm = pack_prompts(prompts, prompt_len, pad_id)
  c, cm = pack_completions(chosen, completion_len, pad_id)
  r, rm = pack_completions(rejected, completion_len, pad_id)
  return [{'prompt': p[i], 'prompt_mask': pm[i], 'chosen': c[i], 'chosen_mask': cm[i], 'rejected': r[i],
           'rejected_mask': rm[i]} for i in range(len(p))]


KTO_FIELDS = ('prompt', 'completion', 'label')
DPO_FIELDS = ('prompt', 'chosen', 'rejected')


def write_jsonl(path, rows: Iterable[Mapping[str, Any]]) -> None:
  """TRL's unpaired ({prompt, completion, label}) or paired ({prompt, chosen, rejected}) JSONL."""
  with open(path, 'w') as f:
    for row in rows:
      f.write(json.dumps(dict(row)) + '\n')


def read_jsonl(path) -> list[dict[str, Any]]:
  """Rows of a TRL preference JSONL file; each must hold the KTO or the DPO fields (one error line if not)."""
  rows = []
  with open(path) as f:
    for n, line in enumerate(f, 1):
      if not line.strip():
        continue
      row = json.loads(line)
      if not (set(KTO_FIELDS) <= set(row) or set(DPO_FIELDS) <= set(row)):
        raise ValueError(f'{path}:{n}: a preference row needs {KTO_FIELDS} (unpaired) or {DPO_FIELDS} (paired), '
                         f'got {sorted(row)}')
      if 'label' in row and not isinstance(row['label'], bool):
        raise ValueError(f'{path}:{n}: label must be true or false, got {row["label"]!r}')
      rows.append(row)
  return rows
