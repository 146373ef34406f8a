"""jaxlab.interp.interchange: the swap h <- h' (identity for h' = h, checked against an explicit replace),
I(C) with its random-partition null, the offline clusterer and explainer."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxlab.interp import hooks as H
from jaxlab.interp import interchange as X
from jaxlab.interp import patching as P
from jaxlab.nn import DecoderLM, llama_config

TINY = llama_config(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, mlp_dim=64,
                    max_len=32, rope_base=10000.)
COMPONENTS = [(0, 1), (0, 3), (1, 0), (1, 2)]


@pytest.fixture(scope='module')
def tiny():
  model = DecoderLM(TINY)
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, 64, (4, 8)).astype(np.int32)
  params = model.init(jax.random.key(0), jnp.asarray(tokens))['params']
  metric = P.logit_diff(rng.integers(0, 64, 4), rng.integers(0, 64, 4))
  return model, params, tokens, metric


def test_swap_with_itself_is_identity_and_swaps_match_explicit_replace(tiny):
  model, params, tokens, metric = tiny
  out = X.swap_ratios(model, params, tokens, metric, COMPONENTS, pairs_per_call=3, include_diagonal=True)
  r, m_clean = out['r'], out['m_clean']
  assert r.shape == (4, 4)
  np.testing.assert_allclose(np.diag(r), 1.0, rtol=1e-5)
  assert not np.allclose(r, 1.0)                       # real swaps change the metric
  # swap (1, 2) <- (0, 1) by hand: replace head 2 of layer 1's head_out with the cached o of (0, 1).
  cached = X.cache_head_outputs(model, params, tokens, COMPONENTS)
  hooks = H.replace('layers_1/attn/head_out', jnp.asarray(cached[0])[:, :, None], where=H.head_mask(4, [2]))
  logits, _ = H.run(model, {'params': params}, jnp.asarray(tokens), hooks=hooks)
  want = float(jnp.mean(metric(logits[:, -1])))
  assert out['m_swap'][3, 0] == pytest.approx(want, rel=1e-5, abs=1e-5)
  no_diag = X.swap_ratios(model, params, tokens, metric, COMPONENTS, pairs_per_call=5)
  np.testing.assert_allclose(no_diag['r'], r, rtol=1e-5, atol=1e-6)


def test_norm_matched_swap_keeps_the_replaced_heads_norm(tiny):
  model, params, tokens, metric = tiny
  out = X.swap_ratios(model, params, tokens, metric, COMPONENTS, pairs_per_call=4, include_diagonal=True,
                      match_norm=True)
  np.testing.assert_allclose(np.diag(out['r']), 1.0, rtol=1e-5)
  cached = X.cache_head_outputs(model, params, tokens, COMPONENTS)
  donor = cached[0] * np.linalg.norm(cached[3], axis=-1, keepdims=True) / np.linalg.norm(cached[0], axis=-1,
                                                                                          keepdims=True)
  hooks = H.replace('layers_1/attn/head_out', jnp.asarray(donor)[:, :, None], where=H.head_mask(4, [2]))
  logits, _ = H.run(model, {'params': params}, jnp.asarray(tokens), hooks=hooks)
  assert out['m_swap'][3, 0] == pytest.approx(float(jnp.mean(metric(logits[:, -1]))), rel=1e-4, abs=1e-5)
  plain = X.swap_ratios(model, params, tokens, metric, COMPONENTS, pairs_per_call=4)
  assert not np.allclose(plain['r'], out['r'])


def test_signed_r_cancels_over_ordered_pairs_and_fidelity_does_not():
  """With direct effects only, r(h, h') - 1 = (d_h' - d_h) / M: within any cluster the ordered pairs cancel,
  so signed I is ~0 for every partition (even the true roles); 1 - |r - 1| sees the planted roles."""
  rng = np.random.default_rng(0)
  truth = np.repeat(np.arange(3), 4)
  d = np.array([0.5, -0.3, 0.05])[truth] + 0.01 * rng.standard_normal(12)     # DLA / M per head
  r = 1 + d[None, :] - d[:, None]
  signed = X.random_partition_null(r, truth, num=1000)
  fid = X.random_partition_null(r, truth, num=1000, score='fidelity')
  assert abs(signed['I']) < 1e-9 and signed['null_std'] < 1e-9      # every partition scores 0 exactly
  assert fid['I'] > 0.3 and fid['z'] > 3 and fid['percentile'] > 99
  assert X.interchangeability(r, truth, score='fidelity') == pytest.approx(fid['I'])
  np.testing.assert_allclose(X.swap_score(np.array([0.8, 1.2, 1.0]), 'fidelity'), [0.8, 0.8, 1.0])
  fx = X.swap_main_effects(r)      # r - 1 is row + column effects (means over off-diagonal entries: ~all of it)
  assert fx['row_col_r2'] > 0.95 and fx['row_r2'] == pytest.approx(fx['col_r2'], abs=0.05)
  rows_only = np.where(np.eye(12, dtype=bool), 1.0, d[:, None] + 0 * d[None])
  assert X.swap_main_effects(rows_only)['row_r2'] == pytest.approx(1.0)
  assert X.swap_main_effects(rows_only)['col_r2'] < 0.2
  with pytest.raises(ValueError, match='score'):
    X.swap_score(r, 'abs')


def test_interchangeability_score_and_planted_structure():
  labels = [0, 0, 1, 1]
  r = np.array([[1, .9, .1, .2], [.8, 1, .3, .1], [.2, .1, 1, .7], [.1, .2, .9, 1.]])
  assert X.interchangeability(r, labels) == pytest.approx(np.mean([.9, .8, .7, .9]) - np.mean([.1, .2, .3, .1,
                                                                                              .2, .1, .1, .2]))
  assert np.isnan(X.interchangeability(r, [0, 1, 2, 3]))          # no within pair
  rng = np.random.default_rng(0)
  planted = np.repeat(np.arange(3), 4)
  big = np.where(planted[:, None] == planted[None], 0.9, 0.2) + 0.05 * rng.standard_normal((12, 12))
  res = X.random_partition_null(big, planted, num=1000)
  assert res['num'] == 1000 and len(res['null']) == 1000
  assert res['z'] > 5 and res['percentile'] > 99.5
  with pytest.raises(ValueError, match='labels'):
    X.interchangeability(big, planted[:5])


def test_random_partitions_centre_on_the_null():
  """z-scores of random partitions (same sizes) against the null average ~0 and their percentiles ~50."""
  rng = np.random.default_rng(1)
  r = 1 + 0.3 * rng.standard_normal((10, 10))
  sizes = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
  zs, pct = [], []
  for s in range(100):
    res = X.random_partition_null(r, rng.permutation(sizes), num=1000, seed=s)
    zs.append(res['z'])
    pct.append(res['percentile'])
  assert abs(np.mean(zs)) < 0.3 and 40 < np.mean(pct) < 60, (np.mean(zs), np.mean(pct))


def test_feature_clusterer_recovers_planted_roles_and_explains():
  rng = np.random.default_rng(0)
  centres = np.array([[1., 0, 2], [0, 1, -2], [0, 0, 0]])
  truth = np.repeat(np.arange(3), 5)
  feats = centres[truth] + 0.1 * rng.standard_normal((15, 3))
  comps = [(i, 0) for i in range(15)]
  got = X.FeatureClusterer().cluster(comps, feats, ['attn:IO', 'attn:S2', 'dla'])
  same = np.asarray(got)[:, None] == np.asarray(got)[None]
  np.testing.assert_array_equal(same, truth[:, None] == truth[None])      # the same partition up to names
  assert len(set(X.FeatureClusterer(k=2).cluster(comps, feats))) == 2
  with pytest.raises(ValueError, match='rows'):
    X.FeatureClusterer().cluster(comps[:3], feats)
  text = X.describe_features((9, 6), {'attn:IO': 0.7, 'attn:S2': 0.1, 'dla': 1.5, 'effect:END': -0.4})
  assert text == ('L9H6; attends from the last token mostly to IO (0.70); raises the metric directly (DLA +1.50); '
                  'its effect sits at END (-0.40)')
