r"""Training LMs to explain their own computations (B. Li et al., arXiv 2511.08579): the activation-patching task.

  python -m experiments.self_explain.main --config=experiments/self_explain/configs/default.py \
      --workdir=workdirs/self_explain
  python -m experiments.self_explain.main --config=experiments/self_explain/configs/default.py:tiny \
      --workdir=workdirs/self_explain_tiny

1. Labels (workdir/labels, cached by its own run record): subject-swap pairs (data.py) on SmolLM2-135M; for
   each layer chunk the counterfactual subject state, averaged over the chunk, replaces the output of every
   layer of the chunk at the subject position (jaxlab.interp.explain.chunk_patch); the label is the paper's
   sentence about the argmax next token. Balanced changed/unchanged, split into train / held-out rows.
2. Explainers (workdir/<arm>_s<seed>, each its own run record), LoRA on every projection through the one
   trainer, the vector at the continuous token {begin}{rep}{end}:
     self  SmolLM2 explaining itself (raw vector: widths match, no projector, as the paper's code);
     zero  the same with the vector zeroed (text only);
     rot   the vector times a fixed random orthogonal matrix (same information, foreign basis);
     gemma Gemma 3 270M explaining SmolLM2 through a learned per-chunk linear projector 576 -> 640.
3. Held-out metrics from greedy generation: exact match after normalisation, changed/unchanged macro-F1,
   exact match per class. Results: workdir/results.json.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import json
import os
import time

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from experiments.self_explain import data
from jaxlab.data import assets
from jaxlab.interp import explain as E
from jaxlab.io import gguf
from jaxlab.nn import lora
from jaxlab.nn.lm import generate as G
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.train import Task, runrecord, train, validate_config

app_flags.define()

ARMS = ('self', 'zero', 'rot', 'gemma')


def load_smollm2(num_layers: int = 0):
  cfg, params, f = gguf.load_smollm2(num_layers)
  return DecoderLM(cfg), jax.tree.map(jnp.asarray, params), gguf.tokenizer_from_gguf(f), gguf.special_token_ids(f)


def chunks_for(num_layers: int, chunks) -> list[tuple[int, int]]:
  out = [(int(lo), min(int(hi), num_layers)) for lo, hi in chunks if int(lo) < num_layers]
  if not out:
    raise ValueError(f'config.labels.chunks {chunks}: no chunk inside the model\'s {num_layers} layers')
  return out


# ------------------------------------------------------------------------------------------- labels

def make_labels(config, workdir: str) -> dict:
  """Patching labels on SmolLM2; writes rows.json and vectors.npy into workdir; returns the summary."""
  t0 = time.time()
  model, params, tok, _ = load_smollm2(int(config.num_layers))
  enc = lambda s: tok.encode(s).ids  # noqa: E731
  dec = lambda i: tok.decode([int(i)])  # noqa: E731
  countries = data.COUNTRIES[:int(config.labels.num_countries)] if config.labels.num_countries else data.COUNTRIES
  pairs = data.subject_pairs(int(config.labels.num_partners), int(config.seed), countries)
  chunks = chunks_for(model.config.num_layers, config.labels.chunks)
  rows, vecs = [], []
  bs = int(config.labels.batch_size)
  by_t: dict[int, list] = {}
  for ti, x, y in pairs:
    by_t.setdefault(ti, []).append((x, y))
  for ti, xy in by_t.items():
    template = data.TEMPLATES[ti]
    for s in range(0, len(xy), bs):
      part = xy[s:s + bs]
      padded = part + [part[-1]] * (bs - len(part))   # one compiled shape per template
      o = [data.split_prompt(template, x, enc) for x, _ in padded]
      c = [data.split_prompt(template, y, enc) for _, y in padded]
      v, top_o, top_p, top_c = E.chunk_patch(model, params, np.array([a for a, _ in o]),
                                             np.array([a for a, _ in c]), np.array([p for _, p in o]),
                                             np.array([p for _, p in c]), [range(lo, hi) for lo, hi in chunks])
      for k, (lo, hi) in enumerate(chunks):
        for j, (x, y) in enumerate(part):
          orig, new = dec(top_o[j]), dec(top_p[k, j])
          rows.append({'template': ti, 'subject': x, 'counterfactual': y, 'layers': [lo, hi - 1],
                       'text': template.format(x), 'orig': orig, 'patched': new, 'cf_top': dec(top_c[j]),
                       'changed': bool(top_o[j] != top_p[k, j]), 'label': E.label_text(orig, new),
                       'vec_index': len(vecs)})
          vecs.append(v[k, j])
  patch_s = time.time() - t0
  vecs = np.stack(vecs).astype(np.float32)
  per_chunk = {f'{lo}-{hi - 1}': float(np.mean([r['changed'] for r in rows if r['layers'][0] == lo]))
               for lo, hi in chunks}
  bal = data.balance(rows, int(config.seed)) if config.labels.balance else list(rows)
  if not bal:
    raise ValueError(f'config.labels: {len(rows)} patching rows but no changed/unchanged pair to balance '
                     f'(changed fraction by chunk {per_chunk}); set labels.balance=False or use more layers')
  n_test = int(round(len(bal) * float(config.labels.test_fraction)))
  if config.labels.max_rows:
    bal = bal[:int(config.labels.max_rows)]
    n_test = int(round(len(bal) * float(config.labels.test_fraction)))
  for i, r in enumerate(bal):
    r['split'] = 'test' if i < n_test else 'train'
  os.makedirs(workdir, exist_ok=True)
  np.save(os.path.join(workdir, 'vectors.npy'), vecs)
  runrecord.write_json(os.path.join(workdir, 'rows.json'), bal, indent=None)
  norms = np.linalg.norm(vecs, axis=-1)
  emb_norm = float(np.linalg.norm(np.asarray(params['embed']['embedding']), axis=-1).mean())
  return {'candidates': len(rows), 'changed_fraction_by_chunk': per_chunk, 'balanced_rows': len(bal),
          'test_rows': n_test, 'train_rows': len(bal) - n_test,
          'vector_norm_by_chunk': {f'{lo}-{hi - 1}': float(norms[[r['vec_index'] for r in rows
                                                                  if r['layers'][0] == lo]].mean())
                                   for lo, hi in chunks},
          'token_embedding_norm': emb_norm, 'patch_seconds': round(patch_s, 1)}


# ---------------------------------------------------------------------------------------- explainers

def load_explainer(arm: str, num_layers: int):
  """(model, params, tokenizer, ContinuousIds, pad id, eos id, bos prefix) of the explainer of `arm`."""
  if arm == 'gemma':
    cfg, params, f = gguf.load_gemma3_gguf(assets.path('gemma3-270m', assets.GEMMA3_GGUF),
                                           **({'num_layers': num_layers} if num_layers else {}))
    if num_layers:
      params = {k: v for k, v in params.items() if not k.startswith('layers_') or int(k.split('_')[1]) < num_layers}
    sp = gguf.special_token_ids(f)
    # <unused0..2> as begin / rep / end; Gemma prompts start with <bos>.
    return (DecoderLM(cfg), jax.tree.map(jnp.asarray, params), gguf.tokenizer_from_gguf(f),
            E.ContinuousIds(6, 7, 8), sp['padding'], sp['eos'], [sp['bos']])
  model, params, tok, sp = load_smollm2(num_layers)
  # <repo_name> <reponame> <file_sep>: reserved ids SmolLM2 never emits in text (wave2 digest).
  return model, params, tok, E.ContinuousIds(3, 4, 5), sp['eos'], sp['eos'], []


def encode_rows(rows, vecs, tok, ids, length, pad, eos, bos, transform, chunk_index):
  out, skipped = [], 0
  enc = lambda s: tok.encode(s, add_special_tokens=False).ids  # noqa: E731
  for r in rows:
    lo, hi = r['layers']
    tok_str = ' ' + r['subject']
    text = data.EXPLAIN_PROMPT.format(feat='\x00', layers=f'{lo}-{hi}', tok=tok_str, text=r['text'])
    pre, suf = text.split('\x00')
    ex = E.encode_example(bos + enc(pre), enc(suf), enc(r['label']) + [eos], transform(vecs[r['vec_index']]), ids,
                          length, pad)
    if ex is None:
      skipped += 1
      continue
    ex['chunk'] = np.int32(chunk_index[lo])
    out.append(ex)
  if skipped:
    logging.warning('%d rows longer than %d tokens skipped', skipped, length)
  return out


def projector(d_in: int, d_out: int, n_chunks: int, rng):
  """Per-chunk Linear(d_in, d_out, bias=False), torch's default init U(±1/sqrt(d_in))."""
  lim = 1. / np.sqrt(d_in)
  return jax.random.uniform(rng, (n_chunks, d_in, d_out), jnp.float32, -lim, lim)


def run_arm(config, workdir: str, arm: str, seed: int, rows, vecs, devices) -> dict:
  t0 = time.time()
  model, params, tok, ids, pad, eos, bos = load_explainer(arm, int(config.num_layers))
  d_target = vecs.shape[1]
  if arm == 'rot':
    q = E.random_orthogonal(d_target, int(config.explainer.rotation_seed))
    transform = lambda v: v @ q  # noqa: E731
  elif arm == 'zero':
    transform = np.zeros_like
  else:
    transform = lambda v: v  # noqa: E731
  chunk_los = sorted({r['layers'][0] for r in rows})
  chunk_index = {lo: i for i, lo in enumerate(chunk_los)}
  length = int(config.explainer.length)
  train_rows = encode_rows([r for r in rows if r['split'] == 'train'], vecs, tok, ids, length, pad, eos, bos, transform,
                           chunk_index)
  test_src = [r for r in rows if r['split'] == 'test']
  if config.explainer.max_eval_rows:
    test_src = test_src[:int(config.explainer.max_eval_rows)]
  test_rows = encode_rows(test_src, vecs, tok, ids, length, pad, eos, bos, transform, chunk_index)
  if len(test_rows) != len(test_src):
    raise ValueError(f'config.explainer.length={length} is too short for some held-out rows')
  lcfg = lora.LoraConfig(rank=int(config.lora.rank), alpha=float(config.lora.alpha),
                         dropout=float(config.lora.dropout))
  d_model = model.config.embed_dim
  project = None
  if arm == 'gemma':
    project = lambda p, batch: jnp.einsum('bi,bio->bo', batch['vector'], p[batch['chunk']])  # noqa: E731
  loss_fn = E.explainer_loss(model, lcfg, project)

  def init(rng):
    r1, r2 = jax.random.split(rng)
    out = {'lora': lora.init_adapters(r1, params, lcfg)}
    if arm == 'gemma':
      out['proj'] = projector(d_target, d_model, len(chunk_los), r2)
    return out

  tcfg = ml_collections.ConfigDict(config.train.to_dict())
  tcfg.seed = seed
  train_data = iter(grain.MapDataset.source(train_rows).shuffle(seed=seed).repeat(None)
                    .batch(int(tcfg.batch_size), drop_remainder=True))
  task = Task(init_params=init, loss_fn=loss_fn, train_data=train_data, tokens_per_example=length,
              frozen_params=params, frozen_id=f'{arm}-explainer-base')
  t1 = time.time()
  res = train(tcfg, os.path.join(workdir, 'train'), task, devices=devices)
  train_s = time.time() - t1
  trained = jax.device_get(res.state.params)
  merged = lora.merge(params, trained['lora'], lcfg)
  preds = generate_answers(model, merged, test_rows, trained.get('proj'), eos, pad, tok,
                           int(config.explainer.max_new_tokens), int(config.explainer.eval_batch))
  refs = [r['label'] for r in test_src]
  metrics = E.score(preds, refs)
  samples = [{'text': r['text'], 'layers': r['layers'], 'cf': r['counterfactual'], 'ref': r['label'], 'pred': p}
             for r, p in list(zip(test_src, preds))[:12]]
  return {'arm': arm, 'seed': seed, 'metrics': metrics, 'train_rows': len(train_rows),
          'steps': int(res.state.step),
          'final_train_metrics': {k: float(v) for k, v in (res.train_metrics or {}).items()},
          'train_seconds_incl_compile': round(train_s, 1), 'wall_seconds': round(time.time() - t0, 1),
          'samples': samples}


def generate_answers(model, params, rows, proj, eos, pad, tok, max_new, bs) -> list[str]:
  """Greedy answers of the explainer for encoded rows (prompt = tokens before the answer), left-padded."""
  out = []
  for s in range(0, len(rows), bs):
    part = rows[s:s + bs]
    n = len(part)
    part = part + [part[-1]] * (bs - n)             # one compiled shape
    prompts = [r['tokens'][:int(r['prompt_len'])].tolist() for r in part]
    toks, mask = G.left_pad(prompts, pad)
    width = toks.shape[1]
    rep = np.array([width - int(r['prompt_len']) + int(r['rep_pos']) for r in part], np.int32)
    vec = jnp.asarray(np.stack([r['vector'] for r in part]))
    if proj is not None:
      vec = jnp.einsum('bi,bio->bo', vec, jnp.asarray(proj)[np.array([int(r['chunk']) for r in part])])
    emb, emask = E.place_vectors(vec, jnp.asarray(rep), width)
    g = G.generate(model, params, toks, mask, max_new_tokens=max_new, eos_id=eos, pad_id=pad,
                   inputs_embeds=emb, embeds_mask=emask)
    gt, gm = np.asarray(g.tokens), np.asarray(g.mask)
    for i in range(n):
      ids = [int(t) for t, m in zip(gt[i], gm[i]) if m and int(t) != eos]
      out.append(tok.decode(ids, skip_special_tokens=True))
  return out


# ------------------------------------------------------------------------------------------------ run

@runrecord.recorded(continuable=('arms', 'seeds', 'train', 'explainer', 'lora'))  # arm settings: own records
def run(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  validate_config(config.train, 'config.train')
  bad = [a for a in config.arms if a not in ARMS]
  if bad:
    raise ValueError(f'config.arms: unknown {bad}; expected a subset of {ARMS}')
  t0 = time.time()
  devices = devices or [jax.devices()[0]]
  lab_dir = os.path.join(workdir, 'labels')
  lab_cfg = ml_collections.ConfigDict({'labels': config.labels.to_dict(), 'num_layers': config.num_layers,
                                       'seed': config.seed})
  summary = runrecord.reuse_or_run(lab_dir, lab_cfg, lambda: make_labels(config, lab_dir))
  logging.info('labels: %s', json.dumps(summary))
  with open(os.path.join(lab_dir, 'rows.json')) as fh:
    rows = json.load(fh)
  vecs = np.load(os.path.join(lab_dir, 'vectors.npy'))
  results = []
  for seed in config.seeds:
    for arm in config.arms:
      arm_cfg = ml_collections.ConfigDict({'explainer': config.explainer.to_dict(), 'lora': config.lora.to_dict(),
                                           'train': config.train.to_dict(), 'labels': lab_cfg.to_dict(),
                                           'arm': arm, 'seed': int(seed)})
      d = os.path.join(workdir, f'{arm}_s{seed}')
      r = runrecord.reuse_or_run(d, arm_cfg, lambda arm=arm, seed=seed, d=d: run_arm(
          config, d, arm, int(seed), rows, vecs, devices))
      logging.info('%s seed %s: %s', arm, seed, json.dumps(r['metrics']))
      results.append(r)
  table = {}
  for arm in config.arms:
    ms = [r['metrics'] for r in results if r['arm'] == arm]
    table[arm] = {k: {'mean': float(np.mean([m[k] for m in ms])), 'std': float(np.std([m[k] for m in ms])),
                      'n_seeds': len(ms)}
                  for k in ('exact_match', 'macro_f1', 'exact_match_changed', 'exact_match_unchanged')}
  out = {'labels': summary, 'table': table, 'runs': results, 'wall_seconds': round(time.time() - t0, 1)}
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)
  return out


main = app_flags.main_for(run)


if __name__ == '__main__':
  app_flags.run(main)
