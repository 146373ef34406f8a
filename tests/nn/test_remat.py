"""Rematerialisation of DecoderLM Blocks: same params, same gradients (to fp32 reassociation: XLA fuses
the recomputed forward differently, seen max |diff| 1.3e-7)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.lm import transformer


def _grads(remat):
  cfg = transformer.TransformerConfig(vocab_size=32, num_layers=2, embed_dim=16, num_heads=2,
                                      mlp_dim=32, max_len=16, remat=remat)
  model = transformer.DecoderLM(cfg)
  tokens = jax.random.randint(jax.random.PRNGKey(1), (2, 8), 0, 32)
  params = model.init(jax.random.PRNGKey(0), tokens)['params']

  def loss(p):
    logits = model.apply({'params': p}, tokens)
    return -jnp.mean(jax.nn.log_softmax(logits)[..., 0])

  return params, jax.jit(jax.grad(loss))(params)


def test_remat_same_tree_and_grads():
  p0, g0 = _grads('none')
  for remat in ('full', 'dots_with_no_batch_dims_saveable'):
    p1, g1 = _grads(remat)
    paths = lambda p: [k for k, _ in jax.tree_util.tree_flatten_with_path(p)[0]]
    assert paths(p0) == paths(p1)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g0, g1)


def test_remat_bad_name():
  with pytest.raises(ValueError, match='remat'):
    transformer.TransformerConfig(vocab_size=8, num_layers=1, embed_dim=8, num_heads=2, remat='bogus')
