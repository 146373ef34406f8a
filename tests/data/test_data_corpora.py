"""Tests for jaxlab.data.corpora."""

import numpy as np
import pytest

from jaxlab.data import corpora


def test_load_shakespeare(shakespeare_text):
  assert len(shakespeare_text) > 4_000_000
  assert 'To be, or not to be' in shakespeare_text
  assert 'Project Gutenberg' not in shakespeare_text
  assert 'gutenberg' not in shakespeare_text.lower()
  assert shakespeare_text.startswith("ALL'S WELL THAT ENDS WELL")  # sorted: alls_well... first
  assert '\n\n' in shakespeare_text and '\r' not in shakespeare_text


def test_strip_gutenberg_markers():
  text = ('The Project Gutenberg EBook of Hamlet\nlicence blah\n'
          '*** START OF THE PROJECT GUTENBERG EBOOK HAMLET ***\n\nHAMLET\nTo be.\n'
          '<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS IS COPYRIGHT 1990-1993 BY WORLD LIBRARY>>\n'
          'Or not.\n*** END OF THE PROJECT GUTENBERG EBOOK HAMLET ***\nmore licence\n')
  assert corpora.strip_gutenberg(text) == 'HAMLET\nTo be.\nOr not.'
  assert corpora.strip_gutenberg('  plain text\n') == 'plain text'


def test_load_text_files(tmp_path):
  a, b = tmp_path / 'a.txt', tmp_path / 'b.txt'
  a.write_text('first\n')
  b.write_text('second')
  assert corpora.load_text_files([a, b]) == 'first\n\nsecond'
  missing = tmp_path / 'missing_corpus.txt'
  with pytest.raises(FileNotFoundError, match='missing_corpus.txt'):
    corpora.load_text_files([a, missing])
  with pytest.raises(ValueError):
    corpora.load_text_files([])


def test_split_train_val():
  tokens = np.arange(100)
  train, val = corpora.split_train_val(tokens, 0.1)
  np.testing.assert_array_equal(train, np.arange(90))
  np.testing.assert_array_equal(val, np.arange(90, 100))
  with pytest.raises(ValueError, match='at least'):
    corpora.split_train_val(np.arange(10), 0.01)
  with pytest.raises(ValueError, match='val_fraction'):
    corpora.split_train_val(tokens, 1.0)
  with pytest.raises(ValueError, match='1-D'):
    corpora.split_train_val(tokens.reshape(10, 10), 0.1)


def test_parse_fortunes():
  text = 'First  entry,\n  two lines.\n%\n   \n%\n|  ~~  |\n%\nThird\n%\n' + 'x' * 50 + '\n%\n'
  assert corpora.parse_fortunes(text) == ['First entry, two lines.', 'Third', 'x' * 50]
  assert corpora.parse_fortunes(text, max_chars=40) == ['First entry, two lines.', 'Third']


def test_load_fortunes(asset_cache):
  entries = corpora.load_fortunes(('cookie', 'wisdom'), cache_dir=asset_cache)
  assert len(entries) > 500 and all(0 < len(e) <= 400 for e in entries)
  assert not any('\n' in e or e.strip() == '%' for e in entries)
