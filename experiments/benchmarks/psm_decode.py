r"""Decoding cost vs position: Transformer-PSM (binary counter) vs a KV-cache Transformer vs GLA.

  python -m experiments.benchmarks.psm_decode
  python -m experiments.benchmarks.psm_decode --positions=256,1024 --tokens=8   # quick

At each position p the model holds a context of p tokens and we time `--tokens` further one-token decode
steps (median per token, after a warm-up). Same width for all models (d 128, 4 heads, 2 layers; the PSM
has 2 Agg and 2 Inf layers and chunk size c = 32).

* Transformer: jaxlab DecoderLM with a KV cache of exactly p + tokens slots, prefilled with p tokens
  (jaxlab's cache is fixed-size, so a cache sized to the context is what a growing cache would cost).
* GLA: DecoderLM(mixer='gla') decode step; its state is constant.
* Transformer-PSM: `StreamingDecoder` whose binary counter has been fed p / c chunk encodings; each
  timed token includes its share of the Agg calls (one prefill of the prefix per chunk, carries, fold).

Memory is the per-sequence decode state in bytes: the KV cache (Transformer), the recurrent states
(GLA), and the counter's stored roots + cached folds plus the 2c-slot Inf KV cache (PSM).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from jaxlab.nn import DecoderLM, init_cache, llama_config
from jaxlab.nn.psm.transformer_psm import PSMConfig, StreamingDecoder, TransformerPSM

_POSITIONS = flags.DEFINE_list('positions', ['256', '1024', '4096', '16384'], 'Context lengths.')
_TOKENS = flags.DEFINE_integer('tokens', 32, 'Timed decode steps per position.')
D, H, L, C, V = 128, 4, 2, 32, 256


def nbytes(tree) -> int:
  return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def lm_decode(mixer: str, p: int, n: int) -> tuple[float, int]:
  model = DecoderLM(llama_config(vocab_size=V, num_layers=L, embed_dim=D, num_heads=H, num_kv_heads=None,
                                 mlp_dim=4 * D, max_len=p + n + 1, mixer=mixer))
  tok = jnp.zeros((1, 1), jnp.int32)
  params = model.init(jax.random.key(0), tok)['params']
  cache = init_cache(model, 1)
  step = jax.jit(functools.partial(model.apply, decode=True, mutable=['cache']))
  block = min(p, 1024)  # Prefill p tokens in blocks (bounded attention-mask memory).
  for _ in range(p // block):
    _, upd = step({'params': params, 'cache': cache}, jnp.zeros((1, block), jnp.int32))
    cache = upd['cache']
  out, upd = step({'params': params, 'cache': cache}, tok)  # Warm-up (compile).
  jax.block_until_ready(out)
  times = []
  for _ in range(n):
    start = time.perf_counter()
    out, upd = step({'params': params, 'cache': upd['cache']}, tok)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - start)
  return float(np.median(times)), nbytes(cache)


def psm_decode(p: int, n: int) -> tuple[float, int, int]:
  cfg = PSMConfig(vocab_size=V, chunk_size=C, embed_dim=D, num_heads=H, agg_layers=L, inf_layers=L,
                  max_len=p + n + 2 * C)
  model = TransformerPSM(cfg)
  params = model.init(jax.random.key(0), jnp.zeros((1, C), jnp.int32))['params']
  dec = StreamingDecoder(model, params, batch_size=1)
  x = jax.random.normal(jax.random.key(1), (1, C, D))
  for _ in range(p // C):  # The context: p / c chunk encodings through the counter.
    dec.counter.push(x)
  dec.num_tokens = p // C * C
  tok = jnp.zeros((1,), jnp.int32)
  for _ in range(C):  # Warm-up: one full chunk (compiles prefill, step, agg).
    jax.block_until_ready(dec.step(tok))
  times = []
  for _ in range(max(n, C)):
    start = time.perf_counter()
    jax.block_until_ready(dec.step(tok))
    times.append(time.perf_counter() - start)
  inf_cache = nbytes(dec._zero_cache)  # pylint: disable=protected-access
  return float(np.mean(times)), dec.state_bytes() + inf_cache, dec.counter.num_roots


def main(argv):
  del argv
  print(f'backend={jax.default_backend()}; d={D}, heads={H}, layers={L}, PSM c={C}; batch 1')
  print('| position | Transformer ms/token | Transformer state KB | GLA ms/token | GLA state KB | '
        'PSM ms/token (mean over a chunk) | PSM state KB | PSM stored roots |')
  print('|---|---|---|---|---|---|---|---|')
  for p in (int(x) for x in _POSITIONS.value):
    tt, tm = lm_decode('attention', p, _TOKENS.value)
    gt, gm = lm_decode('gla', p, _TOKENS.value)
    pt, pm, roots = psm_decode(p, _TOKENS.value)
    print(f'| {p} | {1e3 * tt:.2f} | {tm / 1024:.0f} | {1e3 * gt:.2f} | {gm / 1024:.0f} | {1e3 * pt:.2f} | '
          f'{pm / 1024:.0f} | {roots} |', flush=True)


if __name__ == '__main__':
  app.run(main)
