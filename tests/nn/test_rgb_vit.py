"""jaxlab.nn.vision.rgb_vit: shapes, patchify, parameter paths and a quick fit of scene factors."""

import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp

from jaxlab.data import scenes as S
from jaxlab.nn.vision import rgb_vit as V


def test_patchify_and_shapes():
  x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
  p = V.patchify(x, 2)
  assert p.shape == (2, 4, 12)
  np.testing.assert_array_equal(p[0, 1], np.asarray(x[0, 0:2, 2:4]).reshape(-1))   # patch (0, 1)
  cfg = V.RgbViTConfig(image_size=16, patch=4, embed_dim=32, num_layers=1, num_heads=2, mlp_dim=64)
  model = V.RgbViT(cfg)
  params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))['params']
  assert set(params) == {'patch_embed', 'pos_embed', 'cls_token', 'layers_0', 'final_norm'}
  assert set(params['layers_0']) == {'attn_norm', 'attn', 'mlp_norm', 'mlp'}
  out = model.apply({'params': params}, jnp.zeros((3, 16, 16, 3)))
  assert out.shape == (3, cfg.num_tokens, 32) and cfg.num_tokens == 17
  with pytest.raises(ValueError, match=r'images \[batch, 16, 16, 3\]'):
    model.apply({'params': params}, jnp.zeros((3, 8, 8, 3)))
  with pytest.raises(ValueError, match='multiple of patch'):
    V.RgbViTConfig(image_size=30, patch=8)


def test_classifier_learns_scene_colour_and_position():
  scenes = S.sample_scenes(256, seed=0, textures=('solid',), max_count=1)
  x = jnp.asarray(S.render_batch(scenes, 16, seed=0))
  y = {k: jnp.asarray([S.labels(s)[k] for s in scenes]) for k in ('colour', 'position')}
  cfg = V.RgbViTConfig(image_size=16, patch=4, embed_dim=32, num_layers=2, num_heads=2, mlp_dim=64)
  model = V.RgbViTClassifier(cfg, heads={'colour': 8, 'position': 5})
  params = model.init(jax.random.key(0), x[:1])['params']
  tx = optax.adam(3e-3)

  def loss(p):
    logits = model.apply({'params': p}, x)
    return sum(optax.softmax_cross_entropy_with_integer_labels(logits[k], y[k]).mean() for k in y)

  @jax.jit
  def step(p, s):
    l, g = jax.value_and_grad(loss)(p)
    u, s = tx.update(g, s, p)
    return optax.apply_updates(p, u), s, l

  state, first = tx.init(params), float(loss(params))
  for _ in range(60):
    params, state, last = step(params, state)
  assert float(last) < 0.5 * first, (first, float(last))
