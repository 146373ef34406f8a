"""Tests for jaxlab.data.tfds_source (the TFDS part needs the optional tensorflow_datasets)."""

import functools
import sys

import grain
import numpy as np
import pytest

from jaxlab.data import pipeline
from jaxlab.data.tfds_source import text_field_to_tokens, tfds_source
from jaxlab.data.tokenizers import ByteTokenizer


def test_missing_tfds_says_how_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(ImportError, match=r'jaxlab\[tfds\]'):
    tfds_source('lm1b', 'train')


def test_text_field_to_tokens():
  tok = ByteTokenizer()
  for value in ('hé', 'hé'.encode(), np.array('hé'.encode(), dtype=object)):
    out = text_field_to_tokens({'text': value}, tok, 'text', add_eos=True)
    assert out.dtype == np.int32
    assert out.tolist() == [104, 195, 169, tok.eos_id]
  with pytest.raises(KeyError, match='body'):
    text_field_to_tokens({'text': 'x'}, tok, 'body')


def test_tfds_mock_data_through_grain():
  tfds = pytest.importorskip('tensorflow_datasets', reason='optional extra jaxlab[tfds] not installed')
  with tfds.testing.mock_data(num_examples=12):
    src = tfds_source('lm1b', 'train')
    assert len(src) == 12
    to_tokens = functools.partial(text_field_to_tokens, tokenizer=ByteTokenizer(), field='text')
    ds = grain.MapDataset.source(src).map(to_tokens)
    docs = list(ds)
    assert len(docs) == 12 and all(d.dtype == np.int32 and d.size for d in docs)
    it = pipeline.make_lm_pipeline(src, global_batch_size=4, seed=0, num_epochs=1, process_index=0,
                                   process_count=1)
    assert sum(len(b['text']) for b in it) == 12
