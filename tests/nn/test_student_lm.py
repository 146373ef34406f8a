"""StudentLM: the hashed student embedding sits at position 0 (its token id ignored), changes the logits, carries
no loss of its own; the 64-d layer is the probed one."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn.lm import student_lm as slm
from jaxlab.nn.lm import transformer


def _model():
  cfg = transformer.gpt2_config(vocab_size=50, num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, max_len=12)
  return slm.StudentLM(cfg, num_buckets=32)


def test_student_vector_at_position_zero():
  m = _model()
  # rows 0 and 1 differ only in the (ignored) id at position 0; rows 2 and 3 are other students
  toks = jnp.array([[3, 5, 7, 9], [4, 5, 7, 9], [4, 5, 7, 9], [4, 5, 7, 9]], jnp.int32)
  ids = jnp.array([1, 1, 2, 3], jnp.int32)
  params = jax.eval_shape(m.init, jax.random.key(0), toks, ids)['params']
  assert set(params) == {'student', 'lm'} and set(params['student']) == {'hidden', 'out'}
  assert params['student']['hidden']['kernel'].shape == (32, slm.STUDENT_HIDDEN)

  @jax.jit
  def run(key):
    p = m.init(key, toks, ids)['params']
    return m.apply({'params': p}, toks, ids), m.apply({'params': p}, ids, method=lambda mm, i: mm.student_features(i))

  logits, feats = run(jax.random.key(0))
  assert logits.shape == (4, 4, 50)
  np.testing.assert_allclose(logits[0], logits[1], atol=1e-6)  # the id at position 0 is ignored
  assert not np.allclose(logits[1], logits[2], atol=1e-4)       # another student, other predictions
  assert feats.shape == (4, slm.STUDENT_HIDDEN) and bool(jnp.all(feats >= 0))
  assert not np.allclose(feats[2], feats[3])


def test_lm_loss_skips_position_zero_and_padding():
  logits = jnp.zeros((1, 4, 10))
  toks = jnp.array([[0, 1, 2, 3]])
  nll, n = slm.lm_loss(logits, toks, jnp.array([[1., 1., 1., 0.]]))
  assert float(n) == 2.0 and np.isclose(float(nll), 2 * np.log(10))


def test_hash_is_stable():
  assert slm.hash_student('student_0_0001', 2048) == slm.hash_student('student_0_0001', 2048)
  assert 0 <= slm.hash_student('x', 7) < 7
