r"""Affine scan forms (sequential / parallel / chunkwise): time and XLA compiled temp memory.

  python -m experiments.benchmarks.psm_scans
  python -m experiments.benchmarks.psm_scans --lengths=256,1024 --repeats=2   # quick

Two states: 'diag' (a diagonal recurrence s_t = a_t * s_{t-1} + b_t with s in R^1024, as in a Mamba layer
of width 1024 with one state per channel) and 'matrix' (gated linear attention, one head with a 64x64
state, GLA-style diagonal gates). Forward computes all outputs; forward+backward takes the gradient of
their sum w.r.t. every input. Memory is `jax.jit(f).lower(...).compile().memory_analysis()
.temp_size_in_bytes` (XLA's scratch, excluding arguments and outputs). Times are medians of `--repeats`
runs after one warm-up; a cell whose compiled temp memory exceeds `--max_temp_gb` is not run.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxlab.nn.psm import scans

_LENGTHS = flags.DEFINE_list('lengths', ['256', '1024', '4096', '16384'], 'Sequence lengths T.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed runs per cell (median reported).')
_CHUNK = flags.DEFINE_integer('chunk_size', 64, 'Chunk size of the chunkwise form.')
_MAX_TEMP_GB = flags.DEFINE_float('max_temp_gb', 4.0, 'Skip timing cells needing more temp memory.')
FORMS = ('sequential', 'parallel', 'chunkwise')


def make_fn(state: str, form: str, chunk: int, backward: bool):
  if state == 'diag':
    def fwd(a, b):
      return scans.affine_scan(a, b, kind='diag', form=form, chunk_size=chunk)[0]
  else:
    def fwd(q, k, v, g):
      return scans.gated_linear_attention(q, k, v, g, form=form, chunk_size=chunk)[0]
  if not backward:
    return fwd
  return jax.grad(lambda *args: jnp.sum(fwd(*args)), argnums=tuple(range(2 if state == 'diag' else 4)))


def inputs(state: str, t: int):
  rng = np.random.default_rng(0)
  if state == 'diag':
    return (jnp.asarray(rng.uniform(0.9, 1., (1, t, 1024)), jnp.float32),
            jnp.asarray(rng.normal(size=(1, t, 1024)), jnp.float32))
  q, k, v = (jnp.asarray(rng.normal(size=(1, t, 1, 64)) / 8, jnp.float32) for _ in range(3))
  g = jnp.asarray(np.log(rng.uniform(0.9, 1., (1, t, 1, 64))), jnp.float32)
  return q, k, v, g


def main(argv):
  del argv
  print(f'backend={jax.default_backend()} devices={jax.devices()} chunk={_CHUNK.value}')
  print('| state | pass | T | ' + ' | '.join(f'{f} ms | {f} temp MB' for f in FORMS) + ' |')
  print('|' + '---|' * (3 + 2 * len(FORMS)))
  for state in ('diag', 'matrix'):
    for backward in (False, True):
      for t in (int(x) for x in _LENGTHS.value):
        args = inputs(state, t)
        cells = []
        for form in FORMS:
          fn = jax.jit(make_fn(state, form, _CHUNK.value, backward))
          compiled = fn.lower(*args).compile()
          temp = compiled.memory_analysis().temp_size_in_bytes
          if temp > _MAX_TEMP_GB.value * 2 ** 30:
            cells += ['skipped', f'{temp / 2 ** 20:.0f}']
            continue
          jax.block_until_ready(compiled(*args))
          times = []
          for _ in range(_REPEATS.value):
            start = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times.append(time.perf_counter() - start)
          cells += [f'{1e3 * np.median(times):.1f}', f'{temp / 2 ** 20:.1f}']
        print(f"| {state} | {'fwd+bwd' if backward else 'fwd'} | {t} | " + ' | '.join(cells) + ' |',
              flush=True)


if __name__ == '__main__':
  app.run(main)
