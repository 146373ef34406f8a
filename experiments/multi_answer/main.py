r"""Multi-answer RL on synthetic diagnosis: single-answer RLVR sampled k times vs Multi-RLVR vs Multi-RLCR.

  python -m experiments.multi_answer.main --config=experiments/multi_answer/configs/default.py \
      --workdir=workdirs/multi_answer
  python -m experiments.multi_answer.main --config=experiments/multi_answer/configs/default.py:tiny \
      --workdir=workdirs/multi_answer_tiny

Patients are 1-4 symptom tokens drawn from a fixed Naive-Bayes model over 8 diseases, the gold diagnosis a
draw from the exact posterior (jaxlab.data.rl_tasks). Two tiny LMs are trained from scratch with SFT on
their formats (single: "<answer> d </answer>"; multi: K numbered answer/confidence pairs with the gold
first, random other labels and random confidences with Σ ≤ 1), then GRPO arms start from them:
``rlvr_single`` (format + accuracy; evaluated by sampling it k times, vote shares as confidences),
``multi_rlvr`` (format·constraint + any-correct) and ``multi_rlcr`` (+ set Brier). Every model is evaluated
on the same test patients: pass@1..K ranked by confidence, coverage, set-Brier, ECE/AUROC over all
(candidate, confidence) pairs, diversity, tokens per set, and the stated p_i against the true posterior
P(d_i | symptoms); the posterior's own top-K set is the oracle row. Results: workdir/results.{json,md},
reliability.png (confidence vs correctness) and posterior.png (stated p_i vs the true P(d_i | x)).
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
from jaxlab.evals import answer_sets, calibration
from jaxlab.nn.lm import transformer
from jaxlab.rl import recipe, rewards, rollout, sft
from jaxlab.train import runrecord

app_flags.define()


def arms(k: int) -> dict:
  """name -> (SFT model it starts from, reward_fn, weights)."""
  return {
      "rlvr_single": ("single", functools.partial(rewards.rlvr, fmt="a"), rewards.RLVR_WEIGHTS),
      "multi_rlvr": ("multi", functools.partial(rewards.multi_rlvr, k=k, reasoning_tags=False), rewards.RLVR_WEIGHTS),
      "multi_rlcr": ("multi", functools.partial(rewards.multi_rlcr, k=k, reasoning_tags=False), rewards.RLCR_WEIGHTS),
  }


def build(config: ml_collections.ConfigDict):
  dmodel = rl_tasks.DiagnosisModel.make(int(config.task.num_diseases), int(config.task.num_symptoms),
                                        int(config.task.model_seed))
  tok = rl_tasks.WordTokenizer(rl_tasks.diagnosis_vocabulary(dmodel, int(config.k)))
  m, t = config.model, config.task
  model = transformer.DecoderLM(transformer.llama_config(
      vocab_size=tok.vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
      num_kv_heads=m.num_kv_heads, mlp_dim=m.mlp_dim, max_len=t.prompt_len + t.completion_len, rope_base=10000.))
  return dmodel, tok, model


def sampling_for(tok, kind: str, k: int, max_new: int) -> rollout.SamplingConfig:
  stop = "</answer>" if kind == "single" else f"</confidence{k}>"
  return rollout.SamplingConfig(max_new_tokens=max_new, eos_id=tok.eos_id, pad_id=tok.pad_id,
                                stop_sequences=(tuple(tok.encode(stop)),), stop_strings=(stop,))


def sft_records(config, tok, dmodel, kind: str):
  items = rl_tasks.diagnoses(int(config.task.num_sft), int(config.seed), dmodel)
  mode = "answer" if kind == "single" else "multi"
  targets = rl_tasks.format_targets(items, int(config.seed), mode=mode, k=int(config.k),
                                    prior=config.task.sft_confidence)
  return sft.sft_records([tok.encode(i.prompt) for i in items], [tok.encode(x) + [tok.eos_id] for x in targets],
                         int(config.task.prompt_len), int(config.task.completion_len), tok.pad_id)


def answer_sets_of(config, model, params, tok, kind: str, items, seed: int) -> list[answer_sets.AnswerSet]:
  """Multi: one greedy completion per item. Single: k samples per item (vote shares as confidences)."""
  k = int(config.k)
  p, m = sft.pack_prompts([tok.encode(i.prompt) for i in items], int(config.task.prompt_len), tok.pad_id)
  base = sampling_for(tok, kind, k, int(config.task.completion_len))
  if kind == "single":
    n = int(config.eval.single_samples)
    cfg = dataclasses.replace(base, temperature=float(config.eval.single_temperature))
    comp = recipe.complete(model, params, p, m, n=n, sampling=cfg, decode=tok.decode, seed=seed)
    out = []
    for i in range(len(items)):
      texts = comp.texts[i * n:(i + 1) * n]
      answers = [(rewards.parse_single(t)[0] or "").strip() if rewards.single_format_ok(t, "a") else None
                 for t in texts]
      out.append(answer_sets.from_samples(answers, int(comp.lengths[i * n:(i + 1) * n].sum())))
    return out
  comp = recipe.complete(model, params, p, m, n=1, sampling=dataclasses.replace(base, temperature=0.0),
                         decode=tok.decode)
  out = []
  for text, length in zip(comp.texts, comp.lengths):
    answers, confs = rewards.parse_multi(text, k)
    ok = answers is not None and rewards.multi_format_ok(text, k, reasoning_tags=False)
    if not ok:
      out.append(answer_sets.AnswerSet((), (), int(length), parsed=False))
      continue
    out.append(answer_sets.AnswerSet(tuple(answers), tuple(min(max(float(c), 0.0), 1.0) for c in confs),
                                     int(length)))
  return out


def oracle_sets(items, k: int) -> list[answer_sets.AnswerSet]:
  out = []
  for item in items:
    top = np.argsort(-item.posterior, kind="stable")[:k]
    out.append(answer_sets.AnswerSet(tuple(item.labels[i] for i in top), tuple(float(item.posterior[i]) for i in top)))
  return out


def set_metrics(sets, items, k: int) -> tuple[dict[str, float], dict[str, list]]:
  golds = [i.answer for i in items]
  out = answer_sets.summary(sets, golds, k)
  q, c = answer_sets.flat_pairs(sets, golds)
  if len(q):
    out.update(ece=calibration.ece(q, c), auroc=calibration.auroc(q, c), pair_brier=calibration.brier(q, c),
               mean_confidence_sum=float(np.mean([sum(s.confidences) for s in sets])))
  out.update(answer_sets.posterior_agreement(sets, [i.posterior for i in items], items[0].labels, k))
  out["constraint_rate"] = float(np.mean([len({a.lower() for a in s.answers}) == len(s.answers) and
                                          sum(s.confidences) <= 1.0 + 1e-9 and s.parsed for s in sets]))
  index = {lab: n for n, lab in enumerate(items[0].labels)}
  true_p = [float(i.posterior[index[a]]) if a in index else 0.0 for s, i in zip(sets, items) for a in s.answers]
  curves = {"confidence": q.tolist(), "correct": c.tolist(), "true_posterior": true_p}
  return out, curves


def evaluate(config, model, params, tok, kind: str, name: str, workdir: str, items) -> dict:
  t0 = time.time()
  sets = answer_sets_of(config, model, params, tok, kind, items, int(config.seed) + 5)
  metrics, curves = set_metrics(sets, items, int(config.k))
  out = {"model": name, "metrics": metrics, "curves": curves, "eval_seconds": round(time.time() - t0, 1),
         "examples": [{"prompt": i.prompt, "gold": i.answer, "answers": s.answers, "confidences": s.confidences,
                       "posterior": {lab: round(float(p), 3) for lab, p in zip(i.labels, i.posterior) if p > 0.01}}
                      for i, s in list(zip(items, sets))[:5]]}
  os.makedirs(os.path.join(workdir, name), exist_ok=True)
  recipe.write_json(os.path.join(workdir, name, "eval.json"), out, indent=None)
  logging.info("eval %s: %s", name, {m: round(v, 3) for m, v in metrics.items()})
  return out


COLUMNS = ("pass@1", "pass@2", "pass@3", "coverage", "set_brier", "ece", "auroc", "diversity", "tokens_per_set",
           "posterior_mass", "topk_recall", "confidence_abs_error", "constraint_rate")


def report(config, workdir: str, items) -> dict:
  k = int(config.k)
  found = {"oracle": {"metrics": set_metrics(oracle_sets(items, k), items, k)[0]}}
  for n in ["sft_single", "sft_multi", *arms(k)]:
    path = os.path.join(workdir, n, "eval.json")
    if os.path.exists(path):
      with open(path) as f:
        found[n] = json.load(f)
  lines = ["| model | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
  for n, r in found.items():
    lines.append(f"| {n} | " + " | ".join(f"{r['metrics'].get(c, float('nan')):.3f}" for c in COLUMNS) + " |")
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  curves = {n: r["curves"] for n, r in found.items() if "curves" in r and r["curves"]["confidence"]}
  if curves:
    calibration.reliability_diagram({n: (c["confidence"], c["correct"]) for n, c in curves.items()},
                                    os.path.join(workdir, "reliability.png"), title="diagnosis: candidates")
    calibration.reliability_diagram({n: (c["confidence"], c["true_posterior"]) for n, c in curves.items()},
                                    os.path.join(workdir, "posterior.png"), title="stated p_i vs the true posterior",
                                    ylabel="true P(d_i | symptoms), bin mean")
  summary = {n: r["metrics"] for n, r in found.items()}
  recipe.write_json(os.path.join(workdir, "results.json"), summary)
  return summary


@runrecord.recorded(continuable=recipe.SWEEP_KEYS)
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  k = int(config.k)
  table = arms(k)
  recipe.begin(config, workdir, table)
  dmodel, tok, model = build(config)
  test = rl_tasks.diagnoses(int(config.eval.num_test), int(config.seed) + 100, dmodel)
  rl_items = rl_tasks.diagnoses(int(config.task.num_rl), int(config.seed) + 1, dmodel)
  records = recipe.prompt_records([tok.encode(i.prompt) for i in rl_items], int(config.task.prompt_len),
                                  {"answer": [i.answer for i in rl_items]}, tok.pad_id)
  during = rl_tasks.diagnoses(int(config.eval.num_during), int(config.seed) + 300, dmodel)

  def on_eval_for(kind):
    def on_eval(state, step):
      sets = answer_sets_of(config, model, state.params, tok, kind, during, int(config.seed) + step)
      m, _ = set_metrics(sets, during, k)
      return {c: m[c] for c in ("pass@1", "coverage", "set_brier", "ece", "posterior_mass") if c in m}
    return on_eval

  recipe_arms = {name: recipe.Arm(reward_fn, weights, sampling_for(tok, kind, k, int(config.task.completion_len)),
                                  sft=f"sft_{kind}", on_eval=on_eval_for(kind))
                 for name, (kind, reward_fn, weights) in table.items()}
  sft_stages = {f"sft_{kind}": (lambda kind=kind: sft_records(config, tok, dmodel, kind))
                for kind in ("multi", "single")}
  recipe.sft_then_grpo(
      config, workdir, model=model, sft_records=sft_stages, rl_records=records, arms=recipe_arms,
      decode=tok.decode,
      evaluate=lambda name, params, sft_name: evaluate(config, model, params, tok, sft_name[len("sft_"):], name,
                                                       workdir, test))
  return report(config, workdir, test)


main = app_flags.main_for(run)


if __name__ == "__main__":
  app_flags.run(main)
