"""jaxlab.interp.sae / sae_train: the reference ReLU SAE's init, loss and λ warm-up, TopK, the metric
definitions against hand formulas (sae-lens' definitions; sae-lens itself needs torch, absent here), and a
short SAE training through the one trainer from an activation store filled by the hooks."""

import ml_collections
import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxlab.interp import hooks as H
from jaxlab.interp import sae as S
from jaxlab.interp import sae_train as ST
from jaxlab.nn import DecoderLM, llama_config
from jaxlab.train import default_config, optim, train


def _x(n=64, d=8, seed=0):
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32) + 0.5


def test_init_matches_reference():
  cfg = S.SaeConfig(d_in=16, expansion=4)
  p = S.init_params(cfg, jax.random.key(0))
  assert p['W_enc'].shape == (16, 64) and p['W_dec'].shape == (64, 16)
  np.testing.assert_allclose(np.linalg.norm(p['W_enc'], axis=1), 0.1, rtol=1e-5)  # rows of W_d [d, F]
  np.testing.assert_array_equal(p['W_enc'], p['W_dec'].T)
  assert not np.any(p['b_enc']) and not np.any(p['b_dec'])


def test_loss_is_the_reference_formula_with_no_gradient_through_the_norms():
  cfg = S.SaeConfig(d_in=8, expansion=2)
  p = jax.tree.map(lambda a: a + 0.05 * jax.random.normal(jax.random.key(1), a.shape), S.init_params(cfg, jax.random.key(0)))
  x, lam = jnp.asarray(_x(16)), 3.0
  total, aux = S.loss(cfg, p, x, lam)
  pn = jax.tree.map(np.asarray, p)
  f = np.maximum(np.asarray(x) @ pn['W_enc'] + pn['b_enc'], 0)
  xh = f @ pn['W_dec'] + pn['b_dec']
  norms = np.linalg.norm(pn['W_dec'], axis=1)
  want = np.mean(np.sum((np.asarray(x) - xh) ** 2, -1) + lam * f @ norms)
  np.testing.assert_allclose(total, want, rtol=1e-5)
  np.testing.assert_allclose(aux['l0'], np.mean((f > 0).sum(-1)), rtol=1e-6)

  def hand(params):   # the same loss with the norms as constants
    fh = jax.nn.relu(x @ params['W_enc'] + params['b_enc'])
    xr = fh @ params['W_dec'] + params['b_dec']
    return jnp.mean(jnp.sum((x - xr) ** 2, -1) + lam * fh @ jnp.asarray(norms))

  g, gh = jax.grad(lambda q: S.loss(cfg, q, x, lam)[0])(p), jax.grad(hand)(p)
  for k in p:
    np.testing.assert_allclose(g[k], gh[k], rtol=1e-4, atol=1e-6)


def test_l1_warmup_and_lr_schedule():
  cfg = S.SaeConfig(d_in=4)
  lam = S.l1_schedule(cfg, total_steps=200)          # 5% of 200 = 10 warm-up steps
  assert [lam(s) for s in (0, 5, 10, 150)] == [0.0, 2.5, 5.0, 5.0]
  sched = optim.make_schedule(ml_collections.ConfigDict(dict(learning_rate=5e-5, schedule='constant_linear_tail',
                                                             decay_fraction=0.2)), 100)
  np.testing.assert_allclose([float(sched(s)) for s in (0, 79, 80, 90, 100)], [5e-5, 5e-5, 5e-5, 2.5e-5, 0.0],
                             rtol=1e-5, atol=1e-12)


def test_topk_keeps_k_features():
  cfg = S.SaeConfig(d_in=8, expansion=4, kind='topk', k=3)
  p = S.init_params(cfg, jax.random.key(0))
  p['b_enc'] = p['b_enc'] + 1.0          # every pre-activation positive: exactly k fire
  x = jnp.asarray(_x(10))
  f = np.asarray(S.encode(cfg, p, x))
  assert ((f != 0).sum(-1) == 3).all()
  pre = np.asarray(x) @ np.asarray(p['W_enc']) + np.asarray(p['b_enc'])
  top = np.sort(pre, -1)[:, -3:]
  np.testing.assert_allclose(np.sort(f, -1)[:, -3:], top, rtol=1e-5)
  total, aux = S.loss(cfg, p, x, 5.0)
  np.testing.assert_allclose(total, aux['mse'], rtol=1e-6)    # no L1 term for TopK


def test_metrics_match_hand_formulas_and_ignore_padding():
  cfg = S.SaeConfig(d_in=8, expansion=2)
  p = S.init_params(cfg, jax.random.key(3))
  p['b_enc'] = p['b_enc'].at[:4].set(-100.)  # four features can never fire
  x = _x(50, 8, seed=4)
  xh, f = map(np.asarray, S.forward(cfg, p, jnp.asarray(x)))
  m = ST.evaluate_rows(cfg, p, x, batch=16)       # 50 rows in batches of 16: the last one is padded
  sq = np.sum((x - xh) ** 2, -1)
  assert m['tokens'] == 50
  np.testing.assert_allclose(m['mse'], sq.mean(), rtol=1e-5)
  np.testing.assert_allclose(m['explained_variance'], 1 - sq.mean() / np.var(x, axis=0).sum(), rtol=1e-4)
  np.testing.assert_allclose(m['l0'], (f != 0).sum(-1).mean(), rtol=1e-6)
  freq = (f != 0).mean(0)
  assert m['dead_fraction'] == pytest.approx(np.mean(freq == 0))
  assert m['dense_fraction'] == pytest.approx(np.mean(freq > 0.1))
  assert 0 < m['dead_fraction'] < 1      # the four dead features: the check is not vacuous
  assert S.loss_recovered(2.0, 2.5, 4.0) == pytest.approx(0.75)
  with pytest.raises(ValueError, match='undefined'):
    S.loss_recovered(2.0, 2.5, 2.0)


def test_bad_config_names_the_field():
  with pytest.raises(ValueError, match='kind'):
    S.SaeConfig(d_in=4, kind='gated')
  with pytest.raises(ValueError, match='k=99'):
    S.SaeConfig(d_in=4, expansion=2, kind='topk', k=99)


def test_store_from_hooks_trains_through_the_trainer(tmp_path):
  lm_cfg = llama_config(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, mlp_dim=64,
                        max_len=16)
  model = DecoderLM(lm_cfg)
  tokens = np.random.default_rng(0).integers(0, 64, size=(12, 4, 16)).astype(np.int32)
  params = model.init(jax.random.key(0), jnp.asarray(tokens[0]))['params']
  site = 'layers_1/resid_pre'
  fwd = jax.jit(lambda t: H.run(model, {'params': params}, t, hooks=H.capture(site))[1][site])
  store = ST.ActivationStore(str(tmp_path / 'store'))
  assert store.fill(tokens, lambda t: np.asarray(fwd(t)).reshape(-1, 32)) == 12
  assert store.fill(tokens, lambda t: 1 / 0) == 0        # resumable: existing shards are never recomputed
  assert store.total_rows() == 12 * 64
  np.testing.assert_allclose(np.linalg.norm(store.rows(0, 768) * store.scale, axis=1).mean(), np.sqrt(32),
                             rtol=1e-4)

  cfg = S.SaeConfig(d_in=32, expansion=4, l1_coeff=0.5)
  tc = default_config()
  tc.update(total_steps=40, batch_size=32, log_every=40, mesh=dict(data=1, fsdp=1, tensor=1))
  tc.optimizer.update(name='adamw', learning_rate=3e-3, schedule='constant_linear_tail', b2=0.999)
  task = ST.sae_task(cfg, store, tc, eval_rows=128, eval_batch=64)
  first = next(ST.train_data(store, batch_size=32, seed=0, scale=store.scale,
                             l1_at_step=S.l1_schedule(cfg, 40)))
  assert first['x'].shape == (32, 32) and (first['l1'] == 0).all()
  x_eval = store.rows(640, 768) * store.scale
  before = ST.evaluate_rows(cfg, S.init_params(cfg, jax.random.split(jax.random.key(0))[0]), x_eval)
  res = train(tc, str(tmp_path / 'run'), task, devices=jax.devices()[:1])
  after = ST.evaluate_rows(cfg, res.state.params, x_eval)
  assert after['mse'] < 0.5 * before['mse'], (before, after)
  np.testing.assert_allclose(res.eval_metrics['sq_err'], after['mse'], rtol=1e-4)
  assert res.eval_metrics['explained_variance'] > 0.3
  # λ over the one 40-step log window: warm-up of round(5% · 40) = 2 steps (0, 0.25), then 0.5
  assert res.train_metrics['l1_coeff'] == pytest.approx((0 + 0.25 + 38 * 0.5) / 40)
