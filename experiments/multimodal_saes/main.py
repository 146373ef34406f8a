r"""Multimodal SAEs, probes and steering on a LLaVA-style miniature ("Line of sight", Rajaram et al. 2025).

  python -m experiments.multimodal_saes.main --config=experiments/multimodal_saes/configs/default.py \
      --workdir=workdirs/multimodal_saes
  python -m experiments.multimodal_saes.main --config=experiments/multimodal_saes/configs/default.py:tiny \
      --workdir=workdirs/multimodal_saes_tiny

Stages (each trains through the one trainer in its own sub-workdir, so a rerun resumes):
 1. an RGB ViT pretrained to classify the factors of rendered scenes (jaxlab.data.scenes);
 2. a 2-layer MLP projector from its patch tokens into frozen SmolLM2-135M-Instruct (continuous tokens),
    trained on captioning (LLaVA stage 1); caption NLL and greedy-caption attribute accuracy on held-out
    shape × colour combinations;
 3. at each of `sae_layers`: resid_pre activations of image+caption and caption-only sequences into an
    activation store (hooks), a ReLU SAE (expansion 8, the reference's loss, init and schedules); per layer
    L0, explained variance, loss recovered (zero ablation), dead fraction and jaxlab's shared-feature fraction;
 4. per layer: a dense logistic probe of the shape on mean-pooled image-position residuals and a
    Hard-Concrete sparse probe on mean-pooled SAE codes (trained on the training combinations, tested on the
    held-out ones); difference-of-means steering circle → square at `steer_layer`: efficacy and damage vs k.
Results: workdir/results.json, sharing_vs_depth.png, steering.png.
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

from experiments.multimodal_saes import analysis
from experiments.multimodal_saes import llava
from jaxlab.data import corpora
from jaxlab.data import scenes as scenes_lib
from jaxlab.interp import hooks as H
from jaxlab.interp import probes as probes_lib
from jaxlab.interp import sae as sae_lib
from jaxlab.interp import sae_train
from jaxlab.interp import steering
from jaxlab.io import gguf
from jaxlab.nn.lm import generate as gen
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.train import Task, runrecord, train, validate_config

app_flags.define()



def load_lm(num_layers: int):
  mcfg, params, f = gguf.load_smollm2(num_layers)
  return DecoderLM(mcfg), jax.tree.map(jnp.asarray, params), gguf.tokenizer_from_gguf(f), \
      gguf.special_token_ids(f)["eos"]


def _chunks(n: int, bs: int):
  """Index arrays of batches of exactly bs (the last one padded by repeating index 0) and their real sizes."""
  for s in range(0, n, bs):
    idx = np.arange(s, min(s + bs, n))
    yield np.concatenate([idx, np.zeros(bs - len(idx), int)]), len(idx)


def _stage_cfg(base: ml_collections.ConfigDict, **kw) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(base.to_dict())
  for k, v in kw.items():
    if isinstance(v, dict):
      c[k].update(v)
    else:
      c[k] = v
  return c


def check_config(config) -> None:
  validate_config(config.vit.train, "config.vit.train")
  validate_config(config.projector.train, "config.projector.train")
  validate_config(config.sae.train, "config.sae.train")
  n = int(config.num_layers) or 30
  bad = [l for l in list(config.sae_layers) + [int(config.steer_layer)] if not 0 <= int(l) < n]
  if bad:
    raise ValueError(f"config.sae_layers / steer_layer {bad} outside the model's layers 0..{n - 1}")
  if int(config.steer_layer) not in list(config.sae_layers):
    raise ValueError(f"config.steer_layer={config.steer_layer} must be one of config.sae_layers {list(config.sae_layers)}")


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  check_config(config)
  devices = devices or [jax.devices()[0]]
  t0, walls = time.time(), {}
  seed, size = int(config.seed), int(config.image_size)
  held = scenes_lib.held_out_combinations(int(config.num_held_out), seed)
  kw = dict(textures=tuple(config.textures), max_count=int(config.max_count))
  train_sc = scenes_lib.sample_scenes(int(config.num_train), seed, exclude=held, **kw)
  test_sc = scenes_lib.sample_scenes(int(config.num_test), seed + 1, include=held, **kw)
  train_img = scenes_lib.render_batch(train_sc, size, seed)
  test_img = scenes_lib.render_batch(test_sc, size, seed + 1)

  # --- 1. ViT pretraining on the scene factors --------------------------------------------------------
  t = time.time()
  vcls = llava.vit_classifier(config)
  if bool(config.vit.all_combinations):
    vit_sc = scenes_lib.sample_scenes(int(config.vit.num_scenes), seed + 4, **kw)
    vit_img = scenes_lib.render_batch(vit_sc, size, seed + 4)
  else:
    vit_sc, vit_img = train_sc, train_img
  vit_records = [{"images": vit_img[i], **scenes_lib.labels(s)} for i, s in enumerate(vit_sc)]
  vit_task = Task(init_params=lambda r: vcls.init(r, train_img[:1])["params"], loss_fn=llava.vit_loss(vcls),
                  train_data=iter(grain.MapDataset.source(vit_records).shuffle(seed=seed).repeat(None)
                                  .batch(int(config.vit.train.batch_size), drop_remainder=True)))
  vres = train(config.vit.train, os.path.join(workdir, "vit"), vit_task, devices=devices)
  vit_params = jax.device_get(vres.state.params)
  vit_apply = jax.jit(lambda p, x: vcls.apply({"params": p}, x))

  def factor_acc(images, scs):
    logits = vit_apply(vit_params, images)
    return {k: float(np.mean(np.argmax(np.asarray(v), -1) == [scenes_lib.labels(s)[k] for s in scs]))
            for k, v in logits.items()}

  vit_acc = factor_acc(test_img, test_sc)
  # the same number of fresh scenes of the training combinations: separates under-training from the
  # held-out-combination shift (position is undefined for count > 1: its label is noise there)
  iid_sc = scenes_lib.sample_scenes(int(config.num_test), seed + 3, exclude=held, **kw)
  vit_acc_iid = factor_acc(scenes_lib.render_batch(iid_sc, size, seed + 3), iid_sc)
  logging.info("ViT factor accuracy: held-out combinations %s; training combinations (fresh scenes) %s",
               vit_acc, vit_acc_iid)
  walls["vit_s"] = time.time() - t

  # --- 2. projector into frozen SmolLM2 (captioning) ----------------------------------------------------
  t = time.time()
  lm, lm_params, tok, eos = load_lm(int(config.num_layers))
  vcfg = llava.vit_config(config)
  d = lm.config.embed_dim
  layout = llava.make_layout(tok, vcfg.num_patches, int(config.caption_len), eos)
  proj = llava.Projector(d)
  enc_vit = vit_params["encoder"]

  def seqs(scs):
    ids, mask = llava.encode_captions(tok, layout, [scenes_lib.caption(s) for s in scs])
    return llava.image_sequences(layout, ids, mask), ids, mask

  train_seq, train_cap, train_cmask = seqs(train_sc)
  test_seq, test_cap, test_cmask = seqs(test_sc)

  def lm_logits(proj_params, frozen, images, tokens, hooks=None):
    img = llava.image_embeds(vcfg, frozen["vit"], proj, proj_params, images)
    emb, emask = llava.full_embeds(layout, img, tokens.shape[0], d)
    return H.run(lm, {"params": frozen["lm"]}, tokens, inputs_embeds=emb, embeds_mask=emask, hooks=hooks or {})

  def proj_loss(params, batch, rng, frozen):
    del rng
    logits, _ = lm_logits(params, frozen, batch["images"], batch["tokens"])
    s, n = llava.caption_nll(logits, batch["targets"], batch["loss_mask"])
    return s / jnp.maximum(n, 1.0), {}

  frozen = {"lm": lm_params, "vit": enc_vit}
  proj_records = [{"images": train_img[i], **{k: v[i] for k, v in train_seq.items()}} for i in range(len(train_sc))]
  ptask = Task(init_params=lambda r: proj.init(r, jnp.zeros((1, vcfg.num_patches, vcfg.embed_dim)))["params"],
               loss_fn=proj_loss, frozen_params=frozen, frozen_id=f"smollm2-135m-instruct-q4_1-L{lm.config.num_layers}",
               train_data=iter(grain.MapDataset.source(proj_records).shuffle(seed=seed).repeat(None)
                               .batch(int(config.projector.train.batch_size), drop_remainder=True)),
               tokens_per_example=layout.length)
  pres = train(config.projector.train, os.path.join(workdir, "projector"), ptask, devices=devices)
  proj_params = jax.device_get(pres.state.params)
  walls["projector_s"] = time.time() - t

  t = time.time()
  ebs = int(config.eval_batch)
  logits_fn = jax.jit(lambda pp, fr, im, tk, hk: lm_logits(pp, fr, im, tk, hk))
  nll_fn = jax.jit(lambda lg, tg, m: llava.caption_nll(lg, tg, m))

  def caption_nll(images, seq, hooks_for=None):
    """Mean caption NLL per token (hooks_for(idx, real) -> hooks, optional)."""
    tot, cnt = 0.0, 0.0
    for idx, real in _chunks(len(images), ebs):
      w = seq["loss_mask"][idx] * (np.arange(ebs) < real)[:, None]
      hk = hooks_for(idx, real) if hooks_for else {}
      lg, _ = logits_fn(proj_params, frozen, images[idx], seq["tokens"][idx], hk)
      s, n = nll_fn(lg, seq["targets"][idx], w)
      tot, cnt = tot + float(s), cnt + float(n)
    return tot / max(cnt, 1.0)

  test_nll = caption_nll(test_img, test_seq)
  train_nll = caption_nll(train_img[:len(test_img)], {k: v[:len(test_img)] for k, v in train_seq.items()})
  # greedy captions on the held-out combinations
  ng = min(int(config.num_generate), len(test_sc))
  head = test_seq["tokens"][:ng, :layout.caption_start]
  img = jax.jit(lambda pp, im: llava.image_embeds(vcfg, enc_vit, proj, pp, im))(proj_params, test_img[:ng])
  emb, emask = llava.full_embeds(layout, img, ng, d)
  out = gen.generate(lm, lm_params, jnp.asarray(head), max_new_tokens=int(config.caption_len), eos_id=eos,
                     pad_id=eos, inputs_embeds=emb[:, :layout.caption_start], embeds_mask=emask[:, :layout.caption_start])
  toks, gmask = np.asarray(out.tokens), np.asarray(out.mask)
  generated = [tok.decode([int(x) for x, m in zip(r, mr) if m and x != eos]) for r, mr in zip(toks, gmask)]
  attr_acc = llava.attribute_accuracy(generated, test_sc[:ng])
  captioning = {"test_caption_nll": test_nll, "train_caption_nll": train_nll, "attribute_accuracy": attr_acc,
                "examples": [{"truth": scenes_lib.caption(s), "greedy": g} for s, g in zip(test_sc[:6], generated[:6])]}
  logging.info("captioning: %s", json.dumps(captioning)[:1500])
  walls["caption_eval_s"] = time.time() - t

  # --- 3. activations and SAEs per layer ---------------------------------------------------------------
  t = time.time()
  layers = [int(l) for l in config.sae_layers]
  sites = [f"layers_{l}/resid_pre" for l in layers]
  cap_fn = jax.jit(lambda pp, fr, im, tk: lm_logits(pp, fr, im, tk, H.capture(*sites))[1])
  text_fn = jax.jit(lambda tk: H.run(lm, {"params": lm_params}, tk, hooks=H.capture(*sites))[1])

  # text-only sequences (caption-only and corpus) drop their first position: with no BOS in front it is the
  # attention sink, whose residual norm is ~10-100× every other token's (SAELens likewise excludes BOS)
  def activations(images, seq, cap_ids, cap_mask, corpus_ids, corpus_mask):
    """Per layer: image-position rows, caption-position rows (image seqs), caption-only rows (text), text
    corpus rows (corpus) and the image positions mean-pooled per scene (pooled)."""
    out = {l: {"image": [], "caption": [], "text": [], "corpus": [], "pooled": []} for l in layers}
    for idx, real in _chunks(len(images), ebs):
      a = cap_fn(proj_params, frozen, images[idx], seq["tokens"][idx])
      b = text_fn(jnp.asarray(cap_ids[idx]))
      cm = cap_mask[idx][:real] > 0
      tm = cm.copy()
      tm[:, 0] = False
      for l, s in zip(layers, sites):
        x, y = np.asarray(a[s])[:real], np.asarray(b[s])[:real]
        im = x[:, layout.image_start:layout.image_start + layout.num_image]
        out[l]["image"].append(im.reshape(-1, d))
        out[l]["pooled"].append(im.mean(1))
        out[l]["caption"].append(x[:, layout.caption_start:][cm])
        out[l]["text"].append(y[tm])
    for idx, real in _chunks(len(corpus_ids), ebs):
      b = text_fn(jnp.asarray(corpus_ids[idx]))
      km = corpus_mask[idx][:real] > 0
      km[:, 0] = False
      for l, s in zip(layers, sites):
        out[l]["corpus"].append(np.asarray(b[s])[:real][km])
    return {l: {k: np.concatenate(v) if v else np.zeros((0, d), np.float32) for k, v in o.items()}
            for l, o in out.items()}

  n_act = min(int(config.num_activation_scenes), len(train_sc))
  # the text corpus (Debian fortunes; the reference's text side is its captions, the issue adds a corpus):
  # entries shuffled once, the first num_sequences for training, the next num_test_sequences for evaluation
  entries = corpora.load_fortunes()
  entries = [entries[i] for i in np.random.default_rng(seed).permutation(len(entries))]
  n_cor, n_cor_test, cor_len = int(config.corpus.num_sequences), int(config.corpus.num_test_sequences), \
      int(config.corpus.seq_len)

  def corpus_ids(texts):
    ids = np.full((len(texts), cor_len), eos, np.int32)
    mask = np.zeros((len(texts), cor_len), np.float32)
    for i, t in enumerate(texts):
      e = tok.encode(t).ids[:cor_len]
      ids[i, :len(e)], mask[i, :len(e)] = e, 1.0
    return ids, mask

  cor_train, cor_test = corpus_ids(entries[:n_cor]), corpus_ids(entries[n_cor:n_cor + n_cor_test])
  acts_train = activations(train_img[:n_act], {k: v[:n_act] for k, v in train_seq.items()}, train_cap[:n_act],
                           train_cmask[:n_act], *cor_train)
  acts_test = activations(test_img, test_seq, test_cap, test_cmask, *cor_test)
  logging.info("activation rows per layer: train %s, test %s", {k: len(v) for k, v in acts_train[layers[0]].items()},
               {k: len(v) for k, v in acts_test[layers[0]].items()})
  walls["activations_s"] = time.time() - t

  t = time.time()
  scfg = sae_lib.SaeConfig(d_in=d, expansion=int(config.sae.expansion), l1_coeff=float(config.sae.l1_coeff),
                           l1_warmup_fraction=float(config.sae.l1_warmup_fraction))
  saes, per_layer = {}, {}
  shards = int(config.sae.store_shards)
  for l in layers:
    rows = np.concatenate([acts_train[l][k] for k in ("image", "caption", "text", "corpus")])
    rows = rows[np.random.default_rng(seed + l).permutation(len(rows))]
    store = sae_train.ActivationStore(os.path.join(workdir, "acts", f"layer_{l}"))
    store.fill(np.array_split(rows, shards), lambda r: r)
    res = train(config.sae.train, os.path.join(workdir, "sae", f"layer_{l}"), sae_train.sae_task(scfg, store, config.sae.train),
                devices=devices)
    saes[l] = (jax.device_get(res.state.params), store.scale)
  walls["sae_train_s"] = time.time() - t

  # --- per-layer SAE metrics, loss recovered, sharing -----------------------------------------------------
  t = time.time()
  enc = jax.jit(lambda p, x: sae_lib.encode(scfg, p, x))
  recon = jax.jit(lambda p, x, s: sae_lib.forward(scfg, p, x * s)[0] / s)

  def codes(l, x):
    p, s = saes[l]
    return np.concatenate([np.asarray(enc(p, jnp.asarray(x[i:i + 4096] * s))) for i in range(0, len(x), 4096)]) \
        if len(x) else np.zeros((0, scfg.num_features), np.float32)

  n_lr = min(int(config.num_loss_recovered), len(test_sc))
  lr_seq = {k: v[:n_lr] for k, v in test_seq.items()}
  ce_clean = caption_nll(test_img[:n_lr], lr_seq)
  # the SAE replaces / zeroes the site at the positions it was trained on (image and caption tokens), not at
  # the fixed "Image:" / "\nCaption:" template tokens (the first of which is the attention sink)
  site_mask = jnp.asarray(layout.image_mask(ebs) | (np.arange(layout.length) >= layout.caption_start)[None])
  for l, s in zip(layers, sites):
    p, scale = saes[l]
    ev_rows = np.concatenate([acts_test[l][k] for k in ("image", "caption", "text", "corpus")]) * scale
    m = sae_train.evaluate_rows(scfg, p, ev_rows)

    def spliced(idx, real, s=s, p=p, scale=scale):
      x = cap_fn(proj_params, frozen, test_img[idx], test_seq["tokens"][idx])[s]
      return H.replace(s, recon(p, x, scale), where=site_mask)

    ce_sae = caption_nll(test_img[:n_lr], lr_seq, spliced)
    ce_zero = caption_nll(test_img[:n_lr], lr_seq, lambda idx, real, s=s: H.replace(s, jnp.zeros((), jnp.float32), where=site_mask))
    m.update(ce_clean=ce_clean, ce_sae=ce_sae, ce_zero=ce_zero,
             loss_recovered=sae_lib.loss_recovered(ce_clean, ce_sae, ce_zero))
    img_codes = codes(l, acts_test[l]["image"])
    m.update({f"sharing_{k}": v for k, v in analysis.shared_fraction(img_codes, codes(l, acts_test[l]["text"])).items()})
    m.update({f"sharing_corpus_{k}": v
              for k, v in analysis.shared_fraction(img_codes, codes(l, acts_test[l]["corpus"])).items()})
    per_layer[l] = m
    logging.info("layer %d: %s", l, m)
  walls["sae_eval_s"] = time.time() - t

  # --- 4. probes per layer and steering -----------------------------------------------------------------
  t = time.time()
  pcfg = probes_lib.ProbeConfig(steps=int(config.probe.steps), learning_rate=float(config.probe.learning_rate))
  scfg_probe = probes_lib.ProbeConfig(steps=int(config.probe.sparse_steps), learning_rate=float(config.probe.learning_rate),
                                      l0=float(config.probe.l0))
  target = str(config.probe.factor)
  ytr = np.asarray([scenes_lib.labels(s)[target] for s in train_sc[:n_act]])
  yte = np.asarray([scenes_lib.labels(s)[target] for s in test_sc])
  ncls = len(scenes_lib.FACTORS[target])
  probes = {}
  for l in layers:
    dense = analysis.probe_layer(acts_train[l]["pooled"], ytr, acts_test[l]["pooled"], yte, ncls, pcfg)
    pooled_codes = lambda x, l=l: codes(l, x.reshape(-1, d)).reshape(len(x) // layout.num_image, layout.num_image, -1).mean(1)
    ftr = pooled_codes(acts_train[l]["image"])
    fte = pooled_codes(acts_test[l]["image"])
    sparse = analysis.sparse_probe_layer(ftr, ytr, fte, yte, ncls, scfg_probe)
    probes[l] = {"dense": dense, "sparse": sparse}
    logging.info("probes layer %d: %s", l, probes[l])
  runrecord.write_json(os.path.join(workdir, "results_partial.json"),
                       {"vit_held_out_accuracy": vit_acc, "vit_training_combination_accuracy": vit_acc_iid,
                        "captioning": captioning, "layers": {str(l): per_layer[l] for l in layers},
                        "probes": {str(l): probes[l] for l in layers}, "probe_factor": target})
  walls["probes_s"] = time.time() - t

  t = time.time()
  L = int(config.steer_layer)
  src, dst = str(config.steer.source), str(config.steer.target)
  pooled = acts_train[L]["pooled"]
  shapes = np.asarray([s.shape for s in train_sc[:n_act]])
  v_raw = steering.diff_means(pooled[shapes == src], pooled[shapes == dst], normalise=False)
  v = steering.diff_means(pooled[shapes == src], pooled[shapes == dst])
  scale_k = float(np.linalg.norm(v_raw))
  # single objects only: the plural ("circles") is another token, and the readout is the singular's slot
  steer_sc = [s for s in test_sc if s.shape == src and s.count == 1] or \
      [dataclasses.replace(s, shape=src, count=1) for s in test_sc]
  steer_sc = steer_sc[:int(config.steer.num_images)]
  steer_img = scenes_lib.render_batch(steer_sc, size, seed + 2)
  seq_s, ids_s, mask_s = seqs(steer_sc)
  src_id, dst_id = tok.encode(" " + src).ids, tok.encode(" " + dst).ids
  if len(src_id) != 1 or len(dst_id) != 1:
    raise ValueError(f"config.steer.source/target must be single SmolLM2 tokens, got {src_id}, {dst_id}")
  shape_pos = np.asarray([list(r).index(src_id[0]) for r in ids_s]) + layout.caption_start   # the shape token
  dmg_mask = dict(seq_s)
  dmg_mask["loss_mask"] = seq_s["loss_mask"].copy()
  dmg_mask["loss_mask"][np.arange(len(steer_sc)), shape_pos - 1] = 0.0      # damage: every token but the shape
  site = f"layers_{L}/resid_pre"
  ks, eff, dmg, ratio = [float(c) for c in config.steer.k_multiples], [], [], []
  base_nll = None
  for c in ks:
    hooks_for = lambda idx, real, c=c: steering.steer_hooks(site, v, c * scale_k, jnp.asarray(layout.image_mask(ebs)))
    p_dst, p_ratio = [], []
    for idx, real in _chunks(len(steer_sc), ebs):
      lg, _ = logits_fn(proj_params, frozen, steer_img[idx], seq_s["tokens"][idx], hooks_for(idx, real))
      pr = jax.nn.softmax(np.asarray(lg)[np.arange(ebs), shape_pos[idx] - 1], -1)
      pr = np.asarray(pr)[:real]
      p_dst.extend(pr[:, dst_id[0]])
      p_ratio.extend(pr[:, dst_id[0]] / (pr[:, dst_id[0]] + pr[:, src_id[0]]))
    nll = caption_nll(steer_img, dmg_mask, hooks_for)
    base_nll = nll if base_nll is None else base_nll
    eff.append(float(np.mean(p_dst)))
    ratio.append(float(np.mean(p_ratio)))
    dmg.append(nll - base_nll)
  steer = {"layer": L, "source": src, "target": dst, "k_unit": scale_k, "k_multiples": ks, "efficacy": eff,
           "target_vs_source": ratio, "damage_nll": dmg, "num_images": len(steer_sc)}
  walls["steering_s"] = time.time() - t
  logging.info("steering: %s", steer)

  analysis.plot_sharing(os.path.join(workdir, "sharing_vs_depth.png"), layers,
                        [per_layer[l]["sharing_shared"] for l in layers], [per_layer[l]["sharing_image_only"] for l in layers],
                        [per_layer[l]["sharing_text_only"] for l in layers],
                        "ReLU SAE features: image vs caption-only text (jaxlab's metric)",
                        shared_corpus=[per_layer[l]["sharing_corpus_shared"] for l in layers])
  analysis.plot_steering(os.path.join(workdir, "steering.png"), ks, eff, dmg,
                         f"steering {src} → {dst} at layer {L} (image positions)")
  walls["total_s"] = time.time() - t0
  out = {"held_out_combinations": held, "vit_held_out_accuracy": vit_acc,
         "vit_training_combination_accuracy": vit_acc_iid, "captioning": captioning,
         "layers": {str(l): per_layer[l] for l in layers}, "probes": {str(l): probes[l] for l in layers},
         "probe_factor": target, "steering": steer, "wall_seconds": {k: round(v, 1) for k, v in walls.items()},
         "sizes": {"train_scenes": len(train_sc), "test_scenes": len(test_sc), "activation_scenes": n_act,
                   "corpus_sequences": n_cor, "corpus_test_sequences": n_cor_test, "corpus_seq_len": cor_len,
                   "activation_rows_train": {k: len(v) for k, v in acts_train[layers[0]].items()},
                   "image_tokens": layout.num_image, "sequence_length": layout.length,
                   "lm_layers": lm.config.num_layers, "sae_features": scfg.num_features}}
  runrecord.write_json(os.path.join(workdir, "results.json"), out)
  logging.info("results: %s", json.dumps(runrecord.to_plain(out))[:3000])
  return out


main = app_flags.main_for(run)


if __name__ == "__main__":
  app_flags.run(main)
