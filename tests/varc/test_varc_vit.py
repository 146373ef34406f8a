"""VARC ViT: shapes and sizes, task token unrotated and unmasked, key masking, and it can learn."""

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxlab.data import arc_canvas as cv
from jaxlab.nn.vision import vit
from jaxlab.train import optim
from jaxlab.train import step as step_lib


def _init(cfg, b=2):
  m = vit.VarcViT(cfg)
  c = cfg.canvas
  return m, m.init(jax.random.PRNGKey(0), jnp.zeros((b, c, c), jnp.int32), jnp.zeros((b,), jnp.int32))['params']


@pytest.mark.slow
def test_paper_sizes():
  counts = {}
  for size in ('18m', '6m'):
    cfg = vit.vit_config(size, canvas=64)
    shapes = jax.eval_shape(lambda r, cfg=cfg: vit.VarcViT(cfg).init(
        r, jnp.zeros((1, 64, 64), jnp.int32), jnp.zeros((1,), jnp.int32)), jax.random.PRNGKey(0))
    counts[size] = sum(x.size for x in jax.tree.leaves(nn.unbox(shapes)))
  assert 17e6 < counts['18m'] < 19e6 and 5e6 < counts['6m'] < 7e6


def test_param_paths():
  _, params = _init(vit.vit_config('tiny', canvas=16, num_tasks=3))
  assert sorted(params) == ['colour_embed', 'final_norm', 'head', 'layers_0', 'layers_1', 'patch_proj',
                            'pos_embed', 'task_embed']
  assert sorted(params['layers_0']) == ['attn', 'attn_norm', 'mlp', 'mlp_norm']
  assert nn.unbox(params['task_embed']['embedding']).shape == (3, 64)


def test_output_shape_and_key_mask():
  cfg = vit.vit_config('tiny', canvas=16, dropout_rate=0.)
  m, params = _init(cfg)
  rng = np.random.default_rng(0)
  x = rng.integers(0, 12, size=(2, 16, 16))
  km = np.zeros((2, 64), bool)
  km[:, :10] = True
  out = m.apply({'params': params}, x, jnp.array([0, 1]), km)
  assert out.shape == (2, 16, 16, 12) and np.isfinite(out).all()
  # Changing pixels in masked patches changes only those patches' own outputs (they are never keys).
  x2 = x.copy()
  x2[:, 14:, 14:] = (x2[:, 14:, 14:] + 1) % 12       # last patch, masked
  out2 = m.apply({'params': params}, x2, jnp.array([0, 1]), km)
  diff = np.abs(np.asarray(out2 - out)).max(axis=-1)
  assert diff[:, :14, :].max() < 1e-5 and diff[:, 14:, 14:].max() > 1e-4
  # The task token matters.
  out3 = m.apply({'params': params}, x, jnp.array([1, 0]), km)
  assert np.abs(np.asarray(out3 - out)).max() > 1e-4


def test_rope_2d_attention_leaves_unrotated_tokens():
  from jaxlab.nn.attention import Attention
  att = Attention(num_heads=2, num_kv_heads=2, head_dim=8, rope='2d')
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 3, 16))
  pos = jnp.array([[[0, 0], [0, 0], [0, 0]]])
  p = att.init(jax.random.PRNGKey(1), x, positions=pos)
  base = att.apply(p, x, positions=pos)
  rm = jnp.array([[False, True, True]])
  # An unrotated token ignores its position: token 0 at (7, 9) or (0, 0) gives the same outputs.
  a = att.apply(p, x, positions=jnp.array([[[7, 9], [5, 3], [2, 1]]]), rotate_mask=rm)
  b = att.apply(p, x, positions=jnp.array([[[0, 0], [5, 3], [2, 1]]]), rotate_mask=rm)
  np.testing.assert_allclose(a, b, atol=1e-6)
  # Rotated tokens do see positions; shifting all of them together is invariant without token 0's key.
  c = att.apply(p, x, positions=jnp.array([[[0, 0], [7, 9], [2, 1]]]), rotate_mask=rm)
  assert np.abs(np.asarray(c - b)).max() > 1e-4
  with pytest.raises(ValueError, match='2d'):
    att.apply(p, x)
  assert base.shape == (1, 3, 16)


def _task_pairs():
  # Hand-made task: swap colours 1<->2 and mirror left-right; 3 demo pairs of different shapes.
  rng = np.random.default_rng(0)
  pairs = []
  for h, w in ((3, 3), (2, 4), (4, 2)):
    x = rng.choice([0, 1, 2], size=(h, w)).astype(np.uint8)
    y = np.fliplr(np.where(x == 1, 2, np.where(x == 2, 1, x))).astype(np.uint8)
    pairs.append((x, y))
  return pairs


def test_tiny_model_overfits_one_task_exactly():
  canvas = 12
  cfg = vit.vit_config('tiny', canvas=canvas, num_tasks=1, dropout_rate=0.)
  model = vit.VarcViT(cfg)
  pairs = _task_pairs()
  offsets = [(0, 0), (1, 2), (3, 1)]
  exs = [cv.make_example(x, y, 1, o, canvas, 2) for (x, y), o in zip(pairs, offsets)]
  batch = {k: jnp.asarray(np.stack([e[k] for e in exs])) for k in exs[0]}

  def loss_fn(params, b, rng):
    logits = model.apply({'params': params}, b['inputs'], b['task_id'], b['key_mask'])
    return vit.masked_cross_entropy(logits, b['targets'], b['loss_mask'])

  steps = 300
  opt = ml_collections.ConfigDict(dict(name='adamw', learning_rate=3e-3, schedule='constant', warmup_steps=0,
                                       weight_decay=0., grad_clip_norm=1.0))
  tx, sched = optim.make_optimizer(opt, steps)
  params = nn.unbox(model.init(jax.random.PRNGKey(0), batch['inputs'], batch['task_id'])['params'])
  state = step_lib.init_train_state(params, tx, jax.random.PRNGKey(1), use_ema=False)
  step = jax.jit(step_lib.make_train_step(loss_fn, tx, sched), donate_argnums=0)
  t0 = time.time()
  for i in range(steps):
    state, m = step(state, batch)
    if i % 50 == 49 and float(m['exact']) == 1.0:
      break
  assert float(m['exact']) == 1.0, m
  logits = model.apply({'params': state.params}, batch['inputs'], batch['task_id'], batch['key_mask'])
  pred = np.asarray(jnp.argmax(logits, -1))
  for pr, (x, y), o in zip(pred, pairs, offsets):
    np.testing.assert_array_equal(cv.decode(pr, 1, o), y)
  assert time.time() - t0 < 60
