r"""Can one gradient step on a context emulate prompting with it? (Zhang, Choshen, Andreas; arXiv 2506.20989)

  python -m experiments.gd_prompting.main --config=experiments/gd_prompting/configs/default.py --workdir=workdirs/gd_prompting
  python -m experiments.gd_prompting.main --config=experiments/gd_prompting/configs/default.py:tiny --workdir=workdirs/gd_tiny

1. A tiny Llama-style LM is pretrained from scratch on prompted sequences c ⊕ q ⊕ a of synthetic characters
   (jaxlab.data.character_tasks), so prompted retrieval works while the no-context answer is at chance.
2. The inner learning rate η of one SGD step on c (summed NLL, jaxlab.meta) is chosen on dev items.
3. Meta-training (jaxlab.meta.meta_loss) of one model per entry of config.arms ('objective/mode[/subset[/steps]]':
   LC = KL from the frozen prompted base to θ' on q alone, or LG = gold NLL; second_order / first_order / hvp;
   subset all / rank1 / lora; inner steps).
4. Every row on the same test items, per query kind: no context, prompted, one step without meta-training,
   after meta-training (per arm), each meta-trained model stepped on an irrelevant context, and the step on
   c followed by steps on `config.interference` other items' contexts (sequential updates).
Pretraining and each arm's meta-training run through the one trainer (jaxlab.train.train; meta-training with
jaxlab.meta.make_loss_fn as Task.loss_fn and the pretrained base as Task.frozen_params), in
workdir/pretrain and workdir/meta/<arm>; both checkpoint, so the same command in the same workdir resumes
(finished stages are restored). workdir/results.json holds the table.
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

from jaxlab import meta
from jaxlab.data import character_tasks as ct
from jaxlab.nn.lm import transformer
from jaxlab.train import Task, runrecord, train, validate_config
from jaxlab.train import metrics as metrics_lib

app_flags.define()


def build(config):
  vocab = ct.Vocab(int(config.num_names), int(config.num_words))
  m = config.model
  model = transformer.DecoderLM(transformer.llama_config(
      vocab_size=vocab.size, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
      num_kv_heads=m.num_heads, mlp_dim=m.mlp_dim, max_len=16, rope_base=10000.))
  return vocab, model


def _stream(fn):
  """A checkpointable grain iterator whose i-th element is fn(i) (one whole batch per trainer step)."""
  return iter(grain.MapDataset.range(10**9).map(fn))


def _data_offset(config) -> int:
  return 10_000_000 * int(config.seed)  # seed 0 keeps the data seeds of the earlier runs


def pretrain(config, vocab, model, workdir):
  """The LM loss of prompted sequences (both query kinds) through the one trainer; returns (params, seconds)."""
  b, off = int(config.pretrain.batch_size), _data_offset(config)

  def batch(i):
    seed = 10_000 + off + int(i)
    return {'tokens': np.concatenate([ct.task_arrays(vocab, b // 2, seed * 2 + k, kind)['prompted']
                                      for k, kind in enumerate(ct.QUERIES)])}

  def loss_fn(params, batch, rng):
    del rng
    tokens = batch['tokens']
    mask = (tokens != ct.PAD).astype(jnp.float32)
    loss = meta.sequence_nll(model.apply({'params': params}, tokens), tokens, mask) / jnp.sum(mask[:, 1:])
    return loss, {}

  init = lambda r: model.init(jax.random.key(int(config.seed)), jnp.zeros((1, ct.PROMPTED_LEN), jnp.int32))['params']
  t0 = time.time()
  res = train(config.pretrain, os.path.join(workdir, 'pretrain'),
              Task(init_params=init, loss_fn=loss_fn, train_data=_stream(batch), tokens_per_example=ct.PROMPTED_LEN),
              devices=[jax.devices()[0]])
  return jax.device_get(res.state.params), time.time() - t0


def accuracies(mm, base, params, tasks, eta, steps=1, interference=0):
  """Per-item accuracy arrays [N] of the model at meta params `params` on tasks [N, ...]:
  'none' (q alone, no step), 'prompted' (the frozen base on c ⊕ q), 'step' (`steps` SGD steps on c, then q)
  and, when interference > 0, 'interfered' (the steps on c, then `steps` on each of the next `interference`
  items' contexts in turn, then q)."""
  others = np.stack([np.roll(tasks['context'], -j, axis=0) for j in range(1, interference + 1)]
                    or [np.zeros_like(tasks['context'])], 1)[:, :interference]
  others_mask = np.broadcast_to(tasks['context_mask'][:, None], others.shape)

  def one(task, other, other_mask):
    stepped = mm.inner_update(params, base, meta.objectives.context_of(task), eta=eta, steps=steps)
    out = {'none': meta.answer_correct(mm, mm.state(params, base), base, task),
           'prompted': meta.answer_correct(mm, params, base, task, prompted=True),
           'step': meta.answer_correct(mm, stepped, base, task)}
    if interference:
      state = stepped
      for j in range(interference):  # moved state of 'all' / 'rank1' is θ; the inner step goes on from it
        for _ in range(steps):
          state = mm.inner_step(state, base, {'tokens': other[j], 'mask': other_mask[j]}, eta)
      out['interfered'] = meta.answer_correct(mm, state, base, task)
    return out

  return jax.jit(jax.vmap(one))(tasks, others, others_mask)


ARM_FIELDS = ('objective', 'mode', 'subset', 'steps')


def parse_arm(arm: str) -> dict:
  """'objective/mode[/subset[/steps]]', e.g. 'lc/second_order', 'lg/hvp', 'lc/second_order/rank1', 'lc/first_order/all/4'."""
  parts = arm.split('/')
  if not 2 <= len(parts) <= 4:
    raise ValueError(f'config.arms entry {arm!r}: expected objective/mode[/subset[/steps]]')
  out = dict(zip(ARM_FIELDS, parts + ['all', '1'][len(parts) - 2:]))
  try:
    out['steps'] = int(out['steps'])
  except ValueError:
    raise ValueError(f'config.arms entry {arm!r}: steps {out["steps"]!r} is not an integer') from None
  if out['objective'] not in meta.objectives.OBJECTIVES or out['mode'] not in meta.objectives.MODES:
    raise ValueError(f'config.arms entry {arm!r}: objective in {meta.objectives.OBJECTIVES}, mode in '
                     f'{meta.objectives.MODES}')
  meta.InnerConfig(subset=out['subset'], steps=out['steps'])  # validates subset and steps
  return out


def arm_model(model, arm: dict, eta: float) -> meta.MetaModel:
  return meta.MetaModel(model, meta.InnerConfig(eta=eta, steps=arm['steps'], subset=arm['subset'],
                                                lora=meta.inner.lora_lib.LoraConfig(rank=4, alpha=4.)))


def meta_train(config, mm_arm, base, vocab, arm: dict, workdir: str, frozen_id: str):
  """Meta-trains one arm through the one trainer (jaxlab.meta.make_loss_fn as Task.loss_fn, the pretrained
  base as Task.frozen_params); returns (meta params, info from the run's metrics.jsonl)."""
  b, off = int(config.meta.batch_size), _data_offset(config)

  def batch(i):
    kinds = [ct.task_arrays(vocab, b // 2, 50_000 + off + 2 * int(i) + k, kind) for k, kind in enumerate(ct.QUERIES)]
    return jax.tree.map(lambda *x: np.concatenate(x), *kinds)

  init = lambda r: mm_arm.init_meta(jax.random.key(int(config.seed) + 1), base)
  task = Task(init_params=init, loss_fn=meta.make_loss_fn(mm_arm, objective=arm['objective'], mode=arm['mode']),
              train_data=_stream(batch), frozen_params=base, frozen_id=frozen_id)
  t0 = time.time()
  res = train(config.meta, workdir, task, devices=[jax.devices()[0]])
  rows = [r for r in metrics_lib.read_jsonl(os.path.join(workdir, 'metrics.jsonl')) if 'train/meta_loss' in r]
  sps = [r['train/steps_per_sec'] for r in rows if r.get('train/steps_per_sec')]
  info = {'first_window_loss': rows[0]['train/meta_loss'], 'last_window_loss': rows[-1]['train/meta_loss'],
          'log_every': int(config.meta.log_every),
          'seconds_per_step': float(np.median([1 / s for s in sps])) if sps else None,
          'stage_seconds_this_call': time.time() - t0}
  return jax.device_get(res.state.params), info


def _arm_dir(arm_name: str) -> str:
  return arm_name.replace('/', '_')


@runrecord.recorded(continuable=('arms', 'meta.total_steps'))
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t_start = time.time()
  for block in ('pretrain', 'meta'):
    validate_config(config[block], f'config.{block}')
  arms = [(name, parse_arm(name)) for name in config.arms]
  vocab, model = build(config)
  base, pretrain_s = pretrain(config, vocab, model, workdir)
  frozen_id = f'gd_prompting pretrain seed {int(config.seed)} steps {int(config.pretrain.total_steps)}'
  mm = meta.MetaModel(model, meta.InnerConfig())
  dev = {k: ct.task_arrays(vocab, int(config.num_dev), 1, k) for k in ct.QUERIES}
  test = {k: ct.task_arrays(vocab, int(config.num_test), 2, k) for k in ct.QUERIES}
  irrelevant = {k: ct.task_arrays(vocab, int(config.num_test), 2, k, irrelevant=True) for k in ct.QUERIES}
  eta_scores = {}
  for eta in config.etas:
    eta_scores[str(eta)] = float(np.mean([accuracies(mm, base, base, dev[k], float(eta))['step'].mean()
                                          for k in ct.QUERIES]))
  eta = float(max(config.etas, key=lambda e: eta_scores[str(e)]))
  k_int = int(config.interference)
  out = {'seed': int(config.seed), 'eta_dev_one_step': eta_scores, 'eta': eta, 'rows': {k: {} for k in ct.QUERIES},
         'meta_training': {}, 'pretrain_seconds_this_call': pretrain_s}
  for k in ct.QUERIES:
    acc = {n: float(a.mean()) for n, a in accuracies(mm, base, base, test[k], eta, 1, k_int).items()}
    out['rows'][k].update(no_context=acc['none'], prompted=acc['prompted'], one_step_no_meta=acc['step'])
    if k_int:
      out['rows'][k][f'one_step_no_meta, then {k_int} other contexts'] = acc['interfered']
  for arm_name, arm in arms:
    mm_arm = arm_model(model, arm, eta)
    params, info = meta_train(config, mm_arm, base, vocab, arm, os.path.join(workdir, 'meta', _arm_dir(arm_name)),
                              frozen_id)
    out['meta_training'][arm_name] = info
    for k in ct.QUERIES:
      acc = {n: float(a.mean()) for n, a in accuracies(mm_arm, base, params, test[k], eta, arm['steps'], k_int).items()}
      rows = out['rows'][k]
      rows[f'meta {arm_name}, no context'] = acc['none']
      rows[f'meta {arm_name}'] = acc['step']
      if k_int:
        rows[f'meta {arm_name}, then {k_int} other contexts'] = acc['interfered']
      rows[f'meta {arm_name}, irrelevant context'] = float(
          accuracies(mm_arm, base, params, irrelevant[k], eta, arm['steps'])['step'].mean())
  out['chance'] = {'describe': 1 / vocab.num_names, 'recall': 1 / vocab.num_words}
  out['wall_seconds'] = time.time() - t_start
  out['device'] = jax.devices()[0].device_kind
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)
  logging.info('results %s', json.dumps(out, indent=1))
  print(json.dumps(out['rows'], indent=1), flush=True)
  return out


main = app_flags.main_for(run)


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  config = flags.FLAGS.config
  for key in ('num_dev', 'num_test'):
    if int(config[key]) <= 0:
      app_flags.fail(f'--config.{key}={config[key]} must be positive')
  if int(config.interference) < 0:
    app_flags.fail(f'--config.interference={config.interference} must be >= 0')
  if int(config.meta.batch_size) % 2 or int(config.pretrain.batch_size) % 2:
    app_flags.fail('--config.meta.batch_size and --config.pretrain.batch_size must be even (half per query kind)')
  for arm in config.arms:
    try:
      parse_arm(arm)
    except ValueError as e:
      app_flags.fail(f'--config.arms: {e}')


if __name__ == '__main__':
  app_flags.run(main, validate)
