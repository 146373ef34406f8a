"""Transformer-PSM: training logits (Blelloch scan) == streaming decode logits (binary counter + KV cache)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.psm.transformer_psm import PSMConfig, StreamingDecoder, TransformerPSM


@pytest.mark.parametrize('c,t', [(3, 11), pytest.param(1, 9, marks=pytest.mark.slow)])
def test_training_logits_equal_streaming_decode(c, t):
  cfg = PSMConfig(vocab_size=7, chunk_size=c, embed_dim=16, num_heads=2, agg_layers=1, inf_layers=1,
                  out_size=5, max_len=t)
  model = TransformerPSM(cfg)
  tokens = jax.random.randint(jax.random.key(0), (2, t), 0, 7)
  params = model.init(jax.random.key(1), tokens)['params']
  logits = jax.jit(model.apply)({'params': params}, tokens)
  assert logits.shape == (2, t, 5)
  dec = StreamingDecoder(model, params, batch_size=2)
  streamed = jnp.stack([dec.step(tokens[:, i]) for i in range(t)], axis=1)
  np.testing.assert_allclose(np.asarray(logits), np.asarray(streamed), rtol=1e-4, atol=1e-4)
  n_chunks = t // c
  assert dec.counter.num_roots == bin(n_chunks).count('1') <= int(np.ceil(np.log2(n_chunks + 1)))
  with pytest.raises(ValueError, match='max_len'):
    dec.step(tokens[:, 0])


def test_causality_and_bad_config():
  cfg = PSMConfig(vocab_size=7, chunk_size=2, embed_dim=16, num_heads=2, agg_layers=1, inf_layers=1)
  model = TransformerPSM(cfg)
  tokens = jax.random.randint(jax.random.key(0), (1, 7), 0, 7)
  params = model.init(jax.random.key(1), tokens)['params']
  f = jax.jit(model.apply)
  a = f({'params': params}, tokens)
  b = f({'params': params}, tokens.at[:, 5].set((tokens[:, 5] + 1) % 7))
  np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)  # Future tokens never leak.
  assert not np.allclose(a[:, 5:], b[:, 5:])
  for bad in (0, -1):
    with pytest.raises(ValueError, match='chunk_size'):
      PSMConfig(vocab_size=7, chunk_size=bad)
  dec = StreamingDecoder(model, params, batch_size=1)
  with pytest.raises(ValueError, match='shape'):
    dec.step(jnp.zeros((3,), jnp.int32))
