"""experiments/own_words: the synthetic conversations, and the tiny config end to end (a random 1-layer model
with SmolLM2's tokenizer and template: every mode, the pollution arm and the filter path run)."""

import json

import numpy as np

from experiments.own_words import dialogues, main
from experiments.own_words.configs import default


def test_conversations_have_verifiable_golds():
  rng = np.random.default_rng(0)
  for _ in range(50):
    conv = dialogues.conversation(rng, 6)
    assert conv[0].category == 'new_ask'
    for prev, turn in zip(conv, conv[1:]):
      if turn.category == 'no_feedback':
        assert prev.category != 'no_feedback' and turn.gold == prev.topic
      else:
        assert turn.gold == dialogues.CAPITALS[turn.topic] and turn.topic in turn.text
    asked = [t.topic for t in conv if t.category != 'no_feedback']
    assert len(asked) == len(set(asked))  # every ask is about a new country
  turn = dialogues.UserTurn('What is the capital of Peru?', 'new_ask', 'Lima', 'Peru')
  assert dialogues.correct('The capital of Peru is Lima.', turn)
  assert not dialogues.correct('[Response provided] Lima', turn)
  assert not dialogues.correct(dialogues.wrong_answer(turn), turn)


def test_tiny_config_runs(tmp_path):
  cfg = default.get_config('tiny')
  out = main.run(cfg, str(tmp_path))
  res = json.loads((tmp_path / 'results.json').read_text())
  assert set(res['accuracy']) == set(cfg.modes)
  for row in res['accuracy'].values():
    assert row['n'] == cfg.num_conversations * cfg.rounds and 0 <= row['accuracy'] <= 1
    assert row['mean_context_tokens'] > 0
  assert set(res['pollution']) == {'full', 'user_only'}
  filt = res['context_filter']
  assert filt['train_turns'] + filt['test_turns'] == cfg.num_conversations * (cfg.rounds - 1)
  assert filt['fc']['token_fraction'] == 1.0 and filt['fc']['fc_share'] == 1.0
  assert (tmp_path / 'accuracy_by_category.png').exists()
  assert out['accuracy'] == res['accuracy']
