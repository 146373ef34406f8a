r"""RLCR (calibration rewards) vs RLVR vs the log score, on a task whose per-item Bayes accuracy is known.

  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py --workdir=workdirs/rlcr
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:tiny --workdir=workdirs/rlcr_tiny
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:smollm2 --workdir=workdirs/rlcr_smol

Stages (each resumable in its own sub-workdir): a tiny Llama-style LM is trained from scratch with SFT on
the output format "<answer> y </answer> <confidence> q </confidence>" (gold answers, uniformly random
confidences: the format, not calibration), then one GRPO run per arm in ``config.arms`` starts from the SFT
params: RLVR (format + accuracy), RLCR (+ Brier), log score (+ log score). Every model is then decoded
greedily on the in-distribution test set and two shifted ones (accuracy, mean confidence, ECE, Brier,
AUROC, the stated confidence against the exact posterior probability of the answer given), and sampled n
times for plain / confidence-weighted / max-confidence voting. workdir/results.json, results.md and
reliability_<set>.png collect every model evaluated so far. The outline is jaxlab.rl.recipe.sft_then_grpo:
a finished stage is recorded (workdir/<stage>/run.json) and reused, so adding an arm runs only that arm.
The ``smollm2`` variant runs the same RLCR arm with SmolLM2-135M-Instruct on reasoning-gym arithmetic (see experiments/rlcr/real_model.py).
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import dataclasses
import functools
import json
import os
import time

import ml_collections
import numpy as np
from absl import app, logging

from jaxlab.data import rl_tasks
from jaxlab.evals import calibration
from jaxlab.nn.lm import transformer
from jaxlab.rl import recipe, rewards, rollout, sft
from jaxlab.train import runrecord

app_flags.define()

FMT = "abc"  # <answer> … </answer> <analysis> … </analysis> <confidence> … </confidence> (no <think>)
STOP = ("</confidence>",)


def arms(cfg: ml_collections.ConfigDict) -> dict:
  """name -> (reward_fn, weights); every arm states a confidence (RLVR ignores it in the reward)."""
  return {
      "rlvr": (functools.partial(rewards.rlvr, fmt=FMT), rewards.RLVR_WEIGHTS),
      "rlcr": (functools.partial(rewards.rlcr, fmt=FMT), rewards.RLCR_WEIGHTS),
      "log_score": (functools.partial(rewards.log_score, fmt=FMT, eps=float(cfg.task.log_eps)),
                    rewards.LOG_SCORE_WEIGHTS),
  }


def build(config: ml_collections.ConfigDict):
  tok = rl_tasks.WordTokenizer(rl_tasks.sum_vocabulary())
  m, t = config.model, config.task
  model = transformer.DecoderLM(transformer.llama_config(
      vocab_size=tok.vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
      num_kv_heads=m.num_kv_heads, mlp_dim=m.mlp_dim, max_len=t.prompt_len + t.completion_len,
      rope_base=10000.))
  sampling = rollout.SamplingConfig(max_new_tokens=t.completion_len, eos_id=tok.eos_id, pad_id=tok.pad_id,
                                    stop_sequences=(tuple(tok.encode(STOP[0])),), stop_strings=STOP)
  return tok, model, sampling


def sft_records(config, tok):
  items = rl_tasks.noisy_sums(int(config.task.num_sft), int(config.seed), "train")
  targets = rl_tasks.format_targets(items, int(config.seed), mode="single", prior=config.task.sft_confidence)
  return sft.sft_records([tok.encode(i.prompt) for i in items], [tok.encode(x) + [tok.eos_id] for x in targets],
                         int(config.task.prompt_len), int(config.task.completion_len), tok.pad_id)


def rl_records(config, tok):
  items = rl_tasks.noisy_sums(int(config.task.num_rl), int(config.seed) + 1, "train")
  return recipe.prompt_records([tok.encode(i.prompt) for i in items], int(config.task.prompt_len),
                               {"answer": [i.answer for i in items]}, tok.pad_id)


def score_items(items, texts, logprobs=None, answer_pos: int = 1) -> dict[str, np.ndarray]:
  """Per-item correctness, stated confidence (clipped; 0 if unparseable), format, posterior of the answer."""
  out = {k: [] for k in ("correct", "confidence", "format", "posterior", "bayes", "answer")}
  for item, text in zip(items, texts):
    comps = rewards.rlcr(text, {"answer": item.answer}, fmt=FMT)
    answer, q = rewards.parse_single(text)
    answer = (answer or "").strip()
    out["correct"].append(comps["accuracy"])
    out["confidence"].append(min(max(q, 0.0), 1.0) if q is not None else 0.0)
    out["format"].append(comps["format"])
    out["posterior"].append(float(item.posterior[item.labels.index(answer)]) if answer in item.labels else 0.0)
    out["bayes"].append(item.bayes_acc)
    out["answer"].append(answer if comps["format"] else None)
  res = {k: np.asarray(v) if k != "answer" else v for k, v in out.items()}
  if logprobs is not None:  # the policy's own probability of its answer token (implicit confidence)
    res["answer_prob"] = np.exp(logprobs[:, answer_pos])
  return res


def set_metrics(s: dict[str, np.ndarray]) -> dict[str, float]:
  out = calibration.summary(s["confidence"], s["correct"])
  out.update(bayes_accuracy=float(s["bayes"].mean()), format_rate=float(s["format"].mean()),
             conf_vs_posterior_mae=float(np.abs(s["confidence"] - s["posterior"]).mean()))
  if "answer_prob" in s:
    out["answer_prob_ece"] = calibration.ece(np.clip(s["answer_prob"], 0, 1), s["correct"])
    out["answer_prob_mean"] = float(s["answer_prob"].mean())
  return out


def by_group(items, s) -> dict[str, dict[str, float]]:
  groups = sorted({i.group for i in items}, key=lambda g: (g == "hidden", g))
  out = {}
  for g in groups:
    idx = np.asarray([i.group == g for i in items])
    out[g] = {"n": int(idx.sum()), "bayes": float(s["bayes"][idx].mean()), "accuracy": float(s["correct"][idx].mean()),
              "confidence": float(s["confidence"][idx].mean())}
  return out


def voting(config, model, params, tok, sampling, items) -> dict[str, dict[str, float]]:
  """Accuracy of plain / confidence-weighted / max-confidence selection over n samples (disjoint blocks)."""
  n_max = int(config.eval.vote_samples)
  p, m = sft.pack_prompts([tok.encode(i.prompt) for i in items], int(config.task.prompt_len), tok.pad_id)
  cfg = dataclasses.replace(sampling, temperature=float(config.eval.vote_temperature))
  comp = recipe.complete(model, params, p, m, n=n_max, sampling=cfg, decode=tok.decode, seed=int(config.seed) + 7)
  scored = score_items([it for it in items for _ in range(n_max)], comp.texts)
  answers = np.asarray([a if a is not None else "" for a in scored["answer"]], object).reshape(len(items), n_max)
  conf = scored["confidence"].reshape(len(items), n_max)
  out = {}
  n = 1
  while n <= n_max:
    acc = {"majority": [], "weighted": [], "max_confidence": []}
    for b in range(n_max // n):
      sl = slice(b * n, (b + 1) * n)
      for i, item in enumerate(items):
        a, q = [x or None for x in answers[i, sl]], conf[i, sl]
        for name, pick in (("majority", calibration.majority_vote(a)), ("weighted", calibration.weighted_vote(a, q)),
                           ("max_confidence", calibration.max_confidence(a, q))):
          acc[name].append(float(pick is not None and rewards.exact_match(pick, item.answer)))
    out[str(n)] = {k: float(np.mean(v)) for k, v in acc.items()}
    n *= 2
  return out


def evaluate(config, model, params, tok, sampling, name: str, workdir: str) -> dict:
  """Greedy metrics on every test set + voting curves; writes workdir/<name>/eval.json."""
  t0 = time.time()
  greedy = dataclasses.replace(sampling, temperature=0.0)
  out = {"model": name, "sets": {}, "groups": {}, "curves": {}}
  for variant in config.eval.sets:
    items = rl_tasks.noisy_sums(int(config.eval.num_test), int(config.seed) + 100, variant)
    p, m = sft.pack_prompts([tok.encode(i.prompt) for i in items], int(config.task.prompt_len), tok.pad_id)
    comp = recipe.complete(model, params, p, m, n=1, sampling=greedy, decode=tok.decode)
    s = score_items(items, comp.texts, comp.logprobs)
    out["sets"][variant] = set_metrics(s)
    out["groups"][variant] = by_group(items, s)
    out["curves"][variant] = {"confidence": s["confidence"].tolist(), "correct": s["correct"].tolist()}
    out["sets"][variant]["tokens_per_answer"] = float(comp.lengths.mean())
  vote_items = rl_tasks.noisy_sums(int(config.eval.vote_items), int(config.seed) + 200, "id")
  out["voting"] = voting(config, model, params, tok, sampling, vote_items)
  out["eval_seconds"] = round(time.time() - t0, 1)
  os.makedirs(os.path.join(workdir, name), exist_ok=True)
  recipe.write_json(os.path.join(workdir, name, "eval.json"), out, indent=None)
  logging.info("eval %s: %s", name, {k: {m: round(v, 3) for m, v in s.items()} for k, s in out["sets"].items()})
  return out


def report(config, workdir: str) -> dict:
  """Collects every eval.json under workdir into results.json, results.md and reliability diagrams."""
  names = ["sft"] + list(arms(config))
  found = {}
  for n in names:
    path = os.path.join(workdir, n, "eval.json")
    if os.path.exists(path):
      with open(path) as f:
        found[n] = json.load(f)
  lines = []
  for variant in config.eval.sets:
    rows = [(n, r["sets"][variant]) for n, r in found.items() if variant in r["sets"]]
    if not rows:
      continue
    lines += [f"### {variant}", "", "| model | accuracy | Bayes acc | mean conf | ECE | Brier | AUROC | "
              "|conf - P(answer)| | answer-prob ECE | format |", "|---|---|---|---|---|---|---|---|---|---|"]
    for n, s in rows:
      lines.append(f"| {n} | {s['accuracy']:.3f} | {s['bayes_accuracy']:.3f} | {s['confidence']:.3f} | "
                   f"{s['ece']:.3f} | {s['brier']:.3f} | {s['auroc']:.3f} | {s['conf_vs_posterior_mae']:.3f} | "
                   f"{s.get('answer_prob_ece', float('nan')):.3f} | {s['format_rate']:.3f} |")
    lines.append("")
    calibration.reliability_diagram(
        {n: (r["curves"][variant]["confidence"], r["curves"][variant]["correct"]) for n, r in found.items()
         if variant in r["curves"]}, os.path.join(workdir, f"reliability_{variant}.png"),
        title=f"noisy sums: {variant}")
  lines += ["### stated confidence by noise level (ID, greedy): accuracy / mean confidence (Bayes accuracy)", ""]
  groups = next(iter(found.values()))["groups"].get("id", {}) if found else {}
  lines += ["| model | " + " | ".join(f"{g} ({v['bayes']:.2f})" for g, v in groups.items()) + " |",
            "|---|" + "---|" * len(groups)]
  for n, r in found.items():
    gs = r["groups"].get("id", {})
    cells = [f"{gs[g]['accuracy']:.2f} / {gs[g]['confidence']:.2f}" for g in groups]
    lines.append(f"| {n} | " + " | ".join(cells) + " |")
  lines += ["", "### voting accuracy on ID items vs samples n (majority / confidence-weighted / max-confidence)", ""]
  ns = list(next(iter(found.values()))["voting"]) if found else []
  lines += ["| model | " + " | ".join(f"n={n}" for n in ns) + " |", "|---|" + "---|" * len(ns)]
  for n, r in found.items():
    v = r["voting"]
    lines.append(f"| {n} | " + " | ".join(f"{v[k]['majority']:.3f} / {v[k]['weighted']:.3f} / "
                                          f"{v[k]['max_confidence']:.3f}" for k in ns) + " |")
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  summary = {n: {"sets": r["sets"], "voting": r["voting"], "groups": r["groups"]} for n, r in found.items()}
  recipe.write_json(os.path.join(workdir, "results.json"), summary)
  return summary


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  recipe.begin(config, workdir, arms(config))
  tok, model, sampling = build(config)
  during = rl_tasks.noisy_sums(int(config.eval.num_during), int(config.seed) + 300, "id")
  p, m = sft.pack_prompts([tok.encode(i.prompt) for i in during], int(config.task.prompt_len), tok.pad_id)
  greedy = dataclasses.replace(sampling, temperature=0.0)

  def on_eval(state, step):
    del step
    comp = recipe.complete(model, state.params, p, m, n=1, sampling=greedy, decode=tok.decode)
    s = score_items(during, comp.texts)
    return {k: v for k, v in set_metrics(s).items() if k in ("accuracy", "confidence", "ece", "brier", "auroc")}

  table = {name: recipe.Arm(reward_fn, weights, sampling, sft="sft", on_eval=on_eval)
           for name, (reward_fn, weights) in arms(config).items()}
  recipe.sft_then_grpo(config, workdir, model=model, sft_records={"sft": lambda: sft_records(config, tok)},
                       rl_records=rl_records(config, tok), arms=table, decode=tok.decode,
                       evaluate=lambda name, params, _: evaluate(config, model, params, tok, sampling, name, workdir))
  return report(config, workdir)


@runrecord.recorded(continuable=recipe.SWEEP_KEYS)
def run_any(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The synthetic-task recipe, or the SmolLM2 demo when ``config.real_model`` is set."""
  if config.get("real_model"):
    from experiments.rlcr import real_model  # pylint: disable=import-outside-toplevel
    return real_model.run(config, workdir)
  return run(config, workdir)


main = app_flags.main_for(run_any)


if __name__ == "__main__":
  app_flags.run(main)
