r"""What the activation hooks cost when none is set: the plain DecoderLM forward before and after hooks existed.

A SmolLM2-135M-shaped DecoderLM (random weights; the shape is what costs) at batch 4 × 256 tokens, jitted forward,
median of `--repeats` timed calls after a warm-up, in separate processes on the same machine:
  * after, plain: `model.apply(variables, tokens)` at this checkout (hooks=None);
  * after, `hooks.run(..., hooks={})`: the hooks entry point with no hook set;
  * after, one capture: `hooks.run` capturing one middle residual (what a hook costs);
  * before: `model.apply` in a checkout of the commit before the hooks were added (`--before`, e.g. made with
    `git worktree add ../prehooks 964f5c7^`).
Also the number of HLO instructions of each compiled forward (equal counts = the same program).

  python -m experiments.benchmarks.hooks_overhead --before=../prehooks --repeats=10
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

_CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
from jaxlab.nn.lm import transformer as T
mode, repeats = sys.argv[1], int(sys.argv[2])
cfg = T.llama_config(vocab_size=49152, num_layers=30, embed_dim=576, num_heads=9, num_kv_heads=3, head_dim=64,
                     mlp_dim=1536, max_len=2048, rope_base=1e5, tie_embeddings=True)
model = T.DecoderLM(cfg)
tokens = jnp.asarray(np.random.default_rng(0).integers(0, 49152, (4, 256)), jnp.int32)
variables = jax.jit(model.init)(jax.random.key(0), tokens[:, :8])
if mode in ('plain', 'before'):
  f = jax.jit(lambda v, t: model.apply(v, t))
else:
  from jaxlab.interp import hooks as H
  hk = {} if mode == 'empty_hooks' else H.capture('layers_15/resid_post')
  f = jax.jit(lambda v, t: H.run(model, v, t, hooks=hk))
compiled = f.lower(variables, tokens).compile()
hlo_ops = sum(1 for line in compiled.as_text().splitlines() if ' = ' in line)
jax.block_until_ready(compiled(variables, tokens))
times = []
for _ in range(repeats):
  t0 = time.perf_counter(); jax.block_until_ready(compiled(variables, tokens)); times.append(time.perf_counter() - t0)
print(json.dumps({'mode': mode, 'median_ms': 1e3 * float(np.median(times)), 'min_ms': 1e3 * min(times),
                  'max_ms': 1e3 * max(times), 'hlo_ops': hlo_ops}))
"""


def _row(mode: str, repeats: int, path: str) -> dict:
  env = dict(os.environ, PYTHONPATH=path)
  out = subprocess.run([sys.executable, '-c', _CHILD, mode, str(repeats)], env=env, cwd=path, capture_output=True,
                       text=True, check=False)
  if out.returncode != 0:
    raise SystemExit(f'{mode}: exited {out.returncode}: {out.stderr.strip().splitlines()[-1:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
  import argparse  # pylint: disable=import-outside-toplevel
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('--before', required=True, help='checkout of the commit before the hooks (964f5c7^)')
  p.add_argument('--repeats', type=int, default=10)
  a = p.parse_args(argv)
  here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  if not os.path.isfile(os.path.join(a.before, 'jaxlab', 'nn', 'lm', 'transformer.py')):
    raise SystemExit(f'--before={a.before}: not a jaxlab checkout with jaxlab/nn/lm/transformer.py')
  load = os.getloadavg()[0]
  rows = [_row('before', a.repeats, a.before), _row('plain', a.repeats, here), _row('empty_hooks', a.repeats, here),
          _row('one_capture', a.repeats, here), _row('before', a.repeats, a.before)]
  print(f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, load average {load:.1f} before / '
        f'{os.getloadavg()[0]:.1f} after; SmolLM2-135M shape, batch 4 x 256, fp32, median of {a.repeats}')
  print('| forward | median ms | min ms | max ms | HLO instructions | vs before (first run) |')
  print('|---|---|---|---|---|---|')
  base = rows[0]['median_ms']
  for r in rows:
    print(f"| {r['mode']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | {r['max_ms']:.1f} | {r['hlo_ops']} | "
          f"{r['median_ms'] / base:.3f} |")


if __name__ == '__main__':
  main(sys.argv[1:])
