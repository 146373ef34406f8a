"""Turn categories, the context filter (when does the assistant history help?) and the pairwise judge.

From "Do LLMs benefit from their own words?" (arXiv 2602.24287):

* Categories of a user turn: `new_ask` (self-contained), `feedback` (a follow-up that evaluates or corrects
  the previous answer), `no_feedback` (a follow-up that builds on it without judging it). The paper labels
  with GPT-5, rule first: an unclear pronoun, a negation, an ordinal, a fragment or an imperative about
  past behaviour rules out new_ask. `categorise` is jaxlab's rule set written from that description (the
  paper's rules are not published); a strong model can replace it (any callable turn -> category).
* The filter: label y = 1 where the judge prefers full context (FC) over user-turn-only (AO) (ties 0).
  Features: round, total rounds, user and assistant context characters, the category one-hot, and PCA-20
  of text embeddings of the prompt and of the history (only the first and the last user/assistant pair
  beyond 4 turns). An L1 logistic regression with balanced classes, C chosen by randomised search with
  5-fold F1 (scikit-learn). Decision: FC where P̂ ≥ τ; τ = 0 is FC everywhere, τ ≥ 1 AO everywhere.
* The judge: one pairwise call per round in random order, a JSON verdict naming the winner or a tie for
  quality and for staying on topic (`PAIRWISE_SCHEMA`). `Judge` is where a strong model plugs in;
  `judge_pair` randomises the order and maps the verdict back.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from jaxlab.agents import context

CATEGORIES = ('new_ask', 'feedback', 'no_feedback')

_FEEDBACK = re.compile(
    r"^(no|nope|wrong)\b|\b(incorrect|not (right|correct|what i)|that'?s not|that is not|mistake|you (forgot|"
    r"missed|didn'?t|did not|misunderstood)|try again|doesn'?t work|does not work|is wrong|are wrong|still "
    r"(wrong|not)|instead of|should be|actually)\b", re.I)
_REFERS_BACK = re.compile(
    r"^(it|that|this|these|those|they|them|and|also|so|then|now|ok|okay|great|thanks|more|again|same|continue|"
    r"why|how about|what about)\b|\b(your (answer|result|response|code|previous|last|example|list|solution)|"
    r"above|previous|earlier|you (said|wrote|gave|mentioned)|the (first|second|third|last) (one|point|step|"
    r"option)|\b(that|this|these|those) (city|one|answer|number|result|code|list|country|word|part)\b|"
    r"(rewrite|shorten|expand|redo|rephrase|continue|elaborate)\b|make it|do the same)", re.I)


def categorise(turn: str, round_index: int) -> str:
  """jaxlab's rule-based category of a user turn (`round_index` counts from 1; round 1 is a new ask)."""
  text = turn.strip()
  if round_index <= 1:
    return 'new_ask'
  if _FEEDBACK.search(text):
    return 'feedback'
  fragment = len(text.split()) <= 3 and not text.endswith('?')
  if _REFERS_BACK.search(text) or fragment:
    return 'no_feedback'
  return 'new_ask'


@dataclasses.dataclass(frozen=True)
class Turn:
  """One user turn to answer, with what the filter may know about it."""

  messages: list[dict[str, str]]  # [system?] (user assistant)* user: the FC context
  round_index: int  # 1-based
  total_rounds: int
  category: str


def history_text(messages: Sequence[dict[str, str]]) -> str:
  """The history the filter embeds: every earlier turn, or the first and last pairs beyond 4 turns."""
  hist = [m for m in messages[:-1] if m['role'] != 'system']
  if len(hist) > 4:
    hist = hist[:2] + hist[-2:]
  return '\n'.join(f"{m['role']}: {m['content']}" for m in hist)


def numeric_features(turn: Turn) -> np.ndarray:
  """[round, total rounds, user chars, assistant chars, one-hot category] as float64."""
  chars = context.context_chars(turn.messages)
  onehot = [float(turn.category == c) for c in CATEGORIES]
  return np.array([turn.round_index, turn.total_rounds, chars['user_chars'], chars['assistant_chars'], *onehot])


class ContextFilter:
  """The L1 logistic-regression filter over turn features (scikit-learn), FC where P̂ ≥ τ.

  Args:
    embed: texts -> [n, dim] embeddings (MiniLM in experiments/own_words; the paper used
      text-embedding-3-large).
    pca_dim: PCA components of the prompt and of the history embeddings (20 in the paper; capped by the
      number of training rows).
    n_search: randomised-search draws of C (log-uniform 1e-3..1e2), each scored by 5-fold F1.
  """

  def __init__(self, embed: Callable[[list[str]], np.ndarray], *, pca_dim: int = 20, n_search: int = 20,
               folds: int = 5, seed: int = 0):
    self.embed, self.pca_dim, self.n_search, self.folds, self.seed = embed, pca_dim, n_search, folds, seed
    self.model = None

  def _raw(self, turns: Sequence[Turn]) -> np.ndarray:
    prompts = self.embed([t.messages[-1]['content'] for t in turns])
    hist = self.embed([history_text(t.messages) or '(none)' for t in turns])
    return np.concatenate([np.stack([numeric_features(t) for t in turns]), prompts, hist], axis=1)

  def fit(self, turns: Sequence[Turn], labels: Sequence[int]) -> ContextFilter:
    """Fits on labels y = 1 where full context was preferred; returns self (`cv_f1` holds the search's F1)."""
    # pylint: disable=import-outside-toplevel
    from scipy.stats import loguniform
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    y = np.asarray(labels, int)
    if len(turns) != len(y) or len(set(y.tolist())) < 2:
      raise ValueError(f'ContextFilter.fit needs one label per turn and both classes; got {len(turns)} turns, '
                       f'labels {sorted(set(y.tolist()))}')
    x = self._raw(turns)
    n_num, dim = len(CATEGORIES) + 4, (x.shape[1] - len(CATEGORIES) - 4) // 2
    folds = min(self.folds, int(np.bincount(y).min()))
    k = max(1, min(self.pca_dim, dim, int(len(y) * (folds - 1) / folds) - 1))
    columns = ColumnTransformer([('num', 'passthrough', list(range(n_num))),
                                 ('prompt', PCA(k, random_state=self.seed), list(range(n_num, n_num + dim))),
                                 ('history', PCA(k, random_state=self.seed), list(range(n_num + dim, n_num + 2 * dim)))])
    pipe = make_pipeline(columns, StandardScaler(),
                         LogisticRegression(l1_ratio=1.0, solver='liblinear', class_weight='balanced'))
    search = RandomizedSearchCV(pipe, {'logisticregression__C': loguniform(1e-3, 1e2)}, n_iter=self.n_search,
                                scoring='f1', cv=StratifiedKFold(max(folds, 2), shuffle=True, random_state=self.seed),
                                random_state=self.seed)
    search.fit(x, y)
    self.model, self.cv_f1 = search.best_estimator_, float(search.best_score_)
    self.cv_f1_std = float(search.cv_results_['std_test_score'][search.best_index_])
    return self

  def predict_proba(self, turns: Sequence[Turn]) -> np.ndarray:
    """[n] P̂(full context preferred)."""
    if self.model is None:
      raise ValueError('ContextFilter: call fit() first')
    return self.model.predict_proba(self._raw(turns))[:, 1]


def use_full(probabilities: np.ndarray, tau: float) -> np.ndarray:
  """[n] bool: FC where P̂ ≥ τ (τ ≤ 0: everywhere; τ ≥ 1: nowhere)."""
  p = np.asarray(probabilities)
  return np.ones(p.shape, bool) if tau <= 0 else (np.zeros(p.shape, bool) if tau >= 1 else p >= tau)


PAIRWISE_SCHEMA = {
    'type': 'object',
    'properties': {'quality': {'enum': ['A', 'B', 'tie']}, 'on_topic': {'enum': ['A', 'B', 'tie']},
                   'reason': {'type': 'string'}},
    'required': ['quality', 'on_topic'],
}
JUDGE_INSTRUCTIONS = (
    'You compare two assistant responses to the last user message of a conversation. Reply with JSON only: '
    '{"quality": "A" | "B" | "tie", "on_topic": "A" | "B" | "tie", "reason": "<one sentence>"}.')


class Judge(Protocol):
  """A pairwise judge: reads the conversation and two candidate answers, returns the verdict JSON text."""

  def __call__(self, messages: list[dict[str, str]], response_a: str, response_b: str) -> str: ...


def parse_verdict(text: str) -> dict[str, str]:
  """The verdict in `text` (the first {...} object) checked against PAIRWISE_SCHEMA; ValueError otherwise."""
  match = re.search(r'\{.*\}', text, re.S)
  if not match:
    raise ValueError(f'judge reply holds no JSON object: {text[:80]!r}')
  verdict = json.loads(match.group(0))
  for key in PAIRWISE_SCHEMA['required']:
    if verdict.get(key) not in PAIRWISE_SCHEMA['properties'][key]['enum']:
      raise ValueError(f'judge reply: {key}={verdict.get(key)!r} not in A/B/tie')
  return verdict


def judge_pair(judge: Judge, messages: list[dict[str, str]], first: str, second: str,
               rng: np.random.Generator) -> dict[str, str]:
  """One judge call in random order; the verdict names 'first', 'second' or 'tie' per criterion."""
  swap = bool(rng.integers(2))
  a, b = (second, first) if swap else (first, second)
  verdict = parse_verdict(judge(messages, a, b))
  name = {'A': 'second' if swap else 'first', 'B': 'first' if swap else 'second', 'tie': 'tie'}
  return {k: name[verdict[k]] for k in PAIRWISE_SCHEMA['required']} | {'swapped': swap}
