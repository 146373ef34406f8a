r"""Modelling students from their program edit traces (Ross, Srivastava, Blanchard, Andreas; arXiv 2510.05056),
on simulated students (the real Pencil Code traces are gated; no real-student data is used).

  python -m experiments.student_traces.main --config=experiments/student_traces/configs/default.py --workdir=workdirs/traces
  python -m experiments.student_traces.main --config=experiments/student_traces/configs/default.py:tiny --workdir=workdirs/traces_tiny

1. A class of simulated students (jaxlab.data.student_sim) writes turtle programs (jaxlab.data.turtle); its trace
   statistics are reported beside the paper's calibration targets. Each student's last assignment is held out.
2. A SentencePiece BPE is trained on the training traces; three StudentLMs (jaxlab.nn.lm.student_lm: GPT-2-style
   DecoderLM with the hashed student embedding at position 0) are trained through the one trainer on the
   `trace`, `last` and `synthetic` variants, trace and synthetic downsampled to last's token count. Each
   model's samples are exported in the paper code's JSON layout (workdir/<variant>/samples.json).
3. Generation for every held-out (student, assignment) pair, scored against the simulator's own traces of those
   pairs: self-BLEU / self-Jaccard of final programs (per assignment, averaged), execution and solve rates,
   backtracking, trace length, comments, functions, edit types, and style distance to the student's own final
   program.
4. Probes from the 64-d student layer to the latent traits and per-student trace statistics (RidgeCV R² and
   logistic accuracy by cross-validation, with mean/majority and shuffled-X controls).
5. Edit recovery: failing states of held-out traces are continued by sampling; success rate and style distance to
   the student's own final program, trace model vs last model (and synthetic).
workdir/results.json holds everything; each model trains in workdir/<variant> (checkpointed: reruns resume).
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
from absl import flags, logging

from experiments.student_traces import analysis
from jaxlab.data import student_sim as S
from jaxlab.data import trace_corpus as C
from jaxlab.data import turtle as T
from jaxlab.nn.lm import generate as gen
from jaxlab.nn.lm import student_lm as slm
from jaxlab.nn.lm import transformer
from jaxlab.train import Task, runrecord, train, validate_config

app_flags.define()


def build_model(config, vocab_size: int) -> slm.StudentLM:
  m = config.model
  cfg = transformer.gpt2_config(vocab_size=vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim,
                                num_heads=m.num_heads, mlp_dim=m.mlp_dim, max_len=int(config.max_len))
  return slm.StudentLM(cfg, int(m.num_buckets))


def split_class(config):
  """(students, train traces, held-out traces): each student's last drawn assignment is held out."""
  students, traces = S.simulate_class(int(config.num_students), per_student=int(config.per_student),
                                      seed=int(config.class_seed))
  by_user: dict[str, list[S.Trace]] = {}
  for t in traces:
    by_user.setdefault(t.username, []).append(t)
  train_tr = [t for s in students for t in by_user[s.username][:-1]]
  test_tr = [by_user[s.username][-1] for s in students]
  return students, train_tr, test_tr


def _batches(tokens: np.ndarray, weights: np.ndarray, ids: np.ndarray, batch: int, seed: int):
  """A checkpointable grain iterator of batches: epoch e is a seeded permutation of the rows."""
  n = len(tokens)
  per_epoch = max(n // batch, 1)

  def make(i):
    e, j = divmod(int(i), per_epoch)
    order = np.random.default_rng([seed, e]).permutation(n)
    rows = order[j * batch:(j + 1) * batch]
    if len(rows) < batch:
      rows = np.resize(order, batch)
    return {'tokens': tokens[rows], 'weights': weights[rows], 'ids': ids[rows]}

  return iter(grain.MapDataset.range(10**9).map(make))


def train_variant(config, name, model, tok, seqs, ids, workdir):
  tokens, weights = C.pad_batch(seqs, int(config.max_len), tok.pad_id)
  ids = np.asarray(ids, np.int32)

  def loss_fn(params, batch, rng):
    del rng
    logits = model.apply({'params': params}, batch['tokens'], batch['ids'])
    nll, n = slm.lm_loss(logits, batch['tokens'], batch['weights'])
    return nll / jnp.maximum(n, 1.0), {'tokens': n}

  def init(rng):
    return model.init(rng, jnp.zeros((1, int(config.max_len)), jnp.int32), jnp.zeros((1,), jnp.int32))['params']

  t0 = time.time()
  res = train(config.train, os.path.join(workdir, name),
              Task(init_params=init, loss_fn=loss_fn,
                   train_data=_batches(tokens, weights, ids, int(config.train.batch_size), int(config.seed)),
                   tokens_per_example=int(config.max_len)),
              devices=[jax.devices()[0]])
  return jax.device_get(res.state.params), {'train_loss_last_window': res.train_metrics.get('train/loss',
                                                                                              res.train_metrics.get('loss')),
                                            'seconds_this_call': time.time() - t0,
                                            'sequences': len(seqs), 'tokens': int(sum(len(s) for s in seqs))}


def sample(model, params, tok, prompts: list[list[int]], ids: list[int], rng, config) -> list[tuple[str, bool]]:
  """Samples a continuation of each prompt (which starts with the student placeholder); (text, ended) pairs.

  Prompts are grouped by length so that every group gets max_len - its longest prompt new tokens."""
  order = np.argsort([len(p) for p in prompts])
  out: list[tuple[str, bool] | None] = [None] * len(prompts)
  vec_fn = jax.jit(lambda p, i: model.apply({'params': p}, i, method=lambda m, i: m.student(i)[0]))
  bs = int(config.sample_batch)
  for g in range(0, len(order), bs):
    rows = order[g:g + bs]
    group = [prompts[i] for i in rows]
    longest = max(len(p) for p in group)
    max_new = int(config.max_len) - longest
    if max_new <= 0:
      for i in rows:
        out[i] = ('', False)
      continue
    pad = len(rows) if len(rows) == bs else bs  # keep one compiled shape per group size
    group = group + [group[-1]] * (pad - len(group))
    gids = [ids[i] for i in rows] + [ids[rows[-1]]] * (pad - len(rows))
    toks, mask = gen.left_pad(group, tok.pad_id)
    vec = vec_fn(params, jnp.asarray(gids, jnp.int32))
    first = jnp.argmax(mask, axis=1)
    emb = jnp.zeros(toks.shape + (vec.shape[-1],), vec.dtype).at[jnp.arange(pad), first].set(vec)
    emask = jnp.zeros(toks.shape, jnp.bool_).at[jnp.arange(pad), first].set(True)
    res = gen.generate(transformer.DecoderLM(model.config), params['lm'], toks, mask, max_new_tokens=max_new, rng=jax.random.fold_in(rng, g),
                       temperature=float(config.temperature), eos_id=tok.eos_id, pad_id=tok.pad_id,
                       inputs_embeds=emb, embeds_mask=emask)
    gt, gm = np.asarray(res.tokens), np.asarray(res.mask)
    for k, i in enumerate(rows):
      seq = gt[k][gm[k]].tolist()
      ended = bool(seq and seq[-1] == tok.eos_id)
      out[i] = (tok.decode([t for t in seq if t != tok.eos_id]), ended)
  return out


def generation_prompts(tok, traces):
  return [[tok.pad_id] + tok.encode(f'{t.title}\n') for t in traces]


def generated_traces(texts, traces) -> list[S.Trace]:
  """Generated texts (after 'title\\n') → Traces of the same students and titles (empty programs when none)."""
  out = []
  for (txt, ended), ref in zip(texts, traces):
    p = C.parse_trace(txt, ended)
    progs = p.programs or ['']
    dates = p.dates or ['']
    fin = T.run_program(progs[-1])
    out.append(S.Trace(ref.username, ref.title, progs, dates,
                       bool(fin.ok and T.solved(fin.image, T.ASSIGNMENT_BY_NAME[ref.title].target))
                       if ref.title in T.ASSIGNMENT_BY_NAME else False))
  return out


@runrecord.recorded(continuable=('train.total_steps',))
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t_start = time.time()
  validate_config(config.train, 'config.train')
  students, train_tr, test_tr = split_class(config)
  all_tr = train_tr + test_tr
  out = {'seed': int(config.seed), 'class_seed': int(config.class_seed), 'num_students': len(students),
         'train_traces': len(train_tr), 'heldout_traces': len(test_tr),
         'simulator': analysis.calibration(all_tr)}
  logging.info('simulator %s', out['simulator'])
  texts = [C.text(t) for v in C.VARIANTS for t in C.variant(train_tr, v)]
  tok = C.train_tokenizer(texts, os.path.join(workdir, 'bpe'), int(config.vocab_size))
  model = build_model(config, tok.vocab_size)
  bucket = {s.username: slm.hash_student(s.username, int(config.model.num_buckets)) for s in students}
  out['hash_collisions'] = len(students) - len(set(bucket.values()))
  encoded = {v: [C.encode(t, tok, int(config.max_len)) for t in C.variant(train_tr, v)] for v in C.VARIANTS}
  budget = sum(len(s) for s in encoded['last'])
  params, out['training'], seen = {}, {}, {}
  for v in config.variants:
    keep = C.downsample(encoded[v], budget, int(config.seed)) if v != 'last' else list(range(len(train_tr)))
    seqs = [encoded[v][i] for i in keep]
    ids = [bucket[train_tr[i].username] for i in keep]
    params[v], out['training'][v] = train_variant(config, v, model, tok, seqs, ids, workdir)
    out['training'][v]['traces'] = len(keep)
    seen[v] = {train_tr[i].username for i in keep}
    out['training'][v]['students'] = len(seen[v])
  rng = jax.random.PRNGKey(int(config.seed) + 1000)
  test_ids = [bucket[t.username] for t in test_tr]
  out['generation'] = {'simulator': analysis.generation_metrics(test_tr, test_tr)}
  samples = {}
  for v in config.variants:
    texts_v = sample(model, params[v], tok, generation_prompts(tok, test_tr), test_ids, jax.random.fold_in(rng, 1), config)
    samples[v] = generated_traces(texts_v, test_tr)
    C.export_json(samples[v], os.path.join(workdir, v, 'samples.json'))
    out['generation'][v] = analysis.generation_metrics(samples[v], test_tr)
  C.export_json(test_tr, os.path.join(workdir, 'heldout_simulated.json'))
  train_users = sorted(set.intersection(*seen.values()))  # students every model was trained on
  feats = {}
  for v in config.variants:
    f = model.apply({'params': params[v]}, jnp.asarray([bucket[u] for u in train_users], jnp.int32),
                    method=lambda m, i: m.student_features(i))
    feats[v] = np.asarray(f)
  out['probes'] = analysis.probes(feats, students, train_tr, train_users, int(config.seed), int(config.probe_folds))
  out['recovery'] = {}
  cases = analysis.failing_prefixes(test_tr, int(config.num_recovery), int(config.seed))
  out['recovery']['cases'] = len(cases)
  for v in config.variants:
    prompts = [analysis.recovery_prompt(tok, t, i, v, int(config.max_len) - 64) for t, i in cases]
    texts_v = sample(model, params[v], tok, prompts, [bucket[t.username] for t, _ in cases],
                     jax.random.fold_in(rng, 2), config)
    out['recovery'][v] = analysis.recovery_scores(texts_v, cases, v)
  out['wall_seconds'] = time.time() - t_start
  out['device'] = jax.devices()[0].device_kind
  out['model_parameters'] = int(sum(np.prod(x.shape) for x in jax.tree.leaves(params[config.variants[0]])))
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)
  print(json.dumps({k: out[k] for k in ('simulator', 'generation', 'recovery')}, indent=1, default=str), flush=True)
  return out


main = app_flags.main_for(run)


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  config = flags.FLAGS.config
  for key in ('num_students', 'per_student', 'max_len', 'vocab_size', 'sample_batch', 'probe_folds'):
    if int(config[key]) <= 0:
      app_flags.fail(f'--config.{key}={config[key]} must be positive')
  if not 2 <= int(config.per_student) <= len(T.ASSIGNMENTS):
    app_flags.fail(f'--config.per_student={config.per_student} must be in [2, {len(T.ASSIGNMENTS)}] '
                   '(one assignment per student is held out)')
  bad = [v for v in config.variants if v not in C.VARIANTS]
  if bad or not config.variants:
    app_flags.fail(f'--config.variants={tuple(config.variants)}: each must be one of {C.VARIANTS}')
  if int(config.vocab_size) < 300:
    app_flags.fail(f'--config.vocab_size={config.vocab_size} must be ≥ 300 (256 byte pieces + specials + merges)')


if __name__ == '__main__':
  app_flags.run(main, validate)
