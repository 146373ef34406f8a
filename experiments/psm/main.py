r"""Prefix-scannable models on state tracking (S5 and smaller groups), MQAR recall and language modelling.

  python -m experiments.psm.main --config=experiments/psm/configs/s5.py --workdir=workdirs/psm_s5
  python -m experiments.psm.main --config=experiments/psm/configs/mqar.py --workdir=workdirs/psm_mqar
  python -m experiments.psm.main --config=experiments/psm/configs/lm.py --workdir=workdirs/psm_lm
  python -m experiments.psm.main --config=experiments/psm/configs/s5.py:tiny --workdir=workdirs/psm_tiny

For each model in `config.models` (a causal Transformer, affine-mixer LMs such as GLA / Mamba, and the
Transformer-PSM once per chunk size in `config.model.chunk_sizes`) it trains with the jaxlab trainer in
workdir/<model>, then measures accuracy at every position of `config.data.eval_len`-token sequences (state
tracking: accuracy vs length) or on the labelled query positions per number of key-value pairs (MQAR),
writes workdir/results.json and a plot. `config.data.task = 'lm'` runs experiments/psm/lm.py instead
(validation perplexity on a text corpus). Rerunning with the same workdir resumes each model's training;
each model's run is recorded in workdir/<model>/run.json (jaxlab.train.runrecord), so a rerun with more
models in `config.models` (or more chunk sizes) reuses every model that already finished, and a rerun of a
finished command changes nothing.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import os
import time

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, logging

from experiments.psm import lm as psm_lm
from jaxlab.data import psm_tasks
from jaxlab.nn.lm import transformer
from jaxlab.nn.psm.transformer_psm import PSMConfig, TransformerPSM
from jaxlab.train import runrecord, runtime, trainer

app_flags.define()


def is_group_task(cfg: ml_collections.ConfigDict) -> bool:
  return cfg.data.task in psm_tasks.GROUPS


def check_task(cfg: ml_collections.ConfigDict) -> None:
  if not is_group_task(cfg) and cfg.data.task != 'mqar':
    raise ValueError(f'config.data.task={cfg.data.task!r} is not one of {sorted(psm_tasks.GROUPS)}, '
                     "'mqar' or 'lm'.")
  if not cfg.model.chunk_sizes or any(int(c) <= 0 for c in cfg.model.chunk_sizes):
    raise ValueError(f'config.model.chunk_sizes={cfg.model.chunk_sizes} must be positive ints.')


def train_source(cfg: ml_collections.ConfigDict):
  """A grain MapDataset of training records (tokens, labels, mask), unbatched and unbounded."""
  d = cfg.data
  if is_group_task(cfg) and not d.num_train:  # Fresh problems every step, optional length curriculum.
    return grain.MapDataset.source(psm_tasks.WordProblemStream(
        d.task, d.min_len, d.train_max_len, cfg.seed, d.curriculum_steps * cfg.batch_size))
  if is_group_task(cfg):
    data = psm_tasks.word_problem(d.task, d.num_train, d.min_len, d.train_max_len, cfg.seed)
  else:  # MQAR: an equal mixture of every number of key-value pairs.
    pairs = tuple(d.num_pairs)
    parts = [psm_tasks.mqar(d.num_train // len(pairs), d.seq_len, p, d.vocab_size, cfg.seed + 1000 * p)
             for p in pairs]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  records = [{k: data[k][i] for k in data} for i in range(len(data['tokens']))]
  return grain.MapDataset.source(records).shuffle(seed=cfg.seed).repeat(None)


def eval_sets(cfg: ml_collections.ConfigDict) -> dict[str, dict[str, np.ndarray]]:
  """Held-out sets (other seeds than training): {'': ...} for groups, {'<pairs>': ...} for MQAR."""
  d = cfg.data
  if is_group_task(cfg):
    return {'': psm_tasks.word_problem(d.task, d.num_eval, d.eval_len, d.eval_len, cfg.seed + 1)}
  return {str(p): psm_tasks.mqar(d.num_eval, d.seq_len, p, d.vocab_size, cfg.seed + 1000 * p + 1)
          for p in d.eval_num_pairs}


def vocab_size(cfg: ml_collections.ConfigDict) -> int:
  return psm_tasks.GROUPS.get(cfg.data.task) or cfg.data.vocab_size


def model_names(cfg: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """(run name, PSM chunk size) per run: 'psm' expands to one run per chunk size ('psm_c<c>' when several)."""
  out = []
  for name in cfg.models:
    if name != 'psm':
      out.append((name, 0))
      continue
    sizes = [int(c) for c in cfg.model.chunk_sizes]
    out += [('psm' if len(sizes) == 1 else f'psm_c{c}', c) for c in sizes]
  return out


SWEEP_KEYS = ('models', 'model.chunk_sizes')  # may change between reruns in one workdir (models are added)


def run_config(cfg: ml_collections.ConfigDict, name: str, chunk_size: int) -> dict:
  """What one model's run depends on: the config without the sweep keys, plus the run's name and c."""
  d = runrecord.to_json(cfg)
  d.pop('models', None)
  d.get('model', {}).pop('chunk_sizes', None)
  return {**d, 'run': name, 'chunk_size': chunk_size or None}


def make_model(cfg: ml_collections.ConfigDict, name: str, max_len: int, chunk_size: int = 0):
  """'transformer' | an affine mixer name ('gla', 'mamba', ...) | 'psm...' -> a Flax module."""
  m, v = cfg.model, vocab_size(cfg)
  if name.startswith('psm'):
    return TransformerPSM(PSMConfig(vocab_size=v, chunk_size=chunk_size, embed_dim=m.embed_dim,
                                    num_heads=m.psm_heads or m.num_heads, agg_layers=m.agg_layers,
                                    inf_layers=m.inf_layers, max_len=max_len))
  mixer = 'attention' if name == 'transformer' else name
  return transformer.DecoderLM(transformer.llama_config(
      vocab_size=v, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
      num_kv_heads=None, mlp_dim=4 * m.embed_dim, max_len=max_len, mixer=mixer, rope_base=10000.,
      scan_chunk_size=m.scan_chunk_size))


def masked_accuracy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  w = mask.astype(jnp.float32)
  return jnp.sum((jnp.argmax(logits, -1) == labels) * w) / jnp.maximum(jnp.sum(w), 1.)


def make_task(cfg: ml_collections.ConfigDict, model, evals: dict, t_len: int) -> trainer.Task:
  """Loss on labelled positions; in-training eval = held-out accuracy (groups: at train lengths / beyond)."""
  train_iter = iter(train_source(cfg).batch(cfg.batch_size, drop_remainder=True))
  split = cfg.data.get('train_max_len', 0)

  def loss_fn(params, batch, rng):
    del rng
    logits = model.apply({'params': params}, batch['tokens'])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch['labels'])
    w = batch['mask'].astype(jnp.float32)
    return jnp.sum(nll * w) / jnp.maximum(jnp.sum(w), 1.), {
        'accuracy': masked_accuracy(logits, batch['labels'], batch['mask'])}

  def eval_step(params, batch):  # Per-sequence accuracies summed; 'weight' = number of sequences.
    logits = model.apply({'params': params}, batch['tokens'])
    hit = (jnp.argmax(logits, -1) == batch['labels']) & batch['mask']
    seq_acc = lambda h, m: jnp.sum(jnp.sum(h, 1) / jnp.maximum(jnp.sum(m, 1), 1))
    out = {'accuracy': seq_acc(hit, batch['mask']), 'weight': jnp.float32(hit.shape[0])}
    if split:
      out['acc_train_lengths'] = seq_acc(hit[:, :split], batch['mask'][:, :split])
      out['acc_beyond'] = seq_acc(hit[:, split:], batch['mask'][:, split:])
    return out

  def eval_data():  # Every held-out sequence counts: the last batch of a set may be smaller (one device).
    b = cfg.eval_batch_size
    return [{k: v[i:i + b] for k, v in e.items()} for e in evals.values() for i in range(0, len(e['tokens']), b)]

  return trainer.Task(init_params=lambda rng: model.init(rng, jnp.zeros((1, t_len), jnp.int32))['params'],
                      loss_fn=loss_fn, train_data=train_iter, eval_step=eval_step, eval_data=eval_data,
                      tokens_per_example=t_len)


def train_one(cfg: ml_collections.ConfigDict, name: str, chunk_size: int, workdir: str) -> dict:
  """One model of the comparison, reused when its run in workdir/<name> is finished for this config."""
  return runrecord.reuse_or_run(os.path.join(workdir, name), run_config(cfg, name, chunk_size),
                                lambda: _train_one(cfg, name, chunk_size, workdir),
                                continuable=('train.total_steps',))


def _train_one(cfg: ml_collections.ConfigDict, name: str, chunk_size: int, workdir: str) -> dict:
  evals = eval_sets(cfg)
  t_len = cfg.data.train_max_len if is_group_task(cfg) else cfg.data.seq_len
  max_len = max([t_len] + [e['tokens'].shape[1] for e in evals.values()])
  model = make_model(cfg, name, max_len, chunk_size)
  task = make_task(cfg, model, evals, t_len)
  tcfg = ml_collections.ConfigDict(cfg.train.to_dict())
  tcfg.seed, tcfg.batch_size = cfg.seed, cfg.batch_size
  start = time.time()
  result = trainer.train(tcfg, os.path.join(workdir, name), task, devices=[jax.devices()[0]])
  train_s = time.time() - start
  params = result.state.params

  apply = jax.jit(lambda p, t: jnp.argmax(model.apply({'params': p}, t), -1))
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  out = {'model': name, 'chunk_size': chunk_size or None, 'params': n_params, 'train_seconds': round(train_s, 1),
         'steps': int(result.state.step), 'final_train_loss': float(result.train_metrics.get('loss', np.nan))}
  for key, e in evals.items():
    correct = np.zeros(e['tokens'].shape[1])
    count = np.zeros(e['tokens'].shape[1])
    for i in range(0, len(e['tokens']), cfg.eval_batch_size):
      sl = slice(i, i + cfg.eval_batch_size)
      pred = np.asarray(apply(params, e['tokens'][sl]))
      correct += ((pred == e['labels'][sl]) & e['mask'][sl]).sum(0)
      count += e['mask'][sl].sum(0)
    acc = float(correct.sum() / max(count.sum(), 1))
    if is_group_task(cfg):
      out['overall_accuracy'] = acc
      out['accuracy_by_length'] = (correct / np.maximum(count, 1)).tolist()  # [t]: after t + 1 tokens.
    else:
      out.setdefault('accuracy_by_pairs', {})[key] = acc
      out.setdefault('query_count_by_position', {})[key] = count.tolist()
      out.setdefault('correct_by_position', {})[key] = correct.tolist()
  logging.info('%s: %s', name, {k: v for k, v in out.items() if not isinstance(v, (list, dict))}
               | {'accuracy_by_pairs': out.get('accuracy_by_pairs')})
  return out


def plot(results: list[dict], cfg: ml_collections.ConfigDict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4))
  for r in results:
    label = f"{r['model']} ({r['params'] / 1e3:.0f}k)"
    if is_group_task(cfg):
      acc = r['accuracy_by_length']
      ax.plot(np.arange(1, len(acc) + 1), acc, label=label)
    else:
      pairs = sorted(r['accuracy_by_pairs'], key=int)
      ax.plot([int(p) for p in pairs], [r['accuracy_by_pairs'][p] for p in pairs], 'o-', label=label)
  if is_group_task(cfg):
    ax.axvline(cfg.data.train_max_len, color='gray', ls='--', label='max train length')
    ax.set_xlabel('sequence length (prefix)')
    ax.set_ylabel('accuracy of the running state')
    ax.set_title(f'{cfg.data.task}: train on lengths {cfg.data.min_len}-{cfg.data.train_max_len}')
  else:
    ax.set_xlabel('key-value pairs')
    ax.set_ylabel('query accuracy')
    ax.set_title(f'MQAR: vocab {cfg.data.vocab_size}, length {cfg.data.seq_len}, '
                 f'trained on {tuple(cfg.data.num_pairs)} pairs')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)


@runrecord.recorded(continuable=SWEEP_KEYS + ('train.total_steps',))
def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict] | dict:
  runtime.initialize()
  os.makedirs(workdir, exist_ok=True)
  logging.info('Config:\n%s', config)
  if config.data.task == 'lm':
    return psm_lm.run(config, workdir, model_names(config), run_config)
  check_task(config)
  results = [train_one(config, name, c, workdir) for name, c in model_names(config)]
  runrecord.write_json(os.path.join(workdir, 'results.json'), {'config': config.to_dict(), 'results': results},
                       indent=1)
  plot(results, config, os.path.join(workdir, 'accuracy_vs_length.png' if is_group_task(config)
                                      else 'accuracy_vs_pairs.png'))
  return results


main = app_flags.main_for(run)


if __name__ == '__main__':
  app_flags.run(main)
