"""Faithful head replacement on a small random Llama-style LM."""

import numpy as np

import jax
import jax.numpy as jnp
import flax.linen as nn

from jaxlab.interp import capture, replace
from jaxlab.nn import DecoderLM, llama_config

CFG = llama_config(vocab_size=50, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2,
                   mlp_dim=64, max_len=32)
IDS = [[1, 5, 9, 5, 9, 3, 7], [2, 4, 6, 8, 10, 12]]


def _model():
  model = DecoderLM(CFG)
  return model, nn.unbox(model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params'])


def test_own_attention_leaves_logits_unchanged():
  model, params = _model()
  att = capture.capture_attention(model, params, IDS, bucket=8, batch_size=2)
  rep = replace.HeadReplacer(model, params, IDS, bucket=8)
  every = {(l, h): [a[l, h] for a in att] for l in range(2) for h in range(4)}
  lp = rep.logprobs(every)
  for r, n in enumerate(rep.lengths):
    np.testing.assert_allclose(lp[r, :n], rep.base[r, :n], atol=1e-5)
  assert rep.evaluate(every)['kl'] < 1e-8


def test_override_changes_only_that_head():
  """With layer 1 head 2 replaced, the layer's output moves by exactly (P - A) V W_out of that head."""
  model, params = _model()
  tokens = jnp.asarray([IDS[0]])
  n = tokens.shape[1]
  _, st = model.apply({'params': params}, tokens, mutable=['intermediates'], return_hidden=True,
                      capture_intermediates=lambda mdl, _: mdl.name == 'attn')
  inter = st['intermediates']
  a = inter['layers_1']['attn']['attention_weights'][0][0]        # [H, n, n]
  p = np.tril(np.ones((n, n))); p /= p.sum(-1, keepdims=True)      # uniform causal
  w = np.zeros((2, 1, 4, n, n), np.float32)
  w[1, 0, 2] = p
  use = np.zeros((2, 4), bool); use[1, 2] = True
  overrides = [(jnp.asarray(w[i]), jnp.asarray(use[i])) for i in range(2)]
  _, st2 = model.apply({'params': params}, tokens, attention_overrides=overrides,
                       mutable=['intermediates'], capture_intermediates=lambda mdl, _: mdl.name == 'attn')
  inter2 = st2['intermediates']
  # Layer 0 untouched; layer 1 sees the same input, so its own captured weights are unchanged.
  np.testing.assert_allclose(inter2['layers_0']['attn']['__call__'][0], inter['layers_0']['attn']['__call__'][0])
  np.testing.assert_allclose(inter2['layers_1']['attn']['attention_weights'][0][0], a, atol=1e-6)
  # The change in layer 1's attention output is that head's contribution only.
  ap = params['layers_1']['attn']
  delta = inter2['layers_1']['attn']['__call__'][0] - inter['layers_1']['attn']['__call__'][0]
  # Reconstruct: input to attn = attn_norm(residual after layer 0), identical in both runs.
  from jaxlab.nn.layers import RMSNorm
  resid = _residual_after_layer0(model, params, tokens)
  x_norm = RMSNorm(epsilon=CFG.norm_eps).apply({'params': params['layers_1']['attn_norm']}, resid)
  v = jnp.einsum('bte,ekd->btkd', x_norm, ap['value']['kernel'])[0]   # [n, kv, d]
  head_v = v[:, 2 // 2]                                                # GQA: head 2 reads kv head 1
  expect = jnp.einsum('ts,sd,de->te', jnp.asarray(p) - a[2], head_v, ap['out']['kernel'][2])
  np.testing.assert_allclose(delta[0], expect, atol=1e-4)


def _residual_after_layer0(model, params, tokens):
  _, st = model.apply({'params': params}, tokens, mutable=['intermediates'],
                      capture_intermediates=lambda mdl, _: mdl.name == 'layers_0')
  return st['intermediates']['layers_0']['__call__'][0]
