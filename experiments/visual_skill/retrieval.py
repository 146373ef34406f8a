"""Topic retrieval from SKILL.md's table of contents: MiniLM (jaxlab's BERT import) and word overlap.

Documents are the entries' "title. summary Use when: keywords" texts; queries are the task phrasings (written
separately from the use-when lines). MiniLM embeddings are the sentence-transformers recipe: mean of the last
hidden states over real tokens, L2-normalised; the score is the cosine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from jaxlab.agents.skills import skill_md

from experiments.visual_skill import agents


class MiniLM:
  """all-MiniLM-L6-v2 sentence embeddings (asset 'minilm-l6')."""

  def __init__(self, cache_dir: str | None = None):
    from jaxlab.data import text_latents  # pylint: disable=g-import-not-at-top
    self._text_latents = text_latents
    self.encoder, self.params, self.tok = text_latents.load_minilm(cache_dir)

  def embed(self, texts: Sequence[str]) -> np.ndarray:
    """[len(texts), 384] unit vectors (jaxlab.data.text_latents.sentence_embeddings)."""
    return self._text_latents.sentence_embeddings(self.encoder, self.params, self.tok, list(texts))

  def selector(self, entries: Sequence[skill_md.Entry]):
    """A SkillAgent `select` function over these entries (their embeddings computed once)."""
    docs = self.embed([e.text for e in entries])
    topics = [e.topic for e in entries]

    def select(_, instruction: str) -> str:
      return topics[int(np.argmax(docs @ self.embed([instruction])[0]))]

    return select


def ranks(scores: np.ndarray, gold: Sequence[int]) -> np.ndarray:
  """1-based rank of each gold document; scores [queries, docs] (ties broken by document order)."""
  order = np.argsort(-scores, axis=1, kind='stable')
  return np.array([int(np.where(order[i] == g)[0][0]) + 1 for i, g in enumerate(gold)])


def recall(rank: np.ndarray, k: int) -> float:
  return float(np.mean(rank <= k))


def evaluate(entries: Sequence[skill_md.Entry], queries: Sequence[str], gold_topics: Sequence[str],
             minilm: MiniLM | None) -> dict:
  """recall@1 / @3 of word overlap and (when given) MiniLM, with each query's top-1 topic."""
  topics = [e.topic for e in entries]
  gold = [topics.index(t) for t in gold_topics]
  out = {'num_queries': len(queries), 'num_topics': len(topics)}
  ov = np.array([[agents.overlap(q, e.text) for e in entries] for q in queries], np.float64)
  methods = {'overlap': ov}
  if minilm is not None:
    methods['minilm'] = minilm.embed(queries) @ minilm.embed([e.text for e in entries]).T
  for name, scores in methods.items():
    r = ranks(scores, gold)
    out[name] = {'recall@1': recall(r, 1), 'recall@3': recall(r, 3),
                 'misses@1': [(q, t, topics[int(np.argmax(s))]) for q, t, s, rr in zip(queries, gold_topics, scores, r)
                              if rr > 1]}
  return out
