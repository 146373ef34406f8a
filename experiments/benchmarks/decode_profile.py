"""Where a `jaxlab.nn.lm.generate` call spends its time on CPU: per-op trace, grouped by what the op computes.

python -m experiments.benchmarks.decode_profile --model=smollm2 --batches=1,32 --new_tokens=32 --repeats=2

Runs greedy `generate` on the real model (SmolLM2-135M-Instruct or Gemma-3-270M, fp32, the 18-token chat
prompt of decode_lm repeated `batch` times), then `--repeats` more calls under `jax.profiler.trace`. Each
XLA:CPU thunk in the trace is mapped to its HLO instruction's `op_name` (from an HLO dump of the compiled
program) and summed into coarse groups, separately for the prefill and the decode loop (`while/body`):
mlp (the three MLP projections), qkvo (attention projections), attn (scores, softmax, values), cache (KV-cache
writes and the layout copies around them), head (the vocabulary projection), sample (argmax and log-prob),
other. Times are per call (mean over the traced calls); the sum of op times can exceed wall time when
XLA runs ops on both cores at once.
"""

import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

_DUMP = tempfile.mkdtemp(prefix='decode_profile_hlo_')
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + f' --xla_dump_to={_DUMP} --xla_dump_hlo_as_text').strip()

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

import jax  # noqa: E402

from experiments.benchmarks import decode_lm  # noqa: E402
from jaxlab.nn import DecoderLM  # noqa: E402
from jaxlab.nn.lm.generate import generate, left_pad  # noqa: E402

# --model, --batches, --new_tokens, --repeats (traced calls per batch) are decode_lm's flags.
_MODEL, _BATCHES, _NEW, _REPEATS = decode_lm._MODEL, decode_lm._BATCHES, decode_lm._NEW, decode_lm._REPEATS  # pylint: disable=protected-access
_BUCKET = flags.DEFINE_integer('cache_bucket', 256, "generate's cache_bucket.")

GROUPS = (('sample', r'argmax|log_softmax|_greedy|_token_logprob|reduce_max|jit\(_where\)|/reduce$|reduce_min'),
          ('head', r'embed\.attend|lm_head'), ('mlp', r'/mlp/'), ('qkvo', r'/attn/(query|key|value|out)/'),
          ('cache', r'_update_cache|dynamic_update_slice|_grow_cache|/pad'), ('attn', r'/attn/'))


def group(op_name: str) -> str:
  where = 'decode' if 'while/body' in op_name else 'prefill'
  for name, pattern in GROUPS:
    if re.search(pattern, op_name):
      return f'{where} {name}'
  return f'{where} other'


def op_names() -> dict[str, str]:
  """HLO instruction name -> op_name metadata, from every after-optimisation dump so far."""
  out = {}
  for path in glob.glob(os.path.join(_DUMP, '*after_optimizations.txt')):
    with open(path) as f:
      for line in f:
        m = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]*)"', line)
        if m:
          out[m.group(1)] = m.group(2)
  return out


def main(argv):
  del argv
  cfg, params, _, ids, pad = decode_lm.load(_MODEL.value)
  model = DecoderLM(cfg)
  print(f'{_MODEL.value}, {decode_lm.cpu_model()}, load average {os.getloadavg()[0]:.1f}; {_NEW.value} new tokens, '
        f'prompt {len(ids)}, cache_bucket {_BUCKET.value}; ms per call')
  for b in map(int, _BATCHES.value):
    toks, mask = left_pad([ids] * b, pad_id=pad)
    run = lambda: jax.block_until_ready(generate(model, params, toks, mask, max_new_tokens=_NEW.value,  # noqa: E731
                                                 cache_bucket=_BUCKET.value))
    run()
    trace_dir = tempfile.mkdtemp(prefix='decode_profile_trace_')
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      walls = []
      for _ in range(_REPEATS.value):
        t = time.perf_counter()
        run()
        walls.append(time.perf_counter() - t)
    with gzip.open(glob.glob(os.path.join(trace_dir, '**', '*.trace.json.gz'), recursive=True)[0]) as f:
      events = [e for e in json.load(f)['traceEvents'] if e.get('ph') == 'X']
    names = op_names()
    totals = collections.Counter()
    for e in events:
      if e['name'] in names:
        totals[group(names[e['name']])] += e['dur'] / 1e3 / _REPEATS.value
    op_total = sum(totals.values())
    print(f'\nbatch {b}: wall {np.median(walls) * 1e3:.0f} ms per call, op time {op_total:.0f} ms, '
          f'load average {os.getloadavg()[0]:.1f}')
    print('| group | ms per call | share |\n|---|---|---|')
    for k, v in sorted(totals.items(), key=lambda kv: -kv[1]):
      print(f'| {k} | {v:.1f} | {100 * v / op_total:.1f}% |')


if __name__ == '__main__':
  app.run(main)
