"""Tests for jaxlab.data.tokenizers: SentencePiece training, offline GPT-2 BPE, bytes."""

import os
import socket

import numpy as np
import pytest

from jaxlab.data import assets
from jaxlab.data import tokenizers
from jaxlab.data.tokenizers import ByteTokenizer, SentencePieceTokenizer, Tokenizer

SAMPLE = ('To be, or not to be,--that is the question:--\n'
          "  Whether 'tis nobler  in the mind 1603?\nhéllo ☃")


@pytest.fixture(scope='module')
def sp_model(shakespeare_text, tmp_path_factory):
  prefix = tmp_path_factory.mktemp('spm') / 'shk'
  return SentencePieceTokenizer.train(shakespeare_text[:200_000], prefix, vocab_size=600)


def test_sentencepiece_train_round_trip(sp_model, shakespeare_text):
  assert isinstance(sp_model, Tokenizer)
  assert sp_model.vocab_size == 600
  assert (sp_model.pad_id, sp_model.bos_id, sp_model.eos_id) == (3, 1, 2)
  held_out = shakespeare_text[-20_000:]
  for text in (SAMPLE, held_out):
    ids = sp_model.encode(text)
    assert all(0 <= i < 600 for i in ids)
    assert sp_model.decode(ids) == text
    assert sp_model.decode(np.asarray(ids)) == text
  assert len(sp_model.encode(held_out)) < 0.65 * len(held_out)  # it learned merges (~1.8 chars/id)


def test_sentencepiece_load_and_train_or_load(sp_model, shakespeare_text, tmp_path):
  again = SentencePieceTokenizer.load(sp_model.path)
  assert again.encode(SAMPLE) == sp_model.encode(SAMPLE)
  with pytest.raises(FileNotFoundError, match='nope.model'):
    SentencePieceTokenizer.load(tmp_path / 'nope.model')

  text = shakespeare_text[:50_000]
  path = tmp_path / 'tok.model'
  first = tokenizers.train_or_load(text, path, 400)
  assert first.vocab_size == 400 and path.is_file()
  stamp = path.stat().st_mtime_ns
  assert tokenizers.train_or_load('unused', path, 400).vocab_size == 400
  assert path.stat().st_mtime_ns == stamp  # reused, not retrained
  assert tokenizers.train_or_load(text, path, 450).vocab_size == 450  # size differs: retrained


def test_sentencepiece_training_is_deterministic(shakespeare_text, tmp_path):
  text = shakespeare_text[:50_000]
  a = SentencePieceTokenizer.train(text, tmp_path / 'a', 400)
  b = SentencePieceTokenizer.train(text, tmp_path / 'b', 400)
  assert [a.id_to_piece(i) for i in range(400)] == [b.id_to_piece(i) for i in range(400)]


def test_gpt2_offline(asset_cache, tmp_path, monkeypatch):
  assets.fetch('gpt2-bpe', asset_cache)  # may download; everything after must stay offline

  def no_network(*args, **kwargs):
    raise AssertionError('network access attempted')

  monkeypatch.setattr(socket.socket, 'connect', no_network)
  monkeypatch.setenv('TIKTOKEN_CACHE_DIR', str(tmp_path / 'tiktoken_cache'))
  tok = tokenizers.gpt2_tokenizer(asset_cache)
  assert os.environ['TIKTOKEN_CACHE_DIR'] == str(tmp_path / 'tiktoken_cache')  # restored
  assert not (tmp_path / 'tiktoken_cache').exists()  # tiktoken wrote no cached copy
  assert isinstance(tok, Tokenizer)
  assert tok.encode('Hello world') == [15496, 995]
  assert tok.vocab_size == 50257 and tok.eos_id == 50256 and tok.pad_id == -1
  assert tok.decode(tok.encode(SAMPLE)) == SAMPLE
  assert tok.encode('<|endoftext|>') != [50256]  # special text is not special when encoding
  assert tok.decode([50256]) == '<|endoftext|>'


def test_mistral_sentencepiece(asset_cache):
  tok = tokenizers.mistral_tokenizer(asset_cache)
  assert tok.vocab_size == 32000 and tok.bos_id == 1 and tok.eos_id == 2
  assert tok.encode('Hello world') == [22557, 1526]
  assert tok.decode(tok.encode('Hello world')) == 'Hello world'


def test_byte_tokenizer():
  tok = ByteTokenizer()
  assert isinstance(tok, Tokenizer)
  ids = tok.encode(SAMPLE)
  assert max(ids) < 256 and tok.vocab_size == 259
  assert tok.decode([tok.bos_id, *ids, tok.eos_id, tok.pad_id]) == SAMPLE
  assert len({tok.pad_id, tok.bos_id, tok.eos_id}) == 3
