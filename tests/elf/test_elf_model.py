"""The ELF network: parameter paths, zero-initialised output, mode tokens, self-conditioning, config errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.diffusion import elf

CFG = elf.ElfConfig(latent_dim=12, vocab_size=17, num_layers=2, embed_dim=16, num_heads=2, bottleneck_dim=8,
                    decoder_dim=10, freq_dim=8)


@pytest.fixture(scope='module')
def model_and_params():
  model = elf.Elf(CFG)
  return model, nn.unbox(elf.init_params(model, jax.random.key(0), 6))


def test_parameter_paths_and_shapes(model_and_params):
  _, params = model_and_params
  assert sorted(params) == sorted([
      'self_cond_proj', 'in_bottleneck', 'in_proj', 'time_embed', 'guidance_embed', 'time_tokens',
      'guidance_tokens', 'mode_tokens', 'layers_0', 'layers_1', 'out_norm', 'out_proj', 'dec_proj', 'dec_unembed'])
  assert params['self_cond_proj']['kernel'].shape == (24, 12)
  assert params['in_bottleneck']['kernel'].shape == (12, 8) and 'bias' not in params['in_bottleneck']
  assert params['time_tokens'].shape == (1, 4, 16)
  attn = params['layers_0']['attn']
  assert {'q_norm', 'k_norm'} <= set(attn) and 'bias' in attn['query'] and 'bias' in attn['out']
  assert set(params['layers_0']['mlp']) == {'wi_gate', 'wi_up', 'wo'}
  assert params['layers_0']['mlp']['wi_gate']['kernel'].shape == (16, int(4 * 16 * 2 / 3))
  assert params['dec_proj']['kernel'].shape == (16, 10) and params['dec_unembed']['kernel'].shape == (10, 17)
  assert not np.any(np.asarray(params['out_proj']['kernel']))


def _inputs(seed=0):
  r = np.random.default_rng(seed)
  return (jnp.asarray(r.normal(size=(3, 6, 12)), jnp.float32), jnp.asarray([0.1, 0.5, 0.9]),
          jnp.asarray([1.0, 2.0, 3.0]), jnp.asarray(r.normal(size=(3, 6, 12)), jnp.float32))


def test_outputs_zero_init_and_conditioning(model_and_params):
  model, params = model_and_params
  z, t, w, sc = _inputs()
  x_hat = model.apply({'params': params}, z, t, w, sc)
  assert x_hat.shape == (3, 6, 12) and not np.any(np.asarray(x_hat))      # zero-initialised output projection
  logits = model.apply({'params': params}, z, t, w, sc, decode=True)
  assert logits.shape == (3, 6, 17) and logits.dtype == jnp.float32
  p = jax.tree.map(lambda a: a, params)
  p['out_proj'] = {'kernel': jnp.ones_like(params['out_proj']['kernel']), 'bias': params['out_proj']['bias']}
  base = model.apply({'params': p}, z, t, w, sc)
  # Time, guidance and self-conditioning inputs all change the output.
  for other in ((z, t + 0.05, w, sc), (z, t, w + 1.0, sc), (z, t, w, None)):
    assert not np.allclose(base, model.apply({'params': p}, *other))
  # Mode tokens are multiplied by 0 in denoise mode: changing them changes only decode outputs.
  p2 = dict(p, mode_tokens=p['mode_tokens'] + 1.0)
  np.testing.assert_allclose(base, model.apply({'params': p2}, z, t, w, sc), atol=1e-6)
  assert not np.allclose(logits, model.apply({'params': p2}, z, t, w, sc, decode=True))


def test_control_tokens_are_not_rotated(model_and_params):
  """Control tokens all sit at RoPE position 0 (unrotated), so they carry no order: permuting the learned rows
  of the time or guidance tokens leaves the text outputs unchanged (with rotated prefix tokens it would not)."""
  model, params = model_and_params
  z, t, w, sc = _inputs(1)
  p = dict(params, out_proj={'kernel': jnp.ones_like(params['out_proj']['kernel']), 'bias': params['out_proj']['bias']})
  base = model.apply({'params': p}, z, t, w, sc)
  perm = dict(p, time_tokens=p['time_tokens'][:, ::-1], guidance_tokens=p['guidance_tokens'][:, [2, 0, 3, 1]])
  np.testing.assert_allclose(base, model.apply({'params': perm}, z, t, w, sc), atol=2e-5)


def test_learned_table_variant():
  cfg = elf.ElfConfig(latent_dim=12, vocab_size=17, num_layers=1, embed_dim=16, num_heads=2, bottleneck_dim=8,
                      decoder_dim=10, freq_dim=8, embedding='learned')
  model, tokens = elf.Elf(cfg), jnp.array([[3, 4]])
  params = model.init(jax.random.key(0), tokens, method=elf.Elf.embed_tokens)['params']
  assert nn.unbox(params)['token_table'].shape == (17, 12)
  assert 'token_table' in jax.eval_shape(lambda: elf.init_params(model, jax.random.key(0), 6))
  rows = model.apply({'params': params}, tokens, method=elf.Elf.embed_tokens)
  np.testing.assert_array_equal(rows[0, 1], nn.unbox(params)['token_table'][4])
  with pytest.raises(ValueError, match="embedding='learned'"):
    elf.Elf(CFG).init(jax.random.key(0), tokens, method=elf.Elf.embed_tokens)


def test_config_errors():
  with pytest.raises(ValueError, match='embedding'):
    elf.ElfConfig(embedding='gaussian')
  with pytest.raises(ValueError, match='num_heads'):
    elf.ElfConfig(embed_dim=30, num_heads=4)
  with pytest.raises(ValueError, match='latent_dim=12'):
    elf.Elf(CFG).init(jax.random.key(0), jnp.zeros((1, 4, 5)), jnp.zeros((1,)), jnp.ones((1,)))
