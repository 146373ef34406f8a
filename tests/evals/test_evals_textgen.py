"""Generative perplexity (token-weighted) and per-sample unigram entropy against direct computations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.evals import textgen
from jaxlab.nn.lm import transformer


def test_entropy():
  assert textgen.sample_entropy([4, 4, 4]) == 0.0
  np.testing.assert_allclose(textgen.sample_entropy([1, 2, 3, 4]), np.log(4))
  np.testing.assert_allclose(textgen.sample_entropy([1, 1, 2, 2]), np.log(2))
  np.testing.assert_allclose(textgen.mean_entropy([[1, 2, 3, 4], [5, 5]]), np.log(4) / 2)
  with pytest.raises(ValueError):
    textgen.mean_entropy([])


@pytest.fixture(scope='module')
def lm():
  cfg = transformer.llama_config(vocab_size=23, num_layers=1, embed_dim=16, num_heads=2, num_kv_heads=1,
                                 mlp_dim=32, max_len=64)
  model = transformer.DecoderLM(cfg)
  params = nn.unbox(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params'])
  return model, params


@pytest.mark.parametrize('prefix', [(), (22,)])
def test_scorer_and_token_weighted_perplexity(lm, prefix):
  model, params = lm
  seqs = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], [7], [9, 9, 9, 9]]
  scorer = textgen.LMScorer(model, params, prefix_ids=prefix, batch_size=3, bucket=8)
  nll, cnt = scorer.score(seqs)
  apply = jax.jit(lambda x: model.apply({'params': params}, x))
  for i, s in enumerate(seqs):      # one unpadded sequence at a time
    full = list(prefix) + s
    logp = jax.nn.log_softmax(np.asarray(apply(jnp.asarray([full]))[0], np.float64), -1)
    ref = -sum(float(logp[j - 1, full[j]]) for j in range(max(1, len(prefix)), len(full)))
    assert cnt[i] == len(s) - (0 if prefix else 1)
    np.testing.assert_allclose(nll[i], ref, rtol=1e-4, atol=1e-5)
  texts = ['a', 'b', 'c', 'd']
  res = textgen.generative_perplexity(scorer, lambda s: seqs['abcd'.index(s)], texts)
  np.testing.assert_allclose(res.perplexity, np.exp(nll.sum() / cnt.sum()), rtol=1e-6)
  np.testing.assert_allclose(res.entropy, np.mean([textgen.sample_entropy(s) for s in seqs]))
  assert res.num_tokens == int(cnt.sum()) and res.num_samples == 4
