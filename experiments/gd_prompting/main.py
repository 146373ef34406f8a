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
   after meta-training (per arm), and each meta-trained model stepped on an irrelevant context.
workdir/results.json holds the table.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import functools
import json
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import flags, logging

from jaxlab import meta
from jaxlab.data import character_tasks as ct
from jaxlab.nn.lm import transformer
from jaxlab.train import runrecord

app_flags.define()


def build(config):
  vocab = ct.Vocab(int(config.num_names), int(config.num_words))
  m = config.model
  model = transformer.DecoderLM(transformer.llama_config(
      vocab_size=vocab.size, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
      num_kv_heads=m.num_heads, mlp_dim=m.mlp_dim, max_len=16, rope_base=10000.))
  return vocab, model


def pretrain(config, vocab, model):
  """Adam on the LM loss of prompted sequences (both query kinds); returns params."""
  params = nn.unbox(model.init(jax.random.key(int(config.seed)), jnp.zeros((1, ct.PROMPTED_LEN), jnp.int32))
                    ['params'])
  tx = optax.adam(float(config.pretrain_lr))
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, tokens):
    def loss(p):
      logits = model.apply({'params': p}, tokens)
      mask = (tokens != ct.PAD).astype(jnp.float32)
      return meta.sequence_nll(logits, tokens, mask) / jnp.sum(mask[:, 1:])
    l, g = jax.value_and_grad(loss)(params)
    u, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, u), opt, l

  b = int(config.pretrain_batch)
  for i in range(int(config.pretrain_steps)):
    seed = 10_000 + i
    tokens = np.concatenate([ct.task_arrays(vocab, b // 2, seed * 2 + k, kind)['prompted']
                             for k, kind in enumerate(ct.QUERIES)])
    params, opt, l = step(params, opt, tokens)
    if i % max(1, int(config.pretrain_steps) // 10) == 0:
      logging.info('pretrain step %d loss %.4f', i, float(l))
  return params


def accuracies(mm, base, params, tasks, eta, steps=1):
  """Per-item accuracy arrays: no context, prompted (base), `steps` SGD steps on c from meta params `params`."""

  def one(task):
    stepped = mm.inner_update(params, base, meta.objectives.context_of(task), eta=eta, steps=steps)
    return (meta.answer_correct(mm, mm.state(params, base), base, task),
            meta.answer_correct(mm, params, base, task, prompted=True), meta.answer_correct(mm, stepped, base, task))

  return jax.jit(jax.vmap(one))(tasks)


ARM_FIELDS = ('objective', 'mode', 'subset', 'steps')


def parse_arm(arm: str) -> dict:
  """'objective/mode[/subset[/steps]]', e.g. 'lc/second_order', 'lg/hvp', 'lc/second_order/rank1', 'lc/first_order/all/4'."""
  parts = arm.split('/')
  if not 2 <= len(parts) <= 4:
    raise ValueError(f'config.arms entry {arm!r}: expected objective/mode[/subset[/steps]]')
  out = dict(zip(ARM_FIELDS, parts + ['all', '1'][len(parts) - 2:]))
  out['steps'] = int(out['steps'])
  if out['objective'] not in meta.objectives.OBJECTIVES or out['mode'] not in meta.objectives.MODES:
    raise ValueError(f'config.arms entry {arm!r}: objective in {meta.objectives.OBJECTIVES}, mode in '
                     f'{meta.objectives.MODES}')
  meta.InnerConfig(subset=out['subset'], steps=out['steps'])  # validates subset and steps
  return out


def arm_model(model, arm: dict, eta: float) -> meta.MetaModel:
  return meta.MetaModel(model, meta.InnerConfig(eta=eta, steps=arm['steps'], subset=arm['subset'],
                                                lora=meta.inner.lora_lib.LoraConfig(rank=4, alpha=4.)))


def meta_train(config, mm_eta, base, vocab, objective, mode):
  tx = optax.adam(float(config.meta_lr))
  params = mm_eta.init_meta(jax.random.key(int(config.seed) + 1), base)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, tasks):
    l, g = jax.value_and_grad(lambda p: meta.meta_loss(mm_eta, p, base, tasks, objective=objective, mode=mode))(
        params)
    u, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, u), opt, l

  b, t0, losses = int(config.meta_batch), time.time(), []
  for i in range(int(config.meta_steps)):
    kinds = [ct.task_arrays(vocab, b // 2, 50_000 + 2 * i + k, kind) for k, kind in enumerate(ct.QUERIES)]
    tasks = jax.tree.map(lambda *x: np.concatenate(x), *kinds)
    params, opt, l = step(params, opt, tasks)
    losses.append(float(l))
  return params, {'first_loss': losses[0], 'last_loss': float(np.mean(losses[-10:])),
                  'seconds_per_step': (time.time() - t0) / max(1, len(losses))}


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t_start = time.time()
  vocab, model = build(config)
  base = pretrain(config, vocab, model)
  mm = meta.MetaModel(model, meta.InnerConfig())
  dev = {k: ct.task_arrays(vocab, int(config.num_dev), 1, k) for k in ct.QUERIES}
  test = {k: ct.task_arrays(vocab, int(config.num_test), 2, k) for k in ct.QUERIES}
  irrelevant = {k: ct.task_arrays(vocab, int(config.num_test), 2, k, irrelevant=True) for k in ct.QUERIES}
  eta_scores = {}
  for eta in config.etas:
    eta_scores[str(eta)] = float(np.mean([accuracies(mm, base, base, dev[k], float(eta))[2].mean()
                                          for k in ct.QUERIES]))
  eta = float(max(config.etas, key=lambda e: eta_scores[str(e)]))
  out = {'eta_dev_one_step': eta_scores, 'eta': eta, 'rows': {k: {} for k in ct.QUERIES}, 'meta_training': {}}
  for k in ct.QUERIES:
    none, prompted, step0 = (float(a.mean()) for a in accuracies(mm, base, base, test[k], eta))
    out['rows'][k].update(no_context=none, prompted=prompted, one_step_no_meta=step0)
  for arm_name in config.arms:
    arm = parse_arm(arm_name)
    mm_arm = arm_model(model, arm, eta)
    params, info = meta_train(config, mm_arm, base, vocab, arm['objective'], arm['mode'])
    out['meta_training'][arm_name] = info
    for k in ct.QUERIES:
      out['rows'][k][f'meta {arm_name}, no context'] = float(
          accuracies(mm_arm, base, params, test[k], eta, arm['steps'])[0].mean())
      out['rows'][k][f'meta {arm_name}'] = float(
          accuracies(mm_arm, base, params, test[k], eta, arm['steps'])[2].mean())
      out['rows'][k][f'meta {arm_name}, irrelevant context'] = float(
          accuracies(mm_arm, base, params, irrelevant[k], eta, arm['steps'])[2].mean())
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
  for key in ('pretrain_steps', 'pretrain_batch', 'meta_steps', 'meta_batch'):
    if key in config and int(config[key]) <= 0:
      app_flags.fail(f'--config.{key}={config[key]} must be positive')


if __name__ == '__main__':
  app_flags.run(main, validate)
