"""Verifiable synthetic conversations for "Do LLMs benefit from their own words?" at 135M scale.

Every user turn has a gold answer that a string check verifies, and a known category:

* new_ask      "What is the capital of {country}?"                      gold: the capital
* feedback     "No, I meant {country}. What is its capital?"            gold: that capital (self-sufficient:
               the turn says everything needed; a correction of the previous ask, as in "now use 7 apples")
* no_feedback  "Which country is that city the capital of?"              gold: the previous turn's country
               (a follow-up that builds on the previous answer; with user turns only the model must recover
               it from the previous question)

Round 1 is a new ask; later rounds draw a category uniformly, a no_feedback follow-up only after a turn
whose answer is a capital. A 135M model knows these capitals (SmolLM2-135M-Instruct answers 13 of the
16 below correctly when asked directly; measured in this folder's README) but cannot do the arithmetic
word problems the paper-style "double your result" follow-ups need (1 of 16 correct), hence capitals.
"""

from __future__ import annotations

import dataclasses

import numpy as np

CAPITALS = {
    'France': 'Paris', 'Germany': 'Berlin', 'Italy': 'Rome', 'Spain': 'Madrid', 'Japan': 'Tokyo',
    'China': 'Beijing', 'Russia': 'Moscow', 'Egypt': 'Cairo', 'Canada': 'Ottawa', 'Greece': 'Athens',
    'Portugal': 'Lisbon', 'Austria': 'Vienna', 'Poland': 'Warsaw', 'Ireland': 'Dublin', 'Norway': 'Oslo',
    'Sweden': 'Stockholm', 'England': 'London', 'Hungary': 'Budapest', 'Finland': 'Helsinki',
    'Denmark': 'Copenhagen', 'Thailand': 'Bangkok', 'Peru': 'Lima', 'Kenya': 'Nairobi', 'Cuba': 'Havana',
}
FOLLOW_UP = 'Which country is that city the capital of?'


@dataclasses.dataclass(frozen=True)
class UserTurn:
  text: str
  category: str  # new_ask | feedback | no_feedback
  gold: str      # the answer must contain it (case-insensitive)
  topic: str     # the country the turn is about


def conversation(rng: np.random.Generator, rounds: int) -> list[UserTurn]:
  """One conversation of `rounds` user turns (see the module docstring)."""
  countries = list(CAPITALS)
  turns: list[UserTurn] = []
  for r in range(rounds):
    fresh = str(rng.choice([c for c in countries if all(c != t.topic for t in turns)]))
    kinds = ['new_ask', 'feedback'] + (['no_feedback'] if turns and turns[-1].category != 'no_feedback' else [])
    kind = 'new_ask' if r == 0 else str(rng.choice(kinds))
    if kind == 'new_ask':
      turns.append(UserTurn(f'What is the capital of {fresh}?', kind, CAPITALS[fresh], fresh))
    elif kind == 'feedback':
      turns.append(UserTurn(f'No, I meant {fresh}. What is its capital?', kind, CAPITALS[fresh], fresh))
    else:
      turns.append(UserTurn(FOLLOW_UP, kind, turns[-1].topic, turns[-1].topic))
  return turns


def correct(answer: str, turn: UserTurn) -> bool:
  """The gold string occurs in the answer (and the answer is not a copied placeholder)."""
  return turn.gold.lower() in answer.lower() and '[response provided]' not in answer.lower()


def wrong_answer(turn: UserTurn) -> str:
  """A fluent wrong answer to a capital question (for the pollution arm): another country's capital."""
  countries = list(CAPITALS)
  other = CAPITALS[countries[(countries.index(turn.topic) + 1) % len(countries)]]
  return f'The capital of {turn.topic} is {other}.'
