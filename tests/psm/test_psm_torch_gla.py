"""The GLA throughput benchmark compares like with like: jaxlab's GLA LM (chunkwise) and the plain-PyTorch one
(experiments/benchmarks/torch_gla.py) give the same loss, gradients and AdamW step on the same weights and
batch (fp32). Odd length 11 with chunk 4 (the last chunk is padded)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from jaxlab.nn.lm import transformer

torch = pytest.importorskip('torch')
torch_gla = pytest.importorskip('experiments.benchmarks.torch_gla')


def test_torch_gla_step_equals_jaxlab():
  cfg = transformer.llama_config(vocab_size=50, num_layers=2, embed_dim=32, num_heads=2, num_kv_heads=None,
                                 mlp_dim=48, max_len=16, mixer='gla', scan_form='chunkwise', scan_chunk_size=4)
  model = transformer.DecoderLM(cfg)
  tokens = np.random.default_rng(0).integers(0, 50, (3, 12))
  params = nn.unbox(model.init(jax.random.key(0), jnp.asarray(tokens[:, :-1]))['params'])

  def loss_fn(p):
    logits = model.apply({'params': p}, jnp.asarray(tokens[:, :-1]))
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(tokens[:, 1:])).mean()

  loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
  # Adam's first step is ~lr·sign(g), so fp32 gradient noise (~1e-6) moves small-|g| entries by ~1e-3·lr: the
  # updated parameters must agree to 1% of lr (eps 1e-4 keeps the step well-conditioned where g ~ 0).
  tx = optax.adamw(1e-2, eps=1e-4, weight_decay=0.1)
  new_params = optax.apply_updates(params, tx.update(grads, tx.init(params), params)[0])

  tm = torch_gla.GLALM(cfg)
  torch_gla.load_jax_params(tm, params)
  tok = torch.from_numpy(tokens)
  t_loss = torch.nn.functional.cross_entropy(tm(tok[:, :-1]).reshape(-1, 50), tok[:, 1:].reshape(-1))
  t_loss.backward()
  np.testing.assert_allclose(float(t_loss.detach()), float(loss), rtol=1e-6)
  # Gradients and the AdamW step, compared through the same jax -> torch parameter mapping.
  g_model, p_model = torch_gla.GLALM(cfg), torch_gla.GLALM(cfg)
  torch_gla.load_jax_params(g_model, grads)
  torch_gla.load_jax_params(p_model, new_params)
  opt = torch.optim.AdamW(tm.parameters(), lr=1e-2, weight_decay=0.1, eps=1e-4)
  opt.step()
  named_grads = dict(g_model.named_parameters())
  for name, p in dict(tm.named_parameters()).items():
    np.testing.assert_allclose(p.grad.numpy(), named_grads[name].detach().numpy(), rtol=1e-4, atol=1e-6,
                               err_msg=name)
  for name, p in dict(p_model.named_parameters()).items():
    np.testing.assert_allclose(dict(tm.named_parameters())[name].detach().numpy(), p.detach().numpy(),
                               rtol=0, atol=1e-4, err_msg=name)  # 1% of lr.
