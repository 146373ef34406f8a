r"""Training throughput of the jaxlab LM step next to the same model in plain PyTorch (CPU), one run.

  pip install -e ".[bench]"   # torch==2.13.0, CPU build
  python -m experiments.benchmarks.lm_throughput --steps=20

Both sides train the model of experiments/lm/configs/default.py (Llama-style: RMSNorm, RoPE, SwiGLU,
GQA, tied embeddings) with AdamW on the same batch shape, fp32. Model FLOPs use one formula for both
(jaxlab.train.flops, PaLM convention); MFU divides by the highest fp32 matmul peak measured in the run
(numpy's, jax's or torch's, all printed), the same denominator for both rows. Prints a table and the
jaxlab / PyTorch ratio.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from experiments.lm.configs import default as lm_default
from jaxlab.nn.lm import transformer
from jaxlab.train import flops as flops_lib
from jaxlab.train import metrics

_STEPS = flags.DEFINE_integer("steps", 20, "timed steps per framework")
_WARMUP = flags.DEFINE_integer("warmup", 3, "untimed steps first (compilation, allocator warm-up)")
_BATCH = flags.DEFINE_integer("batch", 0, "batch size (0 = the LM default config's)")
_SEQ = flags.DEFINE_integer("seq_len", 0, "sequence length (0 = the LM default config's)")


def model_config(vocab: int, seq_len: int) -> transformer.TransformerConfig:
  m = lm_default.get_config().model
  return transformer.llama_config(vocab_size=vocab, num_layers=m.num_layers, embed_dim=m.embed_dim,
                                  num_heads=m.num_heads, num_kv_heads=m.num_kv_heads, mlp_dim=m.mlp_dim,
                                  max_len=seq_len, rope_base=m.rope_base, tie_embeddings=True)


def time_steps(step, n: int, warmup: int) -> float:
  for _ in range(warmup):
    step()
  best = []
  for _ in range(n):
    t0 = time.perf_counter()
    step()
    best.append(time.perf_counter() - t0)
  return float(np.median(best))


def jax_train_timing(model, params, tokens, n: int, warmup: int, lr: float = 1e-3) -> tuple[float, float]:
  """(median seconds of a jitted AdamW train step on next-token loss over ``tokens`` [batch, seq + 1], the
  loss at the last step). Also used by psm_gla_throughput."""
  tx = optax.adamw(lr, weight_decay=0.1)
  opt = tx.init(params)

  def loss_fn(p):
    logits = model.apply({"params": p}, tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

  @jax.jit
  def step(p, o):
    loss, g = jax.value_and_grad(loss_fn)(p)
    u, o = tx.update(g, o, p)
    return optax.apply_updates(p, u), o, loss

  state = [params, opt, None]

  def run():
    p, o, loss = step(state[0], state[1])
    state[:] = [p, o, loss.block_until_ready()]

  return time_steps(run, n, warmup), float(state[2])


def jax_step_time(cfg, batch: int, seq: int, n: int, warmup: int) -> float:
  model = transformer.DecoderLM(cfg)
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, cfg.vocab_size, (batch, seq + 1)), jnp.int32)
  params = model.init(jax.random.PRNGKey(0), tokens[:, :-1])["params"]
  return jax_train_timing(model, params, tokens, n, warmup)[0]


def torch_train_timing(model, tokens, n: int, warmup: int) -> tuple[float, float]:
  """Median seconds of an eager PyTorch AdamW(lr 1e-3, wd 0.1) next-token step on `tokens` [batch, seq + 1]
  (a torch int64 tensor), and the loss of the last step."""
  import torch  # pylint: disable=import-outside-toplevel
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
  last = [None]

  def run():
    logits = model(tokens[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    last[0] = loss.detach()

  return time_steps(run, n, warmup), float(last[0])


def torch_step_time(cfg, batch: int, seq: int, n: int, warmup: int) -> float:
  import torch  # pylint: disable=import-outside-toplevel
  from experiments.benchmarks import torch_llama  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  model = torch_llama.LlamaLM(cfg, seq)
  return torch_train_timing(model, torch.randint(0, cfg.vocab_size, (batch, seq + 1)), n, warmup)[0]


def host_matmul_peak(matmul, a, n: int = 2048) -> float:
  """Best-of-5 FLOP/s of ``matmul(a, a)`` for an n×n fp32 array (numpy and torch run synchronously)."""
  matmul(a, a)
  best = math.inf
  for _ in range(5):
    t0 = time.perf_counter()
    matmul(a, a)
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best


def main(argv):
  del argv
  lm = lm_default.get_config()
  batch, seq = _BATCH.value or lm.batch_size, _SEQ.value or lm.data.seq_len
  cfg = model_config(lm.data.vocab_size, seq)
  flops_per_step = flops_lib.lm_train_flops_per_token(cfg, seq) * batch * seq
  peaks = {"numpy": host_matmul_peak(np.matmul, np.ones((2048, 2048), np.float32)),
           "jax": metrics.measure_matmul_peak()}
  t_jax = jax_step_time(cfg, batch, seq, _STEPS.value, _WARMUP.value)
  rows = [("jaxlab (jax.jit, flax)", t_jax, peaks["jax"])]
  try:
    import torch  # pylint: disable=import-outside-toplevel
    peaks["torch"] = host_matmul_peak(torch.matmul, torch.ones(2048, 2048))
    rows.append(("PyTorch 2.13 eager", torch_step_time(cfg, batch, seq, _STEPS.value, _WARMUP.value),
                 peaks["torch"]))
  except ImportError:
    print("torch is not installed: pip install -e '.[bench]' for the side-by-side row")
  print(f"\nLM train step: {cfg.num_layers} layers, d={cfg.embed_dim}, heads {cfg.num_heads}/{cfg.num_kv_heads}, "
        f"mlp {cfg.mlp_dim}, vocab {cfg.vocab_size}, batch {batch} × seq {seq}; "
        f"{flops_per_step / 1e9:.1f} model GFLOP/step; {jax.device_count()} {jax.devices()[0].platform} device(s)")
  print("fp32 matmul peak (n=2048): " + ", ".join(f"{k} {v / 1e9:.1f} GFLOP/s" for k, v in peaks.items()))
  best = max(peaks, key=peaks.get)
  print(f"\n| framework | step (ms, median of {_STEPS.value}) | tokens/s | model GFLOP/s | MFU vs {best}'s peak "
        f"({peaks[best] / 1e9:.1f} GFLOP/s, the highest measured) |")
  print("|---|---|---|---|---|")
  for name, t, _ in rows:
    print(f"| {name} | {1e3 * t:.1f} | {batch * seq / t:,.0f} | {flops_per_step / t / 1e9:.1f} | "
          f"{100 * flops_per_step / t / peaks[best]:.1f}% |")
  if len(rows) == 2:
    print(f"\njaxlab / PyTorch throughput ratio: {rows[1][1] / rows[0][1]:.2f}×")


if __name__ == "__main__":
  app.run(main)
