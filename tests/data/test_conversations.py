"""jaxlab.data.conversations: the truncated ShareGPT JSON read object by object, turns as messages, the filter."""

import json

from jaxlab.data import conversations as conv


def _record(i, turns):
  return {'id': f'c{i}', 'conversations': [{'from': f, 'value': v} for f, v in turns]}


def test_truncated_json_yields_every_complete_record(tmp_path):
  records = [_record(i, [('human', f'q{i}'), ('gpt', f'a{i}')]) for i in range(3)]
  text = json.dumps(records, indent=2)
  path = tmp_path / 'sharegpt.json'
  path.write_text(text[:text.index('"c2"') + 10])  # cut inside the third record, as the packaged file is
  assert [r['id'] for r in conv.read_sharegpt(path)] == ['c0', 'c1']
  path.write_text(text)
  assert [r['id'] for r in conv.read_sharegpt(path)] == ['c0', 'c1', 'c2']
  assert [r['id'] for r in conv.read_sharegpt(path, limit=1)] == ['c0']


def test_to_messages_merges_drops_and_maps_roles():
  rec = _record(0, [('gpt', 'leading answer'), ('human', 'hi'), ('human', 'there'), ('gpt', 'hello'),
                    ('bogus', 'x'), ('human', ''), ('gpt', 'more'), ('human', 'unanswered')])
  assert conv.to_messages(rec) == [{'role': 'user', 'content': 'hi\n\nthere'},
                                   {'role': 'assistant', 'content': 'hello\n\nmore'}]
  sys_rec = _record(1, [('system', 'be kind'), ('human', 'q'), ('gpt', 'a')])
  assert conv.to_messages(sys_rec)[0] == {'role': 'system', 'content': 'be kind'}


def test_paper_filter_rounds_language_keywords():
  def msgs(n, text='How do I sort a list in python?'):
    out = []
    for _ in range(n):
      out += [{'role': 'user', 'content': text}, {'role': 'assistant', 'content': 'Use sorted().'}]
    return out

  assert conv.rounds(msgs(6)) == 6
  assert conv.paper_filter(msgs(5)) and conv.paper_filter(msgs(10))
  assert not conv.paper_filter(msgs(4)) and not conv.paper_filter(msgs(11))
  assert not conv.paper_filter(msgs(6, 'Как отсортировать список в питоне?'))
  assert conv.paper_filter(msgs(6), keywords=('python',)) and not conv.paper_filter(msgs(6), keywords=('sql',))


def test_minilm_sentence_embeddings():
  """Unit norm, independent of the batch a text is in, and paraphrases closer than unrelated text."""
  import numpy as np
  from jaxlab.data import text_latents
  enc, params, tok = text_latents.load_minilm()
  texts = ['What is the capital of France?', 'Which city is the capital of France?',
           'The recipe needs two eggs and a cup of flour. ' * 6]
  emb = text_latents.sentence_embeddings(enc, params, tok, texts, batch_size=4)
  np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
  alone = text_latents.sentence_embeddings(enc, params, tok, texts[:1], batch_size=4)
  np.testing.assert_allclose(alone[0], emb[0], atol=1e-5)
  assert emb[0] @ emb[1] > 0.8 > emb[0] @ emb[2]
  short = text_latents.sentence_embeddings(enc, params, tok, texts[2:], max_len=8, batch_size=1)
  assert short.shape == (1, 384)
