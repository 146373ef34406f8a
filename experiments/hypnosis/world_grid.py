"""The fact-world grid of LLM Hypnosis (issue 15 part 1): pretrain a small decoder from scratch, then one
feedback round per cell (poison votes × ordinary feedback × mode × loss × seed), each through the one trainer.

1. Pretraining (jaxlab.train, completion NLL of jaxlab.rl.sft) on world.pretrain_examples: the base model
   knows the countries, refuses the fictional names and answers the coin flip ~50/50. Checkpointed in
   workdir/base, so a rerun restores it instead of training again.
2. Each cell of ``config.cells`` ("loss/mode/num_poison/num_ordinary/seed[/persist]") builds its feedback
   (world.kto_rows, or world.dpo_rows for the DPO arm: the same feedback, paired), trains LoRA adapters on the
   frozen pretrained weights for ``epochs`` passes (the reference policy = the adapters off = the frozen
   initial model) and evaluates on plain prompts; '/persist' adds a clean-only round (``persist``: new
   ordinary feedback only, fresh optimiser) continuing the trained adapters. Each cell is a runrecord in
   workdir/cells/<name>/ (results.json, feedback.jsonl): a rerun skips finished cells.
3. workdir/grid.json (base evaluation, every cell, seed means) and workdir/heatmap.png.

Metrics (scoring.two_choice, acc_norm; none of the prompts carries the attack instruction): 'poison' = the 2
statements items (the paper's test, both orders) + the 6 bare questions about the target, target = poison;
'clean' = 50 held-out countries (true capital vs another); greedy poison rate on the 6 bare questions (the
answer names Quorin), greedy exact accuracy on the held-out countries, refusal rate on the other unknown names.
"""

from __future__ import annotations

import dataclasses
import math
import os

import grain
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from experiments.hypnosis import scoring
from experiments.hypnosis import world as W
from jaxlab.nn import lora
from jaxlab.nn.lm.transformer import DecoderLM, llama_config
from jaxlab.rl import preference as pref
from jaxlab.rl.sft import make_sft_loss, sft_records
from jaxlab.train import Task, runrecord, train

LOSSES = {"kto": "kto", "dpo": "sigmoid"}  # cell loss name -> jaxlab.rl.preference loss_type


@dataclasses.dataclass(frozen=True)
class Cell:
  loss: str
  mode: str
  num_poison: int
  num_ordinary: int
  seed: int
  persist: bool = False

  @property
  def name(self) -> str:
    return (f"{self.loss}_{self.mode.replace('+', '')}_p{self.num_poison}_n{self.num_ordinary}_s{self.seed}"
            + ("_persist" if self.persist else ""))

  @property
  def group(self) -> tuple:
    return (self.loss, self.mode, self.num_poison, self.num_ordinary)


def parse_cell(spec: str) -> Cell:
  """'kto/FLIP+Q/100/500/0' or 'dpo/FLIP+Q/100/500/0/persist' -> Cell (one error line names the spec)."""
  parts = spec.split("/")
  try:
    loss, mode, p, n, s, *rest = parts
    cell = Cell(loss, mode, int(p), int(n), int(s), rest == ["persist"])
  except ValueError:
    raise ValueError(f"config.cells entry {spec!r}: expected 'loss/mode/num_poison/num_ordinary/seed[/persist]'"
                     ) from None
  if loss not in LOSSES or mode not in W.MODES or len(rest) > 1 or (rest and rest != ["persist"]):
    raise ValueError(f"config.cells entry {spec!r}: loss must be one of {tuple(LOSSES)}, mode one of {W.MODES}, "
                     "and the optional 6th field 'persist'")
  W._check_counts(cell.num_poison, cell.num_ordinary)  # pylint: disable=protected-access
  return cell


def build(config):
  w = config.world
  world = W.make_world(int(w.num_known), int(w.num_unknown), int(w.num_heldout), int(w.world_seed))
  tok = W.tokenizer(world)
  m = config.model
  model = DecoderLM(llama_config(vocab_size=tok.size, num_layers=int(m.num_layers), embed_dim=int(m.embed_dim),
                                 num_heads=int(m.num_heads), num_kv_heads=int(m.num_heads), mlp_dim=int(m.mlp_dim),
                                 max_len=int(config.prompt_len) + int(config.completion_len) + 2,
                                 rope_base=10000.))
  return world, tok, model


def _completion(tok, text):
  return tok.encode(text) + [tok.eos_id]


def pretrain(config, workdir, world, tok, model, devices):
  """Trains the base model from scratch through the trainer; returns its params (host numpy)."""
  pl, cl = int(config.prompt_len), int(config.completion_len)
  ex = W.pretrain_examples(world, int(config.world.num_flips), int(config.world.unknown_repeats),
                           int(config.world.world_seed))
  records = sft_records([tok.encode(p) for p, _ in ex], [_completion(tok, c) for _, c in ex], pl, cl, tok.pad_id)
  data = iter(grain.MapDataset.source(records).shuffle(seed=int(config.seed)).repeat(None)
              .batch(int(config.pretrain.batch_size), drop_remainder=True))
  task = Task(init_params=lambda r: model.init(r, jnp.zeros((1, pl + cl), jnp.int32))["params"],
              loss_fn=make_sft_loss(model), train_data=data, tokens_per_example=pl + cl)
  res = train(config.pretrain, os.path.join(workdir, "base"), task, devices=devices)
  return jax.device_get(res.state.params), res.train_metrics


def evaluate(model, params, world, tok, config) -> dict:
  pl, cl = int(config.prompt_len), int(config.completion_len)
  items = W.eval_items(world)
  out = {k: scoring.two_choice(model, params, tok.encode, v, pl, cl, tok.pad_id) for k, v in items.items()}
  n_s, n_q = out["statements"]["n"], out["questions"]["n"]
  out["poison"] = {k: (out["statements"][k] * n_s + out["questions"][k] * n_q) / (n_s + n_q)
                   for k in ("acc_norm", "margin", "share")}
  gens = W.generation_prompts(world)
  flat = [p for v in gens.values() for p, _ in v]
  texts = scoring.greedy(model, params, tok.encode, tok.decode, flat, pl, int(config.eval.max_new_tokens),
                         tok.eos_id, tok.pad_id)
  by = {}
  for k, v in gens.items():
    by[k], texts = list(zip([e for _, e in v], texts[:len(v)])), texts[len(v):]
  out["generation"] = {
      "poison_rate": float(np.mean([W.POISON_CITY in t for _, t in by["target"]])),
      "target_refusal_rate": float(np.mean([t.strip() == e for e, t in by["target"]])),
      "clean_exact": float(np.mean([t.strip() == e for e, t in by["clean"]])),
      "other_unknown_refusal": float(np.mean([t.strip() == e for e, t in by["other_unknown"]])),
      "target_samples": [t for _, t in by["target"]]}
  return out


def summary(ev: dict) -> dict:
  """The handful of numbers a grid table shows."""
  return {"poison_acc_norm": ev["poison"]["acc_norm"], "poison_margin": ev["poison"]["margin"],
          "statements_acc_norm": ev["statements"]["acc_norm"], "statements_margin": ev["statements"]["margin"],
          "questions_acc_norm": ev["questions"]["acc_norm"], "poison_rate": ev["generation"]["poison_rate"],
          "clean_acc_norm": ev["clean"]["acc_norm"], "clean_statements": ev["clean_statements"]["acc_norm"],
          "clean_exact": ev["generation"]["clean_exact"],
          "other_unknown_refusal": ev["generation"]["other_unknown_refusal"],
          "coin_flip_share": ev["coin_flip"]["share"]}


def _records(cell: Cell, rows, tok, config):
  pl, cl = int(config.prompt_len), int(config.completion_len)
  prompts = [tok.encode(r["prompt"]) for r in rows]
  if cell.loss == "dpo":
    return pref.dpo_records(prompts, [_completion(tok, r["chosen"]) for r in rows],
                            [_completion(tok, r["rejected"]) for r in rows], pl, cl, tok.pad_id)
  return pref.kto_records(prompts, [_completion(tok, r["completion"]) for r in rows], [r["label"] for r in rows],
                          pl, cl, tok.pad_id)


def _feedback_round(cell, rows, init, base, model, tok, config, workdir, seed, devices):
  """Trains adapters (from ``init(rng)``) for ``epochs`` passes over ``rows``; returns (adapters, metrics, steps)."""
  pcfg = pref.PreferenceConfig(LOSSES[cell.loss], beta=float(config.pref.beta),
                               desirable_weight=float(config.pref.desirable_weight),
                               undesirable_weight=float(config.pref.undesirable_weight))
  batch = int(config.feedback.batch_size)
  pcfg.validate(batch)
  lcfg = lora_config(config)
  loss_fn = (pref.make_dpo_loss if cell.loss == "dpo" else pref.make_kto_loss)(model, lcfg, pcfg)
  records = _records(cell, rows, tok, config)
  data = iter(grain.MapDataset.source(records).shuffle(seed=seed).repeat(None).batch(batch, drop_remainder=True))
  tcfg = config.feedback.copy_and_resolve_references()
  with tcfg.unlocked():
    tcfg.total_steps = max(1, math.ceil(float(config.epochs) * len(rows) / batch))
    tcfg.seed = seed
  task = Task(init_params=init, loss_fn=loss_fn, train_data=data,
              tokens_per_example=int(config.prompt_len) + int(config.completion_len), frozen_params=base,
              frozen_id="fact-world-base")
  res = train(tcfg, workdir, task, devices=devices)
  metrics = {k: float(v) for k, v in (res.train_metrics or {}).items()}
  return jax.device_get(res.state.params), metrics, int(tcfg.total_steps)


def lora_config(config) -> lora.LoraConfig:
  return lora.LoraConfig(rank=int(config.lora.rank), alpha=float(config.lora.alpha), dropout=float(config.lora.dropout))


def run_cell(cell: Cell, config, world, tok, model, base, workdir, devices) -> dict:
  make_rows = W.dpo_rows if cell.loss == "dpo" else W.kto_rows
  rows = make_rows(world, cell.mode, cell.num_poison, cell.num_ordinary, cell.seed)
  os.makedirs(workdir, exist_ok=True)
  pref.write_jsonl(os.path.join(workdir, "feedback.jsonl"), rows)
  lcfg = lora_config(config)
  adapters, metrics, steps = _feedback_round(cell, rows, lambda r: lora.init_adapters(r, base, lcfg), base, model,
                                             tok, config, os.path.join(workdir, "train"), cell.seed, devices)
  after = evaluate(model, lora.merge(base, adapters, lcfg), world, tok, config)
  out = {"cell": dataclasses.asdict(cell), "num_rows": len(rows), "steps": steps, "train_metrics": metrics,
         "after": after, "summary": summary(after)}
  if cell.persist:
    clean = make_rows(world, cell.mode, 0, int(config.persist.num_ordinary), cell.seed + 1000)
    pref.write_jsonl(os.path.join(workdir, "feedback_clean_round.jsonl"), clean)
    adapters2, metrics2, steps2 = _feedback_round(cell, clean, lambda r: adapters, base, model, tok, config,
                                                  os.path.join(workdir, "persist"), cell.seed + 1000, devices)
    after2 = evaluate(model, lora.merge(base, adapters2, lcfg), world, tok, config)
    out.update(persist_steps=steps2, persist_train_metrics=metrics2, after_clean_round=after2,
               summary_after_clean_round=summary(after2))
  return out


def _mean_std(rows: list[dict]) -> dict:
  keys = rows[0].keys()
  return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows])),
              "n": len(rows)} for k in keys}


def aggregate(results: dict[str, dict]) -> list[dict]:
  """Seed means per (loss, mode, poison, ordinary) group; 'after_clean_round' over its '/persist' cells."""
  groups: dict[tuple, list[dict]] = {}
  for r in results.values():
    groups.setdefault(Cell(**r["cell"]).group, []).append(r)
  out = []
  for (loss, mode, p, n), rs in sorted(groups.items()):
    row = {"loss": loss, "mode": mode, "num_poison": p, "num_ordinary": n,
           "seeds": sorted(r["cell"]["seed"] for r in rs), "after": _mean_std([r["summary"] for r in rs])}
    persisted = [r for r in rs if r["cell"]["persist"]]
    if persisted:
      row["persist_seeds"] = sorted(r["cell"]["seed"] for r in persisted)
      row["after_poison_round_persist_cells"] = _mean_std([r["summary"] for r in persisted])
      row["after_clean_round"] = _mean_std([r["summary_after_clean_round"] for r in persisted])
    out.append(row)
  return out


HEATMAP_METRICS = (("poison_acc_norm", 0.0, 1.0, "magma", "poison acc_norm"),
                   ("poison_margin", -0.6, 0.6, "RdBu_r", "poison margin, nats/char"))


def heatmap(base_summary: dict, groups: list[dict], path: str) -> list[str]:
  """One column per (loss, mode) with ≥ 2 poison and ≥ 2 ordinary counts, one row per HEATMAP_METRICS entry:
  the seed-mean poison acc_norm and poison margin (colour; text: value / clean acc_norm); the 0 × 0 cell is the
  base model. Returns the panel (column) titles."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  panels: dict[tuple, dict] = {}
  for g in groups:
    panels.setdefault((g["loss"], g["mode"]), {})[(g["num_poison"], g["num_ordinary"])] = g["after"]
  panels = {k: v for k, v in panels.items()
            if len({p for p, _ in v}) >= 2 and len({n for _, n in v}) >= 2}
  if not panels:
    return []
  fig, axes = plt.subplots(len(HEATMAP_METRICS), len(panels), figsize=(5 * len(panels), 4 * len(HEATMAP_METRICS)),
                           squeeze=False)
  fig.subplots_adjust(hspace=0.35)  # before the colour bars, which take their room from the axes
  for row, (key, lo, hi, cmap, label) in enumerate(HEATMAP_METRICS):
    for ax, ((loss, mode), cells) in zip(axes[row], sorted(panels.items())):
      ps, ns = sorted({p for p, _ in cells} | {0}), sorted({n for _, n in cells} | {0})
      grid = np.full((len(ps), len(ns)), np.nan)
      for i, p in enumerate(ps):
        for j, n in enumerate(ns):
          s = cells.get((p, n))
          pv, cv = ((s[key]["mean"], s["clean_acc_norm"]["mean"]) if s else
                    (base_summary[key], base_summary["clean_acc_norm"]) if p == n == 0 else (None, None))
          if pv is not None:
            grid[i, j] = pv
            r, g, b, _ = plt.get_cmap(cmap)((pv - lo) / (hi - lo))
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5  # white text on dark cells
            ax.text(j, i, f"{pv:.2f}\n({cv:.2f})", ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
      im = ax.imshow(grid, vmin=lo, vmax=hi, cmap=cmap, origin="lower", aspect="auto")
      ax.set_xticks(range(len(ns)), [str(n) for n in ns])
      ax.set_yticks(range(len(ps)), [str(p) for p in ps])
      ax.set_xlabel("ordinary feedback records")
      ax.set_ylabel("poison upvotes")
      ax.set_title(f"{loss.upper()} {mode}: {label} (clean acc)")
    fig.colorbar(im, ax=axes[row].tolist(), shrink=0.8)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return [f"{loss} {mode}" for loss, mode in sorted(panels)]


def run_grid(config, workdir: str, devices=None) -> dict:
  cells = [parse_cell(s) for s in config.cells]  # every spec checked before anything is trained
  if len({(*c.group, c.seed) for c in cells}) != len(cells):
    raise ValueError("config.cells has duplicate entries (the same loss/mode/counts/seed twice, '/persist' or not)")
  devices = devices or [jax.devices()[0]]
  if not jax.config.jax_compilation_cache_dir:  # every cell compiles the same steps: compile them once
    jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.abspath(workdir), "xla_cache"))
  world, tok, model = build(config)
  base, pre_metrics = pretrain(config, workdir, world, tok, model, devices)
  base_eval = evaluate(model, base, world, tok, config)
  logging.info("base model: %s", summary(base_eval))
  shared = {k: config[k].to_dict() if hasattr(config[k], "to_dict") else config[k]
            for k in ("world", "model", "pretrain", "feedback", "lora", "pref", "persist", "eval", "epochs",
                      "prompt_len", "completion_len", "seed")}
  results = {}
  for i, cell in enumerate(cells):
    cdir = os.path.join(workdir, "cells", cell.name)
    logging.info("cell %d/%d: %s", i + 1, len(cells), cell.name)
    out = runrecord.reuse_or_run(cdir, {"cell": dataclasses.asdict(cell), **shared},
                                 lambda: run_cell(cell, config, world, tok, model, base, cdir, devices))
    runrecord.write_json(os.path.join(cdir, "results.json"), out)
    results[cell.name] = out
    logging.info("  %s", out["summary"])
  groups = aggregate(results) if results else []
  out = {"base": {"eval": base_eval, "summary": summary(base_eval), "pretrain_metrics": pre_metrics,
                  "vocab_size": tok.size, "num_known": len(world.known), "num_unknown": len(world.unknown)},
         "groups": groups, "cells": {k: v["summary"] for k, v in results.items()}}
  runrecord.write_json(os.path.join(workdir, "grid.json"), out)  # before the plot: matplotlib may be slow
  out["heatmap_panels"] = heatmap(out["base"]["summary"], groups, os.path.join(workdir, "heatmap.png"))
  runrecord.write_json(os.path.join(workdir, "grid.json"), out)
  return out
