"""MiniLM windows and latents (cache, errors), and ELF's decode head learning to read clean MiniLM embeddings."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.data import text_latents
from jaxlab.nn.diffusion import elf, elf_flow

TEXT = """The quick brown fox jumps over the lazy dog.
A man is playing a guitar on the street while the children dance.
The weather is lovely today, and the garden smells of roses.
She opened the window and listened to the rain on the roof.
Our teacher explained the lesson twice, but nobody understood it.
The old ship sailed slowly into the harbour at dawn."""


def test_windows_start_at_word_boundaries(minilm):
  _, _, tok = minilm
  w = text_latents.wordpiece_windows(tok, TEXT * 3, 10)
  assert w.shape[1] == 10 and w.shape[0] >= 10
  assert np.all(w[:, 0] == tok.token_to_id('[CLS]')) and np.all(w[:, -1] == tok.token_to_id('[SEP]'))
  assert not any(tok.id_to_token(int(i)).startswith('##') for i in w[:, 1])
  with pytest.raises(ValueError, match='no complete window'):
    text_latents.wordpiece_windows(tok, 'too short', 64)


def test_latent_cache_and_too_long_sequences(minilm, tmp_path, monkeypatch):
  encoder, params, tok = minilm
  windows = text_latents.wordpiece_windows(tok, TEXT, 12)[:3]
  first = np.asarray(text_latents.cached_latents(tmp_path, windows, encoder, params, batch_size=2))
  direct = np.asarray(encoder.apply({'params': params}, jnp.asarray(windows))[0])
  np.testing.assert_allclose(first.astype(np.float32), direct, atol=2e-3, rtol=1e-2)
  assert len(os.listdir(tmp_path)) == 1
  monkeypatch.setattr(text_latents, 'encode', lambda *a, **k: pytest.fail('the cache was not used'))
  np.testing.assert_array_equal(text_latents.cached_latents(tmp_path, windows, encoder, params), first)
  too_long = np.zeros((1, 513), np.int32)
  with pytest.raises(ValueError, match=r'sequence length 513 is longer than the frozen encoder allows \(max_len=512'):
    text_latents.cached_latents(tmp_path, too_long, encoder, params)
  with pytest.raises(ValueError, match=r'config.data.seq_len 600 is longer'):
    text_latents.check_length(encoder, 600, 'config.data.seq_len')


@pytest.mark.slow
def test_decoder_reads_clean_minilm_embeddings_back_to_tokens(minilm):
  """A short decode-mode training (the ELF objective with decoder_prob = 1) on six sentences; then the
  decode pass on the clean embeddings (t = 1, w = 1, no self-conditioning) returns the tokens."""
  encoder, params, tok = minilm
  windows = text_latents.wordpiece_windows(tok, TEXT, 14)
  latents = text_latents.encode(encoder, params, windows)
  vocab, compact = np.unique(windows, return_inverse=True)
  compact = compact.reshape(windows.shape).astype(np.int32)
  model = elf.Elf(elf.ElfConfig(vocab_size=len(vocab), num_layers=1, embed_dim=64, num_heads=2, bottleneck_dim=32,
                                decoder_dim=64, freq_dim=32))
  p = nn.unbox(elf.init_params(model, jax.random.key(0), windows.shape[1]))
  obj = elf_flow.ElfObjective(decoder_prob=1.0)
  tx = optax.adam(3e-3)
  batch = {'tokens': jnp.asarray(compact), 'latents': jnp.asarray(latents, jnp.float32)}

  @jax.jit
  def steps(p, opt, rng):
    def one(carry, key):
      p, opt = carry
      grads = jax.grad(lambda q: elf_flow.elf_loss(model, obj, q, batch, key)[0])(p)
      updates, opt = tx.update(grads, opt, p)
      return (optax.apply_updates(p, updates), opt), None
    return jax.lax.scan(one, (p, opt), jax.random.split(rng, 60))[0]

  opt = tx.init(p)
  for i in range(3):
    p, opt = steps(p, opt, jax.random.key(i))
  x = batch['latents'] / obj.latent_std
  ones = jnp.ones((x.shape[0],))
  pred = np.asarray(jnp.argmax(model.apply({'params': p}, x, ones, ones, None, decode=True), -1))
  acc = float(np.mean(pred == compact))
  assert acc >= 0.97, acc
  assert tok.decode(vocab[pred[0]].tolist(), skip_special_tokens=True) == tok.decode(
      windows[0].tolist(), skip_special_tokens=True)
