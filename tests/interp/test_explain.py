"""jaxlab.interp.explain on a tiny random Llama-style model: continuous-token rows put loss on the answer only
(the continuous token, its markers and the prompt carry none), the vector reaches the loss, chunk patching
with the original prompt as its own counterfactual is the identity, and the paper's metrics."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxlab.interp import explain as E
from jaxlab.nn import DecoderLM, llama_config, lora

TINY = llama_config(vocab_size=64, num_layers=3, embed_dim=32, num_heads=4, num_kv_heads=2, mlp_dim=64,
                    max_len=32, rope_base=10000.)
IDS = E.ContinuousIds(3, 4, 5)
LCFG = lora.LoraConfig(rank=4, alpha=16.)


@pytest.fixture(scope='module')
def tiny():
  model = DecoderLM(TINY)
  params = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))['params']
  adapters = lora.init_adapters(jax.random.key(1), params, LCFG)
  # non-zero B so the adapters matter
  adapters = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.key(2), x.shape), adapters)
  return model, params, adapters


def _rows(vectors):
  rows = [E.encode_example([10, 11], [12, 13, 14], [20, 21, 22, 1], v, IDS, length=16, pad_id=0) for v in vectors]
  return E.stack(rows)


def test_encode_example_masks_everything_but_the_answer():
  ex = E.encode_example([10, 11], [12, 13, 14], [20, 21, 22, 1], np.ones(32), IDS, length=16, pad_id=0)
  assert ex['tokens'][:11].tolist() == [10, 11, 3, 4, 5, 12, 13, 14, 20, 21, 22]
  assert int(ex['rep_pos']) == 3 and ex['tokens'][3] == IDS.rep
  # positions whose NEXT token is an answer token: 7 (-> 20), 8, 9, 10 (-> eos 1)
  assert np.flatnonzero(ex['loss_mask']).tolist() == [7, 8, 9, 10]
  assert ex['targets'][7:11].tolist() == [20, 21, 22, 1]
  # the continuous token, its markers and the prompt predict nothing
  assert ex['loss_mask'][:7].sum() == 0 and ex['loss_mask'][11:].sum() == 0
  assert E.encode_example([10] * 10, [12] * 5, [20] * 5, np.ones(32), IDS, length=16, pad_id=0) is None


def test_continuous_token_positions_carry_no_loss(tiny):
  model, params, adapters = tiny
  loss_fn = E.explainer_loss(model, LCFG)
  batch = _rows(np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32))
  base, _ = loss_fn({'lora': adapters}, batch, jax.random.key(0), params)
  # changing the targets at the rep / marker / prompt positions changes nothing ...
  other = dict(batch, targets=batch['targets'].copy())
  other['targets'][:, :7] = 63
  got, _ = loss_fn({'lora': adapters}, other, jax.random.key(0), params)
  np.testing.assert_allclose(got, base, rtol=1e-6)
  # ... nor does the token id under the continuous token (its embedding is replaced by the vector)
  other = dict(batch, tokens=batch['tokens'].copy())
  other['tokens'][:, 3] = 50
  got, _ = loss_fn({'lora': adapters}, other, jax.random.key(0), params)
  np.testing.assert_allclose(got, base, rtol=1e-6)
  # while an answer target does, and the vector reaches the loss through the continuous token
  other = dict(batch, targets=batch['targets'].copy())
  other['targets'][:, 8] = 63
  assert abs(float(loss_fn({'lora': adapters}, other, jax.random.key(0), params)[0]) - float(base)) > 1e-4
  g = jax.grad(lambda v: loss_fn({'lora': adapters}, dict(batch, vector=v), jax.random.key(0), params)[0])(
      jnp.asarray(batch['vector']))
  assert float(jnp.abs(g).sum()) > 0


def test_projector_path_maps_vectors(tiny):
  model, params, adapters = tiny
  batch = _rows(np.ones((2, 7), np.float32))           # target width 7 != explainer width 32
  batch['chunk'] = np.array([0, 1], np.int32)
  proj = jax.random.normal(jax.random.key(3), (2, 7, 32))
  loss_fn = E.explainer_loss(model, LCFG, lambda p, b: jnp.einsum('bi,bio->bo', b['vector'], p[b['chunk']]))
  g = jax.grad(lambda p: loss_fn({'lora': adapters, 'proj': p}, batch, jax.random.key(0), params)[0])(proj)
  assert g.shape == proj.shape and float(jnp.abs(g).sum()) > 0


def test_chunk_patch_with_own_prompt_is_identity(tiny):
  model, params, _ = tiny
  rng = np.random.default_rng(0)
  orig = rng.integers(6, 64, (4, 8)).astype(np.int32)
  pos = np.array([2, 3, 2, 5], np.int32)
  v, top_o, top_p, top_c = E.chunk_patch(model, params, orig, orig, pos, pos, [range(0, 1), range(1, 3)])
  assert v.shape == (2, 4, 32) and top_p.shape == (2, 4)
  np.testing.assert_array_equal(top_p, np.stack([top_o, top_o]))
  np.testing.assert_array_equal(top_c, top_o)
  # another prompt's state does change the patched logits' inputs: v differs from the original's
  cf = orig.copy()
  cf[np.arange(4), pos] = 60
  v2, *_ = E.chunk_patch(model, params, orig, cf, pos, pos, [range(0, 1)])
  assert not np.allclose(v2[0], v[0])


def test_label_text_and_metrics():
  assert E.label_text(' Paris', ' Paris') == 'The output would remain unchanged from <<< Paris>>>.'
  assert E.label_text(' Paris', ' Tokyo') == 'The most likely output would change to <<< Tokyo>>>.'
  assert E.normalise('  The output  would remain unchanged from <<< Paris>>>. ') == \
      'The output would remain unchanged from <<< Paris>>>'
  refs = [E.label_text('a', 'a'), E.label_text('a', 'b'), E.label_text('c', 'd'), E.label_text('e', 'e')]
  preds = [refs[0] + ' ', E.label_text('a', 'x'), 'garbage', E.label_text('e', 'f')]
  s = E.score(preds, refs)
  assert s['exact_match'] == 0.25 and s['exact_match_unchanged'] == 0.5 and s['exact_match_changed'] == 0.
  assert s['class_acc_changed'] == 0.5 and s['class_acc_unchanged'] == 0.5
  # changed: tp 1 (row 1), fp 1 (row 3), fn 1 (row 2) -> F1 0.5; unchanged: tp 1, fn 1 -> 2/3
  assert s['macro_f1'] == pytest.approx((0.5 + 2 / 3) / 2)


def test_random_orthogonal():
  q = E.random_orthogonal(16, 0)
  np.testing.assert_allclose(q @ q.T, np.eye(16), atol=1e-5)
  np.testing.assert_array_equal(q, E.random_orthogonal(16, 0))
