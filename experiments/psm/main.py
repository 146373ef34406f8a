r"""Prefix-scannable models on synthetic tasks: S5 / parity state tracking and MQAR recall.

  python -m experiments.psm.main --config=experiments/psm/configs/s5.py --workdir=workdirs/psm_s5
  python -m experiments.psm.main --config=experiments/psm/configs/s5.py:tiny --workdir=workdirs/psm_tiny

For each model in `config.models` (a causal Transformer, affine-mixer LMs such as GLA / Mamba, the
Transformer-PSM) it trains with the jaxlab trainer in workdir/<model>, then measures accuracy at every
position of `config.data.eval_len`-token sequences (state tracking: accuracy vs length) or on the
labelled query positions (MQAR), writes workdir/results.json and, for state tracking, the plot
workdir/accuracy_vs_length.png. Rerunning with the same workdir resumes each model's training.
"""

from __future__ import annotations

import json
import os
import time

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags, logging

from experiments import app_flags
from jaxlab.data import psm_tasks
from jaxlab.nn import transformer
from jaxlab.nn.psm.transformer_psm import PSMConfig, TransformerPSM
from jaxlab.train import runtime, trainer

app_flags.define()


def make_data(cfg: ml_collections.ConfigDict, split: str, seed: int) -> dict[str, np.ndarray]:
  d = cfg.data
  if d.task in ('s5', 'parity'):
    if split == 'train':
      return psm_tasks.word_problem(d.task, d.num_train, d.min_len, d.train_max_len, seed)
    return psm_tasks.word_problem(d.task, d.num_eval, d.eval_len, d.eval_len, seed + 1)
  if d.task == 'mqar':
    num = d.num_train if split == 'train' else d.num_eval
    return psm_tasks.mqar(num, d.seq_len, d.num_pairs, d.vocab_size, seed + (split != 'train'))
  raise ValueError(f'Unknown task {d.task!r}.')


def vocab_size(cfg: ml_collections.ConfigDict) -> int:
  return {'s5': 120, 'parity': 2}.get(cfg.data.task, cfg.data.get('vocab_size', 0))


def make_model(cfg: ml_collections.ConfigDict, name: str, max_len: int):
  """'transformer' | an affine mixer name ('gla', 'mamba', ...) | 'psm' -> a Flax module."""
  m, v = cfg.model, vocab_size(cfg)
  if name == 'psm':
    return TransformerPSM(PSMConfig(vocab_size=v, chunk_size=m.chunk_size, embed_dim=m.embed_dim,
                                    num_heads=m.num_heads, agg_layers=m.agg_layers,
                                    inf_layers=m.inf_layers, max_len=max_len))
  mixer = 'attention' if name == 'transformer' else name
  return transformer.DecoderLM(transformer.llama_config(
      vocab_size=v, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
      num_kv_heads=None, mlp_dim=4 * m.embed_dim, max_len=max_len, mixer=mixer, rope_base=10000.,
      scan_chunk_size=m.scan_chunk_size))


def train_one(cfg: ml_collections.ConfigDict, name: str, workdir: str) -> dict:
  data = make_data(cfg, 'train', cfg.seed)
  records = [{k: data[k][i] for k in data} for i in range(len(data['tokens']))]
  train_iter = iter(grain.MapDataset.source(records).shuffle(seed=cfg.seed).repeat(None).batch(
      cfg.batch_size, drop_remainder=True))
  eval_set = make_data(cfg, 'eval', cfg.seed)
  max_len = max(eval_set['tokens'].shape[1], data['tokens'].shape[1])
  model = make_model(cfg, name, max_len)

  def loss_fn(params, batch, rng):
    del rng
    logits = model.apply({'params': params}, batch['tokens'])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['labels'])
    w = batch['mask'].astype(jnp.float32)
    acc = jnp.sum((jnp.argmax(logits, -1) == batch['labels']) * w) / jnp.maximum(jnp.sum(w), 1.)
    return jnp.sum(nll * w) / jnp.maximum(jnp.sum(w), 1.), {'accuracy': acc}

  t_len = data['tokens'].shape[1]
  task = trainer.Task(init_params=lambda rng: model.init(rng, jnp.zeros((1, t_len), jnp.int32))['params'],
                      loss_fn=loss_fn, train_data=train_iter, tokens_per_example=t_len)
  tcfg = ml_collections.ConfigDict(cfg.train.to_dict())
  tcfg.seed, tcfg.batch_size = cfg.seed, cfg.batch_size
  start = time.time()
  result = trainer.train(tcfg, os.path.join(workdir, name), task, devices=[jax.devices()[0]])
  train_s = time.time() - start
  params = result.state.params

  apply = jax.jit(lambda p, t: jnp.argmax(model.apply({'params': p}, t), -1))
  correct = np.zeros(eval_set['tokens'].shape[1])
  count = np.zeros(eval_set['tokens'].shape[1])
  for i in range(0, len(eval_set['tokens']), cfg.eval_batch_size):
    sl = slice(i, i + cfg.eval_batch_size)
    pred = np.asarray(apply(params, eval_set['tokens'][sl]))
    m = eval_set['mask'][sl]
    correct += ((pred == eval_set['labels'][sl]) & m).sum(0)
    count += m.sum(0)
  per_pos = (correct / np.maximum(count, 1)).tolist()
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  out = {'model': name, 'params': n_params, 'train_seconds': round(train_s, 1),
         'final_train_loss': float(result.train_metrics.get('loss', float('nan'))),
         'overall_accuracy': float(correct.sum() / max(count.sum(), 1))}
  if cfg.data.task in ('s5', 'parity'):
    out['accuracy_by_length'] = per_pos  # Index t: accuracy of the label after t + 1 tokens.
  logging.info('%s: %s', name, {k: v for k, v in out.items() if k != 'accuracy_by_length'})
  return out


def plot(results: list[dict], cfg: ml_collections.ConfigDict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4))
  for r in results:
    acc = r['accuracy_by_length']
    ax.plot(np.arange(1, len(acc) + 1), acc, label=f"{r['model']} ({r['params'] / 1e3:.0f}k)")
  ax.axvline(cfg.data.train_max_len, color='gray', ls='--', label='max train length')
  ax.set_xlabel('sequence length (prefix)')
  ax.set_ylabel('accuracy of the running state')
  ax.set_title(f'{cfg.data.task}: train on lengths {cfg.data.min_len}-{cfg.data.train_max_len}')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  runtime.initialize()
  os.makedirs(workdir, exist_ok=True)
  logging.info('Config:\n%s', config)
  results = [train_one(config, name, workdir) for name in config.models]
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump({'config': config.to_dict(), 'results': results}, f, indent=1)
  if config.data.task in ('s5', 'parity'):
    plot(results, config, os.path.join(workdir, 'accuracy_vs_length.png'))
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not flags.FLAGS.workdir:
    raise app.UsageError('--workdir is required')
  run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == '__main__':
  app.run(main)
