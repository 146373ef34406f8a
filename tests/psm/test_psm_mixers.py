"""Affine mixers: parallel == chunkwise == sequential == one-token decode steps, values and gradients.

Odd length (11) and a chunk size (4) that does not divide it. The three forms of each mixer are compiled
in one jit to keep the suite fast; mixers beyond the default three run with `-m slow`.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn import DecoderLM, TransformerConfig, init_cache
from jaxlab.nn.psm import mixers

FORMS = ('sequential', 'parallel', 'chunkwise')
FAST = ('gla', 'mlstm')
ALL = [name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in mixers.MIXERS]


def _close(a, b, tol=1e-5):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=tol, atol=tol)


@pytest.mark.parametrize('name', ALL)
def test_mixer_forms_and_decode_agree(name):
  t, c, d = 11, 4, 16
  make = lambda form: mixers.MIXERS[name](embed_dim=d, num_heads=2, head_dim=4, form=form, chunk_size=c)
  x = jax.random.normal(jax.random.key(1), (2, t, d))
  params = make('sequential').init(jax.random.key(0), x)['params']
  # Perturb every parameter so that no gate sits at an init-time special value.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = jax.tree.unflatten(tree, [l + 0.1 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])

  def loss(p, form):
    return jnp.sum(jnp.sin(make(form).apply({'params': p}, x)))

  @jax.jit
  def all_forms(p):
    return {f: (make(f).apply({'params': p}, x), jax.grad(loss)(p, f)) for f in FORMS}
  outs = all_forms(params)

  dec = make('sequential')
  cache = jax.eval_shape(lambda: dec.init(jax.random.key(0), x[:, :1], decode=True))['cache']
  cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache)
  step = jax.jit(lambda p, c, xt: dec.apply({'params': p, 'cache': c}, xt, decode=True, mutable=['cache']))
  ys = []
  for i in range(t):
    y, upd = step(params, cache, x[:, i:i + 1])
    cache = upd['cache']
    ys.append(y)
  decoded = jnp.concatenate(ys, axis=1)

  for f in FORMS:
    _close(outs[f][0], decoded)
  for f in FORMS[1:]:
    jax.tree.map(lambda g1, g2: _close(g1, g2, 1e-4), outs['sequential'][1], outs[f][1])


def test_mixer_bad_inputs():
  m = mixers.GLA(embed_dim=8, num_heads=2, head_dim=4, chunk_size=0)
  with pytest.raises(ValueError, match='chunk_size'):
    m.init(jax.random.key(0), jnp.ones((1, 3, 8)))
  m = mixers.GLA(embed_dim=8, num_heads=2, head_dim=4)
  with pytest.raises(ValueError, match='expects x'):
    m.init(jax.random.key(0), jnp.ones((1, 3, 6)))
  with pytest.raises(ValueError, match='padding'):
    m.init(jax.random.key(0), jnp.ones((1, 3, 8)), padding=jnp.ones((1, 3), bool))
  with pytest.raises(ValueError, match='state shapes'):
    z = jnp.zeros((1, 3, 2, 4))
    mixers.mlstm_scan(z, z, z, z[..., 0], z[..., 0], initial_state=(jnp.zeros((1, 2, 4, 4)),
                                                                   jnp.zeros((1, 2, 4)), jnp.zeros((2,))))


def test_decoder_lm_with_gla_mixer_decodes_like_training():
  cfg = TransformerConfig(vocab_size=11, num_layers=2, embed_dim=16, num_heads=2, max_len=32,
                          mixer='gla', scan_form='chunkwise', scan_chunk_size=4)
  model = DecoderLM(cfg)
  tokens = jax.random.randint(jax.random.key(0), (2, 9), 0, 11)
  params = model.init(jax.random.key(1), tokens)['params']
  full = jax.jit(lambda p, t: model.apply({'params': p}, t))(params, tokens)
  cache = init_cache(model, 2)
  step = jax.jit(functools.partial(model.apply, decode=True, mutable=['cache']))
  # Prefill 4 tokens, then one at a time.
  logits, upd = step({'params': params, 'cache': cache}, tokens[:, :4])
  outs = [logits]
  cache = upd['cache']
  for i in range(4, 9):
    logits, upd = step({'params': params, 'cache': cache}, tokens[:, i:i + 1])
    cache = upd['cache']
    outs.append(logits)
  _close(full, jnp.concatenate(outs, axis=1), 1e-4)
  with pytest.raises(ValueError, match='mixer'):
    TransformerConfig(vocab_size=11, num_layers=1, embed_dim=16, num_heads=2, mixer='s4')
