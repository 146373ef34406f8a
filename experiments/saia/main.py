r"""SAIA: a self-reflective agent that finds the visual attribute a model relies on (Li et al., NeurIPS 2025),
on a benchmark of rendered-scene models with known reliances.

  python -m experiments.saia.main --config=experiments/saia/configs/default.py --workdir=workdirs/saia
  python -m experiments.saia.main --config=experiments/saia/configs/default.py:tiny --workdir=workdirs/saia_tiny

Stages:
 1. the detector / backbone: an RgbViTClassifier with a head per extended scene factor, trained through the
    one trainer on uniformly sampled extended scenes (its shape head is the object detector);
 2. wired models (the paper's rule, jaxlab.agents.saia.benchmark) and trained models (logistic heads over the
    frozen pooled features, all trained at once through the trainer on biased data); each trained model's
    reliance is measured and only those that pass enter the benchmark; manifest.json holds every model;
 3. per model, the scripted agent without self-evaluation (its round 1 is the one-round baseline) and with
    it, for config.agent.rounds rounds; per round: exact label accuracy (object, category and value), category
    accuracy and the evaluator's predictiveness (mean HIGH − mean LOW score on fresh renders);
 4. results.json (per kind, per agent, per round), rounds.png (the curves), grid.png (one model's exemplars,
    HIGH and LOW sets).
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import dataclasses
import json
import os
import time

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from experiments.saia import plots
from jaxlab.agents.saia import agents as A
from jaxlab.agents.saia import benchmark as B
from jaxlab.agents.saia import protocol as P
from jaxlab.agents.saia import tools as T
from jaxlab.data import scenes as S
from jaxlab.nn.vision import rgb_vit, small_cnn
from jaxlab.train import Task, runrecord, train, validate_config

app_flags.define()

AGENTS = {'non_reflective': False, 'reflective': True}


def check_config(config) -> None:
  validate_config(config.vit.train, "config.vit.train")
  validate_config(config.trained.train, "config.trained.train")
  if int(config.image_size) % int(config.vit.patch):
    raise ValueError(f"config.image_size={config.image_size} must be a multiple of config.vit.patch={config.vit.patch}")
  if config.vit.arch not in ("cnn", "vit"):
    raise ValueError(f"config.vit.arch={config.vit.arch!r} must be 'cnn' or 'vit'")
  if int(config.agent.rounds) < 1:
    raise ValueError(f"config.agent.rounds={config.agent.rounds} must be ≥ 1")
  if not 0.0 <= float(config.trained.neg_attr_rate) <= 1.0:
    raise ValueError(f"config.trained.neg_attr_rate={config.trained.neg_attr_rate} must be in [0, 1]")


def vit_model(config):
  v = config.vit
  if v.arch == "cnn":
    return small_cnn.SmallCNN(B.FACTOR_HEADS, widths=tuple(int(w) for w in v.cnn_widths),
                              feature_dim=int(v.embed_dim))
  cfg = rgb_vit.RgbViTConfig(image_size=int(config.image_size), patch=int(v.patch), embed_dim=int(v.embed_dim),
                             num_layers=int(v.num_layers), num_heads=int(v.num_heads), mlp_dim=int(v.mlp_dim))
  return rgb_vit.RgbViTClassifier(cfg, B.FACTOR_HEADS)


def train_backbone(config, workdir, devices) -> tuple[B.Backbone, dict]:
  seed, size = int(config.seed), int(config.image_size)
  train_sc = S.sample_extended_scenes(int(config.vit.num_train), seed)
  test_sc = S.sample_extended_scenes(int(config.vit.num_test), seed + 1)
  train_img = S.render_batch(train_sc, size, seed)
  test_img = S.render_batch(test_sc, size, seed + 1)
  model = vit_model(config)
  records = [{"images": train_img[i], **B.factor_labels(s)} for i, s in enumerate(train_sc)]
  task = Task(init_params=lambda r: model.init(r, train_img[:1])["params"], loss_fn=B.backbone_loss(model),
              train_data=iter(grain.MapDataset.source(records).shuffle(seed=seed).repeat(None)
                              .batch(int(config.vit.train.batch_size), drop_remainder=True)))
  res = train(config.vit.train, os.path.join(workdir, "vit"), task, devices=devices)
  params = jax.device_get(res.state.params)
  logits = jax.jit(lambda p, x: model.apply({"params": p}, x))(params, test_img)
  acc = {}
  for k, lg in logits.items():
    y = np.array([B.factor_labels(s)[k] for s in test_sc])
    acc[k] = float(np.mean(np.argmax(np.asarray(lg), -1)[y >= 0] == y[y >= 0]))
  logging.info("backbone held-out factor accuracy: %s", acc)
  return B.Backbone(model, params), {"factor_accuracy": acc, "final_loss": res.train_metrics.get("loss")}


def train_heads(config, workdir, devices, backbone: B.Backbone, specs: list[B.ModelSpec]) -> dict[str, dict]:
  seed, size = int(config.seed), int(config.image_size)
  pool = S.sample_extended_scenes(int(config.trained.pool), seed + 2)
  _, feats = backbone(S.render_batch(pool, size, seed + 2))
  idx, ys = zip(*[B.biased_indices(s, pool, int(config.trained.examples), float(config.trained.neg_attr_rate),
                                   seed + 3 + i) for i, s in enumerate(specs)])
  idx, ys = np.stack(idx, 1), np.stack(ys, 1)           # [examples, M]
  records = [{"x": feats[idx[j]], "y": ys[j]} for j in range(len(idx))]
  heads = B.Heads(len(specs), feats.shape[1])
  task = Task(init_params=lambda r: heads.init(r, jnp.zeros((1, len(specs), feats.shape[1])))["params"],
              loss_fn=B.heads_loss(heads),
              train_data=iter(grain.MapDataset.source(records).shuffle(seed=seed).repeat(None)
                              .batch(int(config.trained.train.batch_size), drop_remainder=True)))
  res = train(config.trained.train, os.path.join(workdir, "heads"), task, devices=devices)
  p = jax.device_get(res.state.params)
  return {s.name: {"w": np.asarray(p["w"][i]), "b": float(p["b"][i])} for i, s in enumerate(specs)}


def run_model(config, spec: B.ModelSpec, score_fn, pool: T.Images, pool_scores, model_seed: int) -> dict:
  a = config.agent
  rounds = int(a.rounds)
  evaluator = T.Toolbox(score_fn, int(config.image_size), pool=pool, pool_scores=pool_scores,
                        seed=10_000 + model_seed)
  pred_cache: dict[tuple, float] = {}

  def pred(label: P.Label) -> float:
    key = (label.object, label.category, label.value)
    if key not in pred_cache:
      pred_cache[key] = P.predictiveness(evaluator, label, int(a.num_evaluator))
    return pred_cache[key]

  truth = P.Label(spec.object, spec.category, spec.value)
  out = {"model": spec.name, "truth_predictiveness": pred(truth), "agents": {}}
  for name, reflect in AGENTS.items():
    tools = T.Toolbox(score_fn, int(config.image_size), pool=pool, pool_scores=pool_scores, seed=model_seed)
    agent = A.ScriptedAgent(reflect=reflect, num_edit_images=int(a.num_edit_images))
    hist = A.run_agent(agent, tools, rounds, reflect, num_exemplars=int(a.num_exemplars),
                       num_self_eval=int(a.num_self_eval))
    labels = A.labels_by_round(hist, rounds)
    out["agents"][name] = {
        "labels": [[l.object, l.category, l.value] for l in labels],
        "exact": [bool(l.matches(truth)) for l in labels],
        "category": [bool(l.object == truth.object and l.category == truth.category) for l in labels],
        "predictiveness": [pred(l) for l in labels],
        "rounds_run": len(hist), "stopped": bool(hist[-1].stopped), "images_scored": tools.images_scored,
    }
    out["agents"][name]["_history"] = hist
  return out


def summarise(per_model: list[dict], kind: str, rounds: int) -> dict:
  rows = [m for m in per_model if m["model"].startswith(kind + ":")]
  out = {"num_models": len(rows)}
  if not rows:
    return out
  out["truth_predictiveness"] = float(np.mean([m["truth_predictiveness"] for m in rows]))
  for name in AGENTS:
    ag = [m["agents"][name] for m in rows]
    out[name] = {
        "exact_accuracy": [float(np.mean([g["exact"][r] for g in ag])) for r in range(rounds)],
        "category_accuracy": [float(np.mean([g["category"][r] for g in ag])) for r in range(rounds)],
        "predictiveness": [float(np.mean([g["predictiveness"][r] for g in ag])) for r in range(rounds)],
        "mean_rounds_run": float(np.mean([g["rounds_run"] for g in ag])),
        "stopped_fraction": float(np.mean([g["stopped"] for g in ag])),
        "mean_images_scored": float(np.mean([g["images_scored"] for g in ag])),
    }
  out["one_round"] = {k: out["non_reflective"][k][0] for k in ("exact_accuracy", "category_accuracy",
                                                               "predictiveness")}
  return out


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  check_config(config)
  devices = devices or [jax.devices()[0]]
  seed, size, walls, t0 = int(config.seed), int(config.image_size), {}, time.time()

  # --- 1. detector / backbone ---------------------------------------------------------------------------
  backbone, bb_info = train_backbone(config, workdir, devices)
  walls["backbone_s"] = time.time() - t0

  # --- 2. the benchmark ------------------------------------------------------------------------------------
  t = time.time()
  wired = B.candidate_specs("wired", seed, int(config.wired.num_models))
  cands = B.candidate_specs("trained", seed + 1, int(config.trained.num_candidates))
  heads = train_heads(config, workdir, devices, backbone, cands)
  bench = B.Benchmark(backbone, heads)
  manifest, trained = [], []
  for i, spec in enumerate(wired + cands):
    rel = B.reliance(bench.score_fn(spec), spec, size, int(config.trained.reliance_images), seed + 500 + i)
    rel["object_reliance"] = 1.0 - rel["score_no_object"] / max(rel["score_with"], 1e-9)
    admitted = spec.kind == "wired" or (rel["reliance"] >= float(config.trained.min_reliance)
                                        and rel["score_with"] >= float(config.trained.min_score)
                                        and rel["object_reliance"] >= float(config.trained.min_object_reliance))
    manifest.append(spec.to_json() | rel | {"admitted": bool(admitted)})
    if admitted and spec.kind == "trained":
      trained.append(spec)
  runrecord.write_json(os.path.join(workdir, "manifest.json"), {"models": manifest})
  models = wired + trained
  logging.info("benchmark: %d wired + %d trained models (of %d candidates)", len(wired), len(trained), len(cands))
  walls["benchmark_s"] = time.time() - t

  # --- 3. agents ---------------------------------------------------------------------------------------
  t = time.time()
  pool_sc = S.sample_extended_scenes(int(config.agent.exemplar_pool), seed + 7)
  pool = T.render(pool_sc, [seed * 100003 + i for i in range(len(pool_sc))], size)
  probs, feats = backbone(pool.pixels)
  per_model = []
  for i, spec in enumerate(models):
    ps = (B.wired_scores(spec, probs, pool.pixels, pool.scenes) if spec.kind == "wired"
          else B.trained_scores(heads[spec.name], feats))
    per_model.append(run_model(config, spec, bench.score_fn(spec), pool, ps, seed * 1000 + i))
    if i % 10 == 0:
      logging.info("agents: %d / %d models (%.0f s)", i + 1, len(models), time.time() - t)
  walls["agents_s"] = time.time() - t

  # --- 4. results -----------------------------------------------------------------------------------------
  rounds = int(config.agent.rounds)
  g = per_model[min(int(config.agent.grid_model), len(per_model) - 1)]
  hist = g["agents"]["reflective"]["_history"]
  tools = T.Toolbox(bench.score_fn(models[min(int(config.agent.grid_model), len(models) - 1)]), size, pool=pool,
                    seed=0, pool_scores=None)
  ex, ex_scores = tools.exemplars(int(config.agent.num_exemplars))
  plots.grid(os.path.join(workdir, "grid.png"), g["model"], ex, ex_scores, hist[-1].self_eval)
  summary = {kind: summarise(per_model, kind, rounds) for kind in ("wired", "trained")}
  plots.rounds(os.path.join(workdir, "rounds.png"), summary, rounds)
  for m in per_model:
    for a in m["agents"].values():
      a.pop("_history")
  walls["total_s"] = time.time() - t0
  out = {"backbone": bb_info, "num_models": {"wired": len(wired), "trained": len(trained),
                                             "trained_candidates": len(cands)},
         "summary": summary, "per_model": per_model, "wall_s": walls}
  runrecord.write_json(os.path.join(workdir, "results.json"), out)
  logging.info("results: %s", json.dumps(runrecord.to_plain(summary))[:3000])
  return out


main = app_flags.main_for(run)


if __name__ == "__main__":
  app_flags.run(main)
