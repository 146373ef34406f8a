"""jaxlab.meta: the inner SGD step, its parameter subsets, LC / LG and the three meta-gradient forms."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab import meta
from jaxlab.nn import lora
from jaxlab.nn.lm.transformer import DecoderLM, TransformerConfig

CFG = TransformerConfig(vocab_size=23, num_layers=2, embed_dim=16, num_heads=2, mlp_dim=24, max_len=32,
                        tie_embeddings=False)
TC, TQ, TP, A = 8, 6, 12, 2


def _task(seed):
  r = np.random.default_rng(seed)
  c = r.integers(1, CFG.vocab_size, TC)
  q = r.integers(1, CFG.vocab_size, TQ)
  prompted = np.concatenate([c[:TP - TQ], q])
  return {'context': c.astype(np.int32), 'context_mask': np.r_[np.ones(TC - 1), 0.].astype(np.float32),
          'query': q.astype(np.int32), 'prompted': prompted.astype(np.int32),
          'q_pos': np.array([TQ - 3, TQ - 2], np.int32), 'p_pos': np.array([TP - 3, TP - 2], np.int32),
          'answer': q[-2:].astype(np.int32), 'answer_mask': np.array([1., 1.], np.float32)}


def _stack(tasks):
  return jax.tree.map(lambda *x: np.stack(x), *tasks)


@pytest.fixture(scope='module')
def lm():
  model = DecoderLM(CFG)
  base = nn.unbox(model.init(jax.random.key(0), jnp.zeros((1, TC), jnp.int32))['params'])
  return model, base


_meta_grad = jax.jit(meta.meta_grad, static_argnums=0, static_argnames=('objective', 'mode'))
_task_loss = jax.jit(meta.task_loss, static_argnums=(0, 4))


def _mm(model, **kw):
  return meta.MetaModel(model, meta.InnerConfig(**{'eta': 0.05, **kw}))


def _perturb(tree, seed=5, std=0.05):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [x + std * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def _flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _close(a, b, rtol=1e-4, atol=1e-6):
  np.testing.assert_allclose(_flat(a), _flat(b), rtol=rtol, atol=atol)


def test_inner_step_is_a_manual_sgd_step(lm):
  model, base = lm
  task = _task(0)
  ctx = {'tokens': task['context'], 'mask': task['context_mask']}

  def nll(p):  # written out by hand: summed next-token NLL of the context
    logits = model.apply({'params': p}, task['context'][None])[0]
    logp = jax.nn.log_softmax(logits[:-1])
    return -sum(logp[t, task['context'][t + 1]] for t in range(TC - 2))  # the last token is masked

  nll = jax.jit(nll)
  g = jax.jit(jax.grad(nll))(base)
  manual = jax.tree.map(lambda p, d: p - 0.05 * d, base, g)
  step = jax.jit(meta.inner_update, static_argnames=('model', 'eta', 'steps'))
  _close(step(base, ctx, model=model, eta=0.05), manual, rtol=1e-5, atol=1e-6)
  two = step(base, ctx, model=model, eta=0.05, steps=2)
  _close(two, jax.tree.map(lambda p, d: p - 0.05 * d, manual, jax.jit(jax.grad(nll))(manual)), rtol=1e-5, atol=1e-6)
  _close(step(base, ctx, model=model, eta=0.), base, rtol=0, atol=0)


@pytest.mark.parametrize('objective', ['lc', pytest.param('lg', marks=pytest.mark.slow)])
def test_second_order_equals_hvp_form_and_jvp(lm, objective):
  model, base = lm
  mm = _mm(model)
  task, theta = _task(1), _perturb(base)
  loss2, g2 = _meta_grad(mm, theta, base, task, objective=objective, mode='second_order')
  loss_h, gh = _meta_grad(mm, theta, base, task, objective=objective, mode='hvp')
  np.testing.assert_allclose(loss2, loss_h, rtol=1e-6)
  _close(g2, gh, rtol=2e-4, atol=2e-6)
  # a directional derivative by forward mode through the inner gradient (an independent AD path)
  v = _perturb(jax.tree.map(jnp.zeros_like, base), seed=9, std=1.)
  _, jv = jax.jit(lambda t, v: jax.jvp(lambda m: meta.task_loss(mm, m, base, task, objective), (t,), (v,)))(
      theta, v)
  np.testing.assert_allclose(jv, _flat(g2) @ _flat(v), rtol=1e-4)


def test_meta_gradient_matches_finite_differences(lm):
  """Central differences of the stepped loss along a random direction (eta large enough for the Hessian term
  to dominate: first order even has the wrong sign here)."""
  model, base = lm
  mm = _mm(model, eta=0.05)
  task, theta = _task(2), _perturb(base)
  v = _perturb(jax.tree.map(jnp.zeros_like, base), seed=11, std=1.)
  f = jax.jit(lambda m: meta.task_loss(mm, m, base, task, 'lc'))
  eps = 3e-4
  fd = float(f(jax.tree.map(lambda a, b: a + eps * b, theta, v))
             - f(jax.tree.map(lambda a, b: a - eps * b, theta, v))) / (2 * eps)
  _, g2 = _meta_grad(mm, theta, base, task, objective='lc', mode='second_order')
  _, gh = _meta_grad(mm, theta, base, task, objective='lc', mode='hvp')
  _, g1 = _meta_grad(mm, theta, base, task, objective='lc', mode='first_order')
  d2, dh, d1 = (float(_flat(g) @ _flat(v)) for g in (g2, gh, g1))
  np.testing.assert_allclose([d2, dh], [fd, fd], rtol=3e-3)  # float32 central differences
  assert abs(d1 - fd) > 0.5 * abs(fd)  # first order misses the Hessian term by far more


def test_first_order_drops_the_hessian_term_and_eta_zero_has_none(lm):
  model, base = lm
  task, theta = _task(3), _perturb(base)
  mm = _mm(model)
  state1 = jax.jit(mm.inner_update)(theta, base, meta.objectives.context_of(task))
  g_out = jax.jit(jax.grad(lambda s: meta.outer_loss(mm, s, base, task, 'lc')))(state1)
  _, g1 = _meta_grad(mm, theta, base, task, mode='first_order')
  _close(g1, g_out)
  _, g1b = _meta_grad(_mm(model, first_order=True), theta, base, task, mode='second_order')
  _close(g1b, g_out)
  _, g2 = _meta_grad(mm, theta, base, task, mode='second_order')
  assert np.abs(_flat(g2) - _flat(g1)).max() > 1e-4  # the Hessian term is there at eta > 0
  # eta = 0: the meta-gradient is the plain gradient of the outer loss at theta
  mm0 = _mm(model, eta=0.)
  _, g0 = _meta_grad(mm0, theta, base, task, mode='second_order')
  _close(g0, jax.jit(jax.grad(lambda s: meta.outer_loss(mm0, s, base, task, 'lc')))(theta))


def test_teacher_is_the_frozen_base(lm):
  model, base = lm
  mm = _mm(model)
  task = _task(4)
  g_teacher = jax.jit(jax.grad(lambda b: jnp.sum(meta.teacher_logprobs(mm, b, task))))(base)
  assert np.abs(_flat(g_teacher)).max() == 0.
  # the loss depends on the base only through the teacher, whose gradient is stopped
  theta = _perturb(base)
  g_base = jax.jit(jax.grad(lambda b: meta.task_loss(mm, theta, b, task, 'lc')))(base)
  assert np.abs(_flat(g_base)).max() == 0.


@pytest.mark.parametrize('subset', ['rank1', pytest.param('lora', marks=pytest.mark.slow)])
def test_subsets_move_only_their_leaves(lm, subset):
  model, base = lm
  mm = _mm(model, subset=subset, lora=lora.LoraConfig(rank=2, alpha=2., targets=('q', 'v', 'down')))
  task = _task(5)
  m = _perturb(mm.init_meta(jax.random.key(1), base), seed=2, std=0.1)
  state = jax.jit(mm.state)(m, base)
  moved = jax.jit(mm.inner_update)(m, base, meta.objectives.context_of(task))
  assert jax.tree.structure(moved) == jax.tree.structure(state)
  if subset == 'lora':  # the inner step moves the adapters; the base is not an output at all
    names = {path[-1].key for path, _ in jax.tree_util.tree_leaves_with_path(moved)}
    assert names == {'lora_a', 'lora_b'}
    assert not np.allclose(_flat(moved), _flat(state))
  else:  # rank-1: the inner step is full rank on theta0 + u v^T; the meta change is exactly rank 1
    for path, delta in jax.tree_util.tree_leaves_with_path(jax.tree.map(jnp.subtract, state, base)):
      x = np.asarray(delta)
      if path[-1].key in ('kernel', 'embedding'):
        n_in = 2 if path[-2].key == 'out' else 1
        s = np.linalg.svd(x.reshape(int(np.prod(x.shape[:n_in])), -1), compute_uv=False)
        assert s[0] > 0 and s[1] < 1e-5 * s[0], path
      else:
        assert not x.any(), path  # norms are not meta-parameterised
  _, g2 = _meta_grad(mm, m, base, task, mode='second_order')
  _, gh = _meta_grad(mm, m, base, task, mode='hvp')
  assert jax.tree.structure(g2) == jax.tree.structure(m)
  _close(g2, gh, rtol=5e-4, atol=1e-6)


def test_meta_loss_scans_tasks_and_matches_the_mean_of_per_task_grads(lm):
  model, base = lm
  mm = _mm(model)
  tasks = [_task(s) for s in (6, 7, 8)]
  theta = _perturb(base)
  loss, g = jax.jit(jax.value_and_grad(lambda m: meta.meta_loss(mm, m, base, _stack(tasks), mode='hvp')))(theta)
  per = [_meta_grad(mm, theta, base, t, mode='second_order') for t in tasks]
  np.testing.assert_allclose(loss, np.mean([l for l, _ in per]), rtol=1e-5)
  _close(g, jax.tree.map(lambda *x: sum(x) / 3, *[g for _, g in per]), rtol=2e-4, atol=2e-6)
  loss_fn = meta.make_loss_fn(mm, mode='first_order')
  (l2, aux), _ = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(theta, _stack(tasks), jax.random.key(0), base)
  np.testing.assert_allclose(l2, loss, rtol=1e-6)
  assert set(aux) == {'meta_loss'}


def test_remat_on_and_off_identical(lm):
  model, base = lm
  mm, mm_r = _mm(model), _mm(DecoderLM(dataclasses.replace(CFG, remat='full')))
  task, theta = _task(9), _perturb(base)
  l1, g1 = jax.jit(lambda m: _meta_grad(mm, m, base, task))(theta)
  l2, g2 = jax.jit(lambda m: _meta_grad(mm_r, m, base, task))(theta)
  np.testing.assert_allclose(l1, l2, rtol=1e-6)
  _close(g1, g2)  # equal up to float32 reassociation (remat changes XLA's fusion)


def test_config_errors():
  with pytest.raises(ValueError, match='subset'):
    meta.InnerConfig(subset='half')
  with pytest.raises(ValueError, match='eta'):
    meta.InnerConfig(eta=-1.)
