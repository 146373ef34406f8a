"""GPT-2 and (untied) Llama Hugging Face layouts: tiny random transformers models vs jaxlab, fp32."""

import numpy as np
import pytest

import jax.numpy as jnp

from jaxlab.io import hf
from jaxlab.nn import DecoderLM

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

IDS = [[3, 17, 5, 9, 41, 2, 8, 8, 30]]


def _sd(model):
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _rel(a, b):
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_gpt2_layout_matches_transformers():
  torch.manual_seed(0)
  hf_cfg = transformers.GPT2Config(vocab_size=64, n_positions=32, n_embd=48, n_layer=2, n_head=4)
  model = transformers.GPT2LMHeadModel(hf_cfg).eval()
  cfg = hf.gpt2_config_from_hf(hf_cfg.to_dict())
  params = hf.gpt2_params_from_hf(_sd(model), cfg)
  with torch.no_grad():
    ref = model(torch.tensor(IDS)).logits.numpy()
  got = np.asarray(DecoderLM(cfg).apply({'params': params}, jnp.asarray(IDS)))
  assert _rel(got, ref) <= 1e-4


def test_untied_llama_layout_matches_transformers():
  torch.manual_seed(0)
  hf_cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=48, intermediate_size=96,
                                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                    tie_word_embeddings=False, rope_theta=10000.,
                                    max_position_embeddings=32)
  model = transformers.LlamaForCausalLM(hf_cfg).eval()
  cfg = hf.llama_config_from_hf(hf_cfg.to_dict())
  assert not cfg.tie_embeddings
  params = hf.llama_params_from_hf(_sd(model), cfg)
  with torch.no_grad():
    ref = model(torch.tensor(IDS)).logits.numpy()
  got = np.asarray(DecoderLM(cfg).apply({'params': params}, jnp.asarray(IDS)))
  assert _rel(got, ref) <= 1e-4
