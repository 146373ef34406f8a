"""SmolLM2-135M from its GGUF: jaxlab vs Hugging Face transformers (independent implementation).

Both models get the same dequantised weights (fp32); logits on real text must agree to 1e-4 relative
error. The q/k un-permutation is checked against transformers' own GGUF loader.
"""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxlab.io import torch_ref
from jaxlab.nn import DecoderLM

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

TEXTS = ['The capital of France is Paris, and the capital of Italy is Rome.',
         'She opened the old wooden door slowly.']


def _hf_llama(cfg, sd):
  return torch_ref.transformers_llama(cfg, sd)


def test_llama_logits_match_transformers(smollm2):
  from jaxlab.io import gguf
  cfg, params, f, tok = smollm2
  sd = gguf.llama_state_dict_from_gguf(f, cfg)
  hf = _hf_llama(cfg, sd)
  jparams = jax.tree.map(jnp.asarray, params)
  model = DecoderLM(cfg)
  ids = [tok.encode(text).ids for text in TEXTS]
  n = max(map(len, ids))
  batch = jnp.asarray([x + [0] * (n - len(x)) for x in ids], jnp.int32)  # right padding: causal, harmless
  logits = np.asarray(jax.jit(model.apply)({'params': jparams}, batch))
  for text, x, row in zip(TEXTS, ids, logits):
    with torch.no_grad():
      ref = hf(torch.tensor([x])).logits[0].numpy()
    got = row[:len(x)]
    rel = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert rel <= 1e-4, (text, rel)
    assert np.array_equal(got.argmax(-1), ref.argmax(-1))


def _llama_cpp_permute(w, n_head):
  """convert_hf_to_gguf.py LlamaModel.permute (the reference being inverted)."""
  return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape))


def test_qk_unpermute_inverts_llama_cpp_permute():
  from jaxlab.io import gguf
  w = np.random.default_rng(0).normal(size=(3 * 64, 10)).astype(np.float32)
  np.testing.assert_array_equal(gguf.unpermute_qk(_llama_cpp_permute(w, 3), 3), w)


def test_unpermuted_model_predicts_real_text(smollm2):
  """With q/k un-permuted the model is sharp on real text; without, it degrades (so the step matters)."""
  cfg, params, f, tok = smollm2
  ids = jnp.asarray([tok.encode('The capital of France is Paris. The capital of Germany is Berlin.').ids])

  def nll(p):
    logits = DecoderLM(cfg).apply({'params': jax.tree.map(jnp.asarray, p)}, ids)[0, :-1]
    return float(-jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), ids[0, 1:, None], -1)))

  good = nll(params)
  bad = jax.tree.map(lambda x: x, params)
  for i in range(cfg.num_layers):  # re-apply the permutation: llama.cpp's layout read as HF's.
    a = bad[f'layers_{i}']['attn']
    for name, heads in (('query', cfg.num_heads), ('key', cfg.num_kv_heads)):
      k = a[name]['kernel']
      w = k.reshape(k.shape[0], -1).T
      a[name] = {'kernel': _llama_cpp_permute(w, heads).T.reshape(k.shape)}
  assert good < 2.5, good
  assert nll(bad) > good + 0.5
