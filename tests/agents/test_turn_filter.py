"""jaxlab.agents.turn_filter: rule categories, the L1 filter and its τ extremes, the pairwise judge protocol."""

import hashlib

import numpy as np
import pytest

from jaxlab.agents import turn_filter as tf


@pytest.mark.parametrize('text, round_index, category', [
    ('What is the capital of France?', 1, 'new_ask'),
    ('Double your result.', 1, 'new_ask'),  # round 1 is always a new ask
    ('Write a haiku about autumn leaves falling.', 3, 'new_ask'),
    ("No, that's not what I asked. Use 7 apples.", 2, 'feedback'),
    ('Your code is wrong: it crashes on empty input.', 4, 'feedback'),
    ('Make it shorter.', 2, 'no_feedback'),
    ('Which country is that city the capital of?', 2, 'no_feedback'),
    ('What about the second one?', 3, 'no_feedback'),
    ('thanks!', 5, 'no_feedback'),  # a fragment
])
def test_categorise_hand_cases(text, round_index, category):
  assert tf.categorise(text, round_index) == category


def _hash_embed(texts):
  """Deterministic bag-of-words embedding (16 dims) so the test needs no encoder."""
  out = np.zeros((len(texts), 16))
  for i, t in enumerate(texts):
    for w in t.lower().split():
      out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 16] += 1
  return out


def _turns(n, rng):
  turns, labels = [], []
  for i in range(n):
    follow = bool(i % 2)
    msgs = [{'role': 'user', 'content': 'What is the capital of Peru?'},
            {'role': 'assistant', 'content': 'Lima.' * (1 + 20 * follow)},
            {'role': 'user', 'content': 'Which country is that city the capital of?' if follow else 'Name a fruit.'}]
    turns.append(tf.Turn(msgs, 2, int(rng.integers(2, 6)), 'no_feedback' if follow else 'new_ask'))
    labels.append(int(follow))
  return turns, labels


def test_filter_learns_a_separable_label_and_tau_extremes():
  rng = np.random.default_rng(0)
  turns, labels = _turns(40, rng)
  filt = tf.ContextFilter(_hash_embed, pca_dim=3, n_search=4).fit(turns, labels)
  p = filt.predict_proba(turns)
  assert filt.cv_f1 > 0.9
  assert ((p >= 0.5) == np.array(labels, bool)).mean() > 0.9
  assert tf.use_full(p, 0.).all()        # τ = 0: full context everywhere
  assert not tf.use_full(p, 1.).any()    # τ = 1: user turns only everywhere
  np.testing.assert_array_equal(tf.use_full(p, 0.5), p >= 0.5)


def test_filter_refuses_one_class_and_unfitted_use():
  turns, _ = _turns(6, np.random.default_rng(0))
  filt = tf.ContextFilter(_hash_embed)
  with pytest.raises(ValueError, match='both classes'):
    filt.fit(turns, [0] * 6)
  with pytest.raises(ValueError, match='fit'):
    filt.predict_proba(turns)


def test_features_and_history_window():
  msgs = []
  for i in range(4):
    msgs += [{'role': 'user', 'content': f'u{i}'}, {'role': 'assistant', 'content': f'a{i}' * 3}]
  msgs.append({'role': 'user', 'content': 'now'})
  feats = tf.numeric_features(tf.Turn(msgs, 5, 7, 'feedback'))
  np.testing.assert_array_equal(feats, [5, 7, 8, 24, 0, 1, 0])
  assert tf.history_text(msgs) == 'user: u0\nassistant: a0a0a0\nuser: u3\nassistant: a3a3a3'  # first + last pairs


def test_judge_pair_maps_the_randomised_order_back():
  def judge(messages, a, b):  # prefers the longer answer on quality, ties on topic
    return 'Sure: {"quality": "%s", "on_topic": "tie", "reason": "longer"}' % ('A' if len(a) > len(b) else 'B')

  rng = np.random.default_rng(0)
  verdicts = [tf.judge_pair(judge, [], 'a long answer', 'short', rng) for _ in range(20)]
  assert {v['quality'] for v in verdicts} == {'first'} and {v['on_topic'] for v in verdicts} == {'tie'}
  assert {v['swapped'] for v in verdicts} == {True, False}


@pytest.mark.parametrize('reply, match', [('no json here', 'no JSON'),
                                          ('{"quality": "C", "on_topic": "A"}', 'quality'),
                                          ('{"quality": "A"}', 'on_topic')])
def test_parse_verdict_rejects_bad_replies(reply, match):
  with pytest.raises(ValueError, match=match):
    tf.parse_verdict(reply)
