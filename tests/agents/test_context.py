"""jaxlab.agents.context: the FC / AO / summary / last-k builders on hand-written conversations."""

import pytest

from jaxlab.agents import context

CONV = [
    {'role': 'user', 'content': 'What is 2 + 2?'},
    {'role': 'assistant', 'content': 'It is 4, SECRET-A.'},
    {'role': 'user', 'content': 'Double your result.'},
    {'role': 'assistant', 'content': 'That gives 8, SECRET-B.'},
    {'role': 'user', 'content': 'And now halve it.'},
]


def test_full_is_verbatim():
  assert context.build(CONV, 'full') == CONV


def test_user_only_placeholders_and_system_message():
  out = context.build(CONV, 'user_only')
  assert out[0] == {'role': 'system', 'content': context.AO_SYSTEM}
  assert [m['content'] for m in out[1:] if m['role'] == 'user'] == [m['content'] for m in CONV if m['role'] == 'user']
  assert [m['content'] for m in out if m['role'] == 'assistant'] == [context.PLACEHOLDER] * 2
  assert 'SECRET' not in ' '.join(m['content'] for m in out)  # no assistant text leaks into AO
  assert context.AO_SYSTEM.startswith("In this conversation, previous assistant responses are shown as "
                                      "'[Response provided]'")


def test_user_only_keeps_an_existing_system_message_first():
  out = context.build([{'role': 'system', 'content': 'Be brief.'}] + CONV, 'user_only')
  assert out[0]['content'] == 'Be brief.\n\n' + context.AO_SYSTEM
  assert sum(m['role'] == 'system' for m in out) == 1


def test_first_turn_has_nothing_to_replace():
  assert context.build(CONV[:1], 'user_only') == CONV[:1]
  assert context.build(CONV[:1], 'summary', summaries=[]) == CONV[:1]


def test_summary_replaces_each_assistant_turn_in_order():
  out = context.build(CONV, 'summary', summaries=['Said 4.', 'Said 8.'])
  assert out[0] == {'role': 'system', 'content': context.SUMMARY_SYSTEM}
  assert [m['content'] for m in out if m['role'] == 'assistant'] == ['Said 4.', 'Said 8.']
  with pytest.raises(ValueError, match='one summary per assistant turn'):
    context.build(CONV, 'summary', summaries=['only one'])


def test_last_k_keeps_the_most_recent_answers():
  out = context.build(CONV, 'last_k', k=1)
  assert [m['content'] for m in out if m['role'] == 'assistant'] == [context.PLACEHOLDER, 'That gives 8, SECRET-B.']
  assert context.build(CONV, 'last_k', k=2) == CONV  # nothing replaced: no AO system message either
  assert context.build(CONV, 'last_k', k=0) == context.build(CONV, 'user_only')


def test_filtered_picks_fc_or_ao():
  assert context.build_filtered(CONV, True) == CONV
  assert context.build_filtered(CONV, False) == context.build(CONV, 'user_only')


def test_context_chars_counts_the_history_only():
  chars = context.context_chars(CONV)
  assert chars == {'user_chars': len('What is 2 + 2?') + len('Double your result.'),
                   'assistant_chars': len('It is 4, SECRET-A.') + len('That gives 8, SECRET-B.')}


@pytest.mark.parametrize('bad, match', [
    ([], 'empty'),
    ([{'role': 'assistant', 'content': 'hi'}], 'alternate'),
    (CONV[:2], 'end with the user turn'),
    ([{'role': 'user', 'content': 'a'}, {'role': 'user', 'content': 'b'}], 'alternate'),
    ([{'role': 'user'}], 'role and content'),
])
def test_malformed_conversations_are_one_line_errors(bad, match):
  with pytest.raises(ValueError, match=match):
    context.build(bad, 'full')


def test_unknown_mode():
  with pytest.raises(ValueError, match="unknown context mode 'nope'"):
    context.build(CONV, 'nope')
