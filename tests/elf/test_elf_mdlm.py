"""MDLM baseline: the negative ELBO against numpy, the ancestral sampler with an oracle network, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.diffusion import mdlm

CFG = mdlm.MdlmConfig(vocab_size=13, num_layers=1, embed_dim=16, num_heads=2, decoder_dim=8)


def test_loss_matches_numpy():
  model = mdlm.Mdlm(CFG)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 13, (4, 7)), jnp.int32)
  params = nn.unbox(jax.jit(model.init)(jax.random.key(0), tokens)['params'])
  rng = jax.random.key(3)
  loss, _ = jax.jit(lambda p, b, r: mdlm.mdlm_loss(model, p, b, r))(params, {'tokens': tokens}, rng)
  k_t, k_m = jax.random.split(rng)
  u = float(jax.random.uniform(k_t, ()))
  t = 1e-3 + (1 - 1e-3) * np.mod(u + np.arange(4) / 4, 1.0)
  masked = np.asarray(jax.random.uniform(k_m, tokens.shape)) < t[:, None]
  z = np.where(masked, 13, np.asarray(tokens))
  logits = np.asarray(jax.jit(model.apply)({'params': params}, jnp.asarray(z)), np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  nll = -np.take_along_axis(logp, np.asarray(tokens)[..., None], -1)[..., 0]
  ref = np.mean((nll * masked).sum(-1) / (t * 7))
  np.testing.assert_allclose(float(loss), ref, rtol=1e-4)
  assert masked.any() and not masked.all()


class _Oracle(nn.Module):
  """Logits that put all mass on the data, whatever the input (so the sampler must reproduce it)."""
  config: mdlm.MdlmConfig
  data: tuple

  def __call__(self, z):
    data = jnp.asarray(self.data, jnp.int32)
    return 30. * jax.nn.one_hot(jnp.broadcast_to(data, z.shape), self.config.vocab_size) - 15.


@pytest.mark.parametrize('steps', [1, 5, 16])
def test_ancestral_sampler_with_oracle_reveals_the_data(steps):
  data = (3, 1, 4, 1, 5, 9, 2, 6)
  out = mdlm.generate(_Oracle(CFG, data), {}, jax.random.key(steps), num_samples=3, length=8, num_steps=steps)
  np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(data, (3, 8)))


def test_ancestral_step_reveals_in_proportion_and_keeps_revealed_tokens():
  z = jnp.full((64, 50), 13, jnp.int32).at[:, 0].set(7)
  logits = jnp.zeros((64, 50, 13))
  out = np.asarray(mdlm.ancestral_step(logits, z, jnp.float32(0.8), jnp.float32(0.6), jax.random.key(0), 13))
  assert np.all(out[:, 0] == 7)
  share = np.mean(out[:, 1:] != 13)
  assert abs(share - 0.25) < 0.03, share           # (t - s) / t = 0.2 / 0.8


def test_errors():
  with pytest.raises(ValueError, match=r'num_steps \(sampling steps\) must be >= 1, got 0'):
    mdlm.generate(_Oracle(CFG, (1,)), {}, jax.random.key(0), num_samples=1, length=1, num_steps=0)
  with pytest.raises(ValueError, match='vocab_size'):
    mdlm.MdlmConfig(vocab_size=0)
