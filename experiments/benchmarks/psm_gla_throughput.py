r"""Training throughput of a GLA language model: jaxlab's chunkwise form vs plain PyTorch (same algorithm), CPU.

  pip install -e ".[bench]"   # torch==2.13.0, CPU build
  python -m experiments.benchmarks.psm_gla_throughput --steps=10 --warmup=2

Both sides train the same model from the same initial weights on the same batch: jaxlab's
`DecoderLM(llama_config(mixer='gla'))` (pre-norm RMSNorm, SwiGLU, tied embeddings; GLA mixers computed by
`scans.gated_linear_attention(form='chunkwise')`) as one `jax.jit` step, and
experiments/benchmarks/torch_gla.py in eager PyTorch 2.13 (the same chunkwise algorithm, layer for layer).
One step = forward, backward and an AdamW update, fp32, in one process, median of the timed steps after
warm-up (lm_throughput.time_steps). The losses of both sides after all steps are printed: they must agree
to fp32 rounding (tests/psm/test_psm_torch_gla.py checks loss, gradients and one AdamW step exactly).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import linen as nn

from experiments.benchmarks import lm_throughput
from jaxlab.nn.lm import transformer
from jaxlab.train import metrics

# --steps, --warmup, --batch and --seq_len are lm_throughput's flags (batch / seq_len 0 -> 16 x 256 here).
FLAGS = flags.FLAGS
_CHUNK = flags.DEFINE_integer('gla_chunk', 64, 'chunk length of the chunkwise GLA form')
_LAYERS = flags.DEFINE_integer('gla_layers', 4, 'GLA blocks')
_DIM = flags.DEFINE_integer('gla_dim', 192, 'residual width')
_HEADS = flags.DEFINE_integer('gla_heads', 4, 'GLA heads (head dim = width / heads; state head_dim²)')
_VOCAB = flags.DEFINE_integer('gla_vocab', 2048, 'vocabulary')
_SKIP_TORCH = flags.DEFINE_bool('skip_torch', False, 'time only the jaxlab side')


def gla_config(chunk: int) -> transformer.TransformerConfig:
  return transformer.llama_config(vocab_size=_VOCAB.value, num_layers=_LAYERS.value, embed_dim=_DIM.value,
                                  num_heads=_HEADS.value, num_kv_heads=None, mlp_dim=512,
                                  max_len=FLAGS.seq_len or 256,
                                  mixer='gla', scan_form='chunkwise', scan_chunk_size=chunk, tie_embeddings=True)


def torch_side(cfg, params, tokens: np.ndarray, steps: int, warmup: int) -> tuple[float, float]:
  import torch  # pylint: disable=import-outside-toplevel
  from experiments.benchmarks import torch_gla  # pylint: disable=import-outside-toplevel
  model = torch_gla.GLALM(cfg)
  torch_gla.load_jax_params(model, params)
  return lm_throughput.torch_train_timing(model, torch.from_numpy(tokens.astype(np.int64)), steps, warmup)


def main(argv):
  del argv
  start = time.time()
  cfg = gla_config(_CHUNK.value)
  batch, seq, steps, warmup = FLAGS.batch or 16, FLAGS.seq_len or 256, FLAGS.steps, FLAGS.warmup
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq + 1)).astype(np.int32)
  model = transformer.DecoderLM(cfg)
  params = nn.unbox(model.init(jax.random.PRNGKey(0), jnp.asarray(tokens[:, :-1]))['params'])
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  peaks = {'numpy': lm_throughput.host_matmul_peak(np.matmul, np.ones((2048, 2048), np.float32)),
           'jax': metrics.measure_matmul_peak()}
  rows = [('jaxlab (jax.jit, flax; scans chunkwise)',) + lm_throughput.jax_train_timing(
      model, params, jnp.asarray(tokens), steps, warmup)]
  if not _SKIP_TORCH.value:
    import torch  # pylint: disable=import-outside-toplevel
    peaks['torch'] = lm_throughput.host_matmul_peak(torch.matmul, torch.ones(2048, 2048))
    rows.append((f'PyTorch {torch.__version__} eager ({torch.get_num_threads()} threads; torch_gla.py)',)
                + torch_side(cfg, params, tokens, steps, warmup))
  print(f'\nGLA LM train step: {cfg.num_layers} layers, d={cfg.embed_dim}, {cfg.num_heads} heads of '
        f'{cfg.resolved_head_dim} (state {cfg.resolved_head_dim}x{cfg.resolved_head_dim}), SwiGLU 512, vocab '
        f'{cfg.vocab_size}, {n_params:,} params; batch {batch} x seq {seq}, chunk {cfg.scan_chunk_size}; '
        f'{jax.device_count()} {jax.devices()[0].platform} device(s)')
  print('fp32 matmul peak (n=2048): ' + ', '.join(f'{k} {v / 1e9:.1f} GFLOP/s' for k, v in peaks.items()))
  print(f'\n| implementation | step ms (median of {steps}) | tokens/s | loss after '
        f'{warmup + steps} steps |')
  print('|---|---|---|---|')
  for name, t, loss in rows:
    print(f'| {name} | {1e3 * t:.1f} | {batch * seq / t:,.0f} | {loss:.5f} |')
  if len(rows) == 2:
    print(f'\njaxlab / PyTorch throughput ratio: {rows[1][1] / rows[0][1]:.2f}x')
  print(f'wall {time.time() - start:.0f} s')


if __name__ == '__main__':
  app.run(main)
