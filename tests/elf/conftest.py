"""Session fixtures for tests/elf: the frozen MiniLM encoder (asset 'minilm-l6', loaded once)."""

import pytest


@pytest.fixture(scope='session')
def minilm():
  """(BertEncoder, params, WordPiece tokenizer) of all-MiniLM-L6-v2."""
  from jaxlab.data import text_latents
  return text_latents.load_minilm()
