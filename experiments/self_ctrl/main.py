r"""Self-CTRL part 1 (coins): does consistency training make a model's stated bias match its own behaviour?

  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/default.py --workdir=workdirs/self_ctrl
  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/default.py:tiny --workdir=workdirs/sc_tiny
  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/rules.py --workdir=workdirs/sc_rules

Per seed (workdir/seed<N>/<stage>, each stage recorded in its run.json and reused on a rerun):
* ``sft``: a small Llama-style decoder trained from scratch on rollouts of all 100 coins and the programs of the
  50 "sft" coins; ``oracle``: the same with the programs of the 90 sft + cons coins.
* ``selfctrl``: from the SFT params, jaxlab.rl.consistency.SelfCTRL with λ = 0 on the 40 cons coins (anchor =
  the lowest-NLL of K behaviours; φ = mean per-flip log-likelihood of the anchor under the stated p̂, -15 if
  unparseable; advantage std floor 0.05; 0.3 × NLL of one frozen SFT rollout per coin);
  ``selfctrl_random``: the same with a random anchor (the ablation).
* every arm is evaluated on all 100 coins: K stated p̂ (mode, ties nearest the mean; and mean) against the
  model's own heads rate over 100 flips and against the true bias: identity-line R² per group, bootstrap
  intervals over the holdout coins; workdir/results.json, results.md and scatter.png collect the seeds.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from experiments.self_ctrl import coins as coins_lib
from experiments.self_ctrl import rules as rules_lib
from experiments.self_ctrl import smollm2 as smollm2_lib
from jaxlab.data import pipeline
from jaxlab.nn.lm import transformer
from jaxlab.rl import consistency, recipe, rollout, sft
from jaxlab.train import runrecord, trainer

app_flags.define()

ARMS = {  # name -> (SFT program groups, Self-CTRL anchor rule or None)
    "sft": (("sft",), None),
    "oracle": (("sft", "cons"), None),
    "selfctrl": (("sft",), "lowest_nll"),
    "selfctrl_random": (("sft",), "random"),
}
TARGETS = ("rollout", "bias")
PREDS = ("mode", "mean")


def seed_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(config.to_dict())
  c.seed = int(seed)
  return c


def completion_len(config) -> int:
  return max(int(config.task.flips) + 1, int(config.rl.ctrl.explanation_tokens))


def build(config, seed: int):
  t = config.task
  coins = coins_lib.make_coins(seed, int(t.num_coins), int(t.num_sft), int(t.num_holdout))
  tok = coins_lib.tokenizer(coins)
  m = config.model
  model = transformer.DecoderLM(transformer.llama_config(
      vocab_size=tok.vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
      num_kv_heads=m.num_kv_heads, mlp_dim=m.mlp_dim, max_len=int(t.prompt_len) + completion_len(config),
      rope_base=10000.))
  sampling = rollout.SamplingConfig(max_new_tokens=completion_len(config), eos_id=tok.eos_id, pad_id=tok.pad_id)
  return coins, tok, model, sampling


def sft_records(config, coins, tok, groups):
  t = config.task
  pairs = coins_lib.sft_pairs(coins, groups, rollouts_per_coin=int(t.rollouts_per_coin),
                              programs_per_coin=int(t.programs_per_coin), flips=int(t.flips), seed=int(config.seed))
  return sft.sft_records([tok.encode(p) for p, _ in pairs], [tok.encode(c) + [tok.eos_id] for _, c in pairs],
                         int(t.prompt_len), completion_len(config), tok.pad_id)


def ctrl_config(config, anchor: str) -> consistency.ConsistencyConfig:
  cfg = consistency.ConsistencyConfig.from_config(config.rl.ctrl)
  return dataclasses.replace(cfg, anchor=anchor, behaviour_tokens=int(config.task.flips) + 1)


def run_ctrl(config, workdir: str, *, model, params, coins, tok, sampling, anchor: str, devices=None):
  """One Self-CTRL arm from the SFT params on the cons coins (resumable in ``workdir``); returns its params."""
  cfg = ctrl_config(config, anchor)
  dom = coins_lib.domain(tok)
  cons = [{"coin": c.name} for c in coins if c.group == "cons"]
  records = consistency.prompt_records(dom, cons, int(config.task.prompt_len), tok.pad_id)
  # the untouched side's regulariser: one behaviour per coin sampled once from the SFT model, frozen
  bp = np.stack([r["beh_prompt"] for r in records])
  bm = np.stack([r["beh_prompt_mask"] for r in records])
  frozen = rollout.sample(model, params, bp, bm, group_size=1, rng=jax.random.key(int(config.seed) + 99),
                          cfg=dataclasses.replace(sampling, max_new_tokens=cfg.behaviour_tokens), decode=tok.decode)
  consistency.attach_rows(records, "untouched", bp, bm, frozen.tokens, frozen.mask.astype(np.float32),
                          cfg.completion_len)
  it = pipeline.make_lm_pipeline(records, global_batch_size=cfg.prompts_per_step, seed=int(config.seed))
  host_params = jax.device_get(params)
  engine = consistency.SelfCTRL(model, cfg, dom, sampling, tok.decode, it,
                                init_params=lambda rng: jax.tree.map(jnp.asarray, host_params))
  stage = ml_collections.ConfigDict({k: v for k, v in config.rl.to_dict().items() if k != "ctrl"})
  tcfg = recipe.trainer_config(config, stage, cfg.batch_rows(False))
  result = trainer.train(tcfg, workdir, engine.task(), devices)
  return result.state.params


def evaluate(config, model, params, coins, tok, sampling, seed: int) -> dict:
  """K stated p̂ and R rollouts per coin; identity-line R² per group (mode / mean vs rollout / true bias)."""
  t0 = time.time()
  dom = coins_lib.domain(tok)
  plen, ke, kr = int(config.task.prompt_len), int(config.eval.explanations), int(config.eval.rollouts)
  ex = [{"coin": c.name} for c in coins]
  ep, em = sft.pack_prompts([dom.explanation_prompt(e) for e in ex], plen, tok.pad_id)
  bp, bm = sft.pack_prompts([dom.behaviour_prompt(e) for e in ex], plen, tok.pad_id)
  expl = recipe.complete(model, params, ep, em, n=ke, decode=tok.decode, seed=seed + 1000,
                         sampling=dataclasses.replace(sampling, max_new_tokens=int(config.rl.ctrl.explanation_tokens)))
  beh = recipe.complete(model, params, bp, bm, n=kr, decode=tok.decode, seed=seed + 2000,
                        sampling=dataclasses.replace(sampling, max_new_tokens=int(config.task.flips) + 1))
  beh_nll = consistency.mean_nll(beh.logprobs, beh.mask)
  per_target = max(1, -(-100 // int(config.task.flips)))  # rollouts making up the 100-flip target
  out = {"coins": [], "eval_seconds": 0.0}
  for i, c in enumerate(coins):
    stated = [dom.parse_explanation(t) for t in expl.texts[i * ke:(i + 1) * ke]]
    flips = [dom.parse_behaviour(t) for t in beh.texts[i * kr:(i + 1) * kr]]
    ok = [f for f in flips if f is not None]
    h = lambda fs: sum(f[0] for f in fs) / max(sum(sum(f) for f in fs), 1)  # noqa: E731
    anchor = consistency.select_anchor(beh_nll[i * kr:(i + 1) * kr], [f is not None for f in flips])
    parsed = [s for s in stated if s is not None]
    mode = coins_lib.mode_of(parsed)
    out["coins"].append({
        "coin": c.name, "group": c.group, "bias": c.bias,
        "mode": 0.5 if mode is None else mode, "mean": float(np.mean(parsed)) if parsed else 0.5,
        "parse_rate": len(parsed) / ke, "stated": stated,
        "rollout": h([f for f in flips[:per_target] if f is not None]), "rollout_all": h(ok),
        "anchor_rate": h([flips[anchor]]) if anchor is not None else None,
        "beh_parse_rate": len(ok) / kr})
  out["r2"] = r2_table(out["coins"], int(config.eval.bootstrap), seed)
  out["eval_seconds"] = round(time.time() - t0, 1)
  return out


def r2_table(rows, n_boot: int, seed: int) -> dict:
  out = {}
  for g in (*coins_lib.GROUPS, "all"):
    sel = [r for r in rows if g == "all" or r["group"] == g]
    for pred in PREDS:
      for target in TARGETS:
        p, t = np.asarray([r[pred] for r in sel]), np.asarray([r[target] for r in sel])
        key = f"{g}/{pred}_vs_{target}"
        out[key] = coins_lib.r2_identity(p, t)
        if g == "holdout":
          out[key + "_ci"] = coins_lib.bootstrap_r2(p, t, n=n_boot, seed=seed)
    out[f"{g}/parse_rate"] = float(np.mean([r["parse_rate"] for r in sel]))
  return out


def run(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  world = config.get("world", "coins")
  if world == "rules":   # part 2 (configs/rules.py)
    return rules_lib.run(config, workdir, devices)
  if world == "smollm2":  # part 3 (configs/smollm2.py)
    return smollm2_lib.run(config, workdir, devices)
  if world != "coins":
    raise ValueError(f"config.world={world!r}; expected 'coins' (absent), 'rules' or 'smollm2'")
  recipe.begin(config, workdir, ARMS)
  results = {}
  for seed in config.seeds:
    cfg = seed_config(config, seed)
    coins, tok, model, sampling = build(cfg, int(seed))
    sdir = os.path.join(workdir, f"seed{seed}")
    params: dict[str, object] = {}

    def sft_params(groups, name):
      if name not in params:
        params[name] = recipe.run_sft(cfg, os.path.join(sdir, name), model,
                                      sft_records(cfg, coins, tok, groups), devices)
      return params[name]

    results[int(seed)] = {}
    for arm in config.arms:
      groups, anchor = ARMS[arm]
      base = "sft" if groups == ("sft",) else "oracle"

      def compute(arm=arm, groups=groups, anchor=anchor, base=base):
        t0 = time.time()
        p = sft_params(groups, base)
        if anchor is not None:
          p = run_ctrl(cfg, os.path.join(sdir, arm), model=model, params=p, coins=coins, tok=tok,
                       sampling=sampling, anchor=anchor, devices=devices)
        train_s = time.time() - t0
        ev = evaluate(cfg, model, p, coins, tok, sampling, int(seed))
        ev["train_seconds"] = round(train_s, 1)
        return ev

      stage_cfg = {**recipe.stage_config(cfg, arm), "seeds": None}
      results[int(seed)][arm] = runrecord.reuse_or_run(os.path.join(sdir, arm, "eval"), stage_cfg, compute)
      logging.info("seed %d %s: %s", seed, arm, {k: round(v, 3) for k, v in results[int(seed)][arm]["r2"].items()
                                                  if not k.endswith("_ci") and k.startswith("holdout")})
  return report(config, workdir, results)


def report(config, workdir: str, results: dict, scatter_name: str = "scatter.png") -> dict:
  """Across seeds: mean R² (and per-seed values, holdout bootstrap intervals); results.md; scatter.png."""
  summary = {"seeds": sorted(results), "arms": {}}
  for arm in config.arms:
    per_seed = {s: results[s][arm]["r2"] for s in results if arm in results[s]}
    if not per_seed:
      continue
    keys = [k for k in next(iter(per_seed.values())) if not k.endswith("_ci")]
    summary["arms"][arm] = {
        "mean": {k: float(np.mean([v[k] for v in per_seed.values()])) for k in keys},
        "per_seed": per_seed,
        "train_seconds": {s: results[s][arm]["train_seconds"] for s in per_seed},
        "anchor_outward": anchor_outward([c for s in per_seed for c in results[s][arm]["coins"]])}
  lines = ["| arm | seeds | " + " | ".join(f"{g} R² mode vs rollout" for g in coins_lib.GROUPS) +
           " | holdout mode vs bias | holdout mean vs rollout | holdout parse |", "|---|" + "---|" * 7]
  for arm, s in summary["arms"].items():
    m = s["mean"]
    cis = [s["per_seed"][k]["holdout/mode_vs_rollout_ci"] for k in s["per_seed"]]
    ci = " ".join(f"[{a:.2f}, {b:.2f}]" for a, b in cis)
    lines.append(f"| {arm} | {len(s['per_seed'])} | {m['sft/mode_vs_rollout']:.3f} | {m['cons/mode_vs_rollout']:.3f} | "
                 f"{m['holdout/mode_vs_rollout']:.3f} {ci} | {m['holdout/mode_vs_bias']:.3f} | "
                 f"{m['holdout/mean_vs_rollout']:.3f} | {m['holdout/parse_rate']:.2f} |")
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  recipe.write_json(os.path.join(workdir, "results.json"), summary)
  scatter({s: {a: r for a, r in v.items() if r["coins"]} for s, v in results.items()}, config.arms,
          os.path.join(workdir, scatter_name))
  return summary


def anchor_outward(rows) -> float | None:
  """Mean of |anchor heads rate - 0.5| - |mean heads rate - 0.5|: > 0 when the lowest-NLL rollout is more
  extreme than the model's behaviour (the mode-seeking anchor)."""
  d = [abs(c["anchor_rate"] - 0.5) - abs(c["rollout_all"] - 0.5) for c in rows if c["anchor_rate"] is not None]
  return float(np.mean(d)) if d else None


def scatter(results, arms, path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms), 3.3), squeeze=False)
  colours = {"sft": "tab:blue", "cons": "tab:orange", "holdout": "tab:red"}
  for ax, arm in zip(axes[0], arms):
    for s in results:
      if arm not in results[s]:
        continue
      for g in coins_lib.GROUPS:
        cs = [c for c in results[s][arm]["coins"] if c["group"] == g]
        ax.scatter([c["rollout"] for c in cs], [c["mode"] for c in cs], s=10 if g != "holdout" else 22,
                   c=colours[g], alpha=0.6, label=g if s == min(results) else None)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(title=arm, xlabel="own rollout heads rate", xlim=(0, 1), ylim=(0, 1))
  axes[0][0].set_ylabel("stated p̂ (mode of K)")
  axes[0][0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def collect(config, out_dir: str, seed_dirs: dict[int, list[str]], previous: str | None = None,
            scatter_name: str = "scatter.png") -> dict:
  """The report over finished stages of several workdirs: seed -> seed folders (workdir/seed<N>) whose
  <arm>/eval/run.json records are read (runs of one seed may sit in several workdirs, e.g. run in parallel).

  ``previous``: an earlier results.json whose per-seed R² tables (and train seconds) fill the (seed, arm) cells
  not found in ``seed_dirs`` (their per-coin rows are not in it: such cells enter the R² means but not
  ``anchor_outward`` or the scatter plot)."""
  results: dict[int, dict] = {}
  for seed, dirs in seed_dirs.items():
    for d in dirs:
      for arm in config.arms:
        rec = runrecord.read(os.path.join(d, arm, "eval"))
        if rec and rec.get("status") == "finished" and arm not in results.get(seed, {}):
          results.setdefault(seed, {})[arm] = rec["results"]
  if previous:
    with open(previous) as f:
      prev = json.load(f)
    for arm, a in prev["arms"].items():
      for seed, r2 in a["per_seed"].items():
        if arm in config.arms and arm not in results.get(int(seed), {}):
          results.setdefault(int(seed), {})[arm] = {"r2": r2, "train_seconds": a["train_seconds"][seed], "coins": []}
  os.makedirs(out_dir, exist_ok=True)
  return report(config, out_dir, results, scatter_name)


@runrecord.recorded(continuable=("arms", "seeds"))
def run_recorded(config: ml_collections.ConfigDict, workdir: str) -> dict:
  return run(config, workdir)


main = app_flags.main_for(run_recorded)


if __name__ == "__main__":
  app_flags.run(main)
