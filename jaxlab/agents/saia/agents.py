"""SAIA's agent interface and loop, an offline scripted agent, and an LLM plug-in.

The loop (`run_agent`), per round: propose → experiment → conclude (a bias label) → self-evaluate (only when
`reflect`); the round's record (label, evidence, self-evaluation) joins the context the next round sees, and
a passing stopping rule ends the run (later rounds keep the label). One round without self-evaluation is the
one-round baseline.

`ScriptedAgent` shares the renderer's grammar, so it shows the protocol, not an LLM's skill:
  propose: the object is the commonest shape in the exemplar captions; categories are ranked by how
    surprising the commonest captioned value is under a uniform prior (binomial tail; p < 1e-3 first),
    categories the captions cannot show
    (rotation, outline, brightness, noise, blur, co-object) next, the rest last; after a failed
    self-evaluation, the reflective agent moves to the front the category whose captioned value best
    separates the high- from the low-scoring self-evaluation images (reflection on misses);
  experiment: one-factor edits of the top exemplars to every value of the proposed category;
  conclude: among the tested categories, the one whose edits moved the score most (1 − min / max of the
    per-value means), value = the best-scoring one; the reflective agent skips labels its self-evaluation
    rejected (and, if all are rejected, takes the one with the largest HIGH − LOW gap).
`LLMAgent` asks a `complete(prompt) -> text` callable to choose the category to test and to write the bias
label ('[BIAS LABEL] star; noise=noisy'), and runs the same edit experiments.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from collections.abc import Callable
from typing import Protocol

import numpy as np

from jaxlab.agents.saia import protocol as P
from jaxlab.agents.saia import tools as T
from jaxlab.data import scenes as S

NAMED = ('colour', 'size', 'texture', 'background', 'count', 'position')   # what captions name
HIDDEN = ('rotation', 'outline', 'brightness', 'noise', 'blur', 'co_object')
CATEGORIES = NAMED + HIDDEN


@dataclasses.dataclass
class RoundRecord:
  round: int
  label: P.Label
  evidence: dict
  self_eval: P.SelfEvaluation | None = None

  @property
  def stopped(self) -> bool:
    return self.self_eval is not None and self.self_eval.stop


@dataclasses.dataclass
class Context:
  """What an agent sees: the exemplars (images, scores, captions) and every earlier round."""
  exemplars: T.Images
  exemplar_scores: np.ndarray
  captions: list[str]
  history: list[RoundRecord] = dataclasses.field(default_factory=list)

  @property
  def exemplar_mean(self) -> float:
    return float(np.mean(self.exemplar_scores))

  def tested(self) -> list[str]:
    return [r.evidence['category'] for r in self.history]


class Agent(Protocol):
  def propose(self, ctx: Context) -> str: ...                                   # a category to test
  def experiment(self, tools: T.Toolbox, ctx: Context, category: str) -> dict: ...
  def conclude(self, ctx: Context, evidence: dict) -> P.Label: ...


def run_agent(agent: Agent, tools: T.Toolbox, rounds: int, reflect: bool, *, num_exemplars: int = 15,
              num_self_eval: int = 10) -> list[RoundRecord]:
  ex, scores = tools.exemplars(num_exemplars)
  ctx = Context(ex, scores, tools.describe(ex))
  for r in range(rounds):
    category = agent.propose(ctx)
    evidence = agent.experiment(tools, ctx, category)
    label = agent.conclude(ctx, evidence)
    se = P.self_evaluate(tools, label, ctx.exemplar_mean, num_self_eval) if reflect else None
    ctx.history.append(RoundRecord(r + 1, label, evidence, se))
    if ctx.history[-1].stopped:
      break
  return ctx.history


def labels_by_round(history: list[RoundRecord], rounds: int) -> list[P.Label]:
  """The label after each of `rounds` rounds (a stopped run keeps its last label)."""
  return [history[min(r, len(history) - 1)].label for r in range(rounds)]


def _caption_factors(captions: list[str]) -> list[dict]:
  out = []
  for c in captions:
    f = T.parse_prompt(c)
    f.setdefault('texture', 'solid')   # captions name stripes only
    out.append(f)
  return out


def _binomial_tail(n: int, k: int, p: float) -> float:
  """P(X ≥ k) for X ~ Binomial(n, p)."""
  return sum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))


def edit_experiment(tools: T.Toolbox, ctx: Context, category: str, num_images: int) -> dict:
  """Edit the top exemplars to every value of `category`: per-value mean scores, spread, best value."""
  ex = ctx.exemplars.take(range(min(num_images, len(ctx.exemplars))))
  means = {v: float(np.mean(tools.score(tools.edit(ex, {category: v})))) for v in S.EXTENDED_FACTORS[category]}
  hi, lo = max(means.values()), min(means.values())
  best = max(means, key=means.get)
  return {'category': category, 'value_means': means, 'spread': 1.0 - lo / max(hi, 1e-9), 'best_value': best}


class ScriptedAgent:
  """The offline agent of the module docstring."""

  def __init__(self, reflect: bool, num_edit_images: int = 5, surprise_threshold: float = 3.0,
               contrast_threshold: float = 0.3):
    self.reflect, self.num_edit_images = reflect, num_edit_images
    self.surprise_threshold, self.contrast_threshold = surprise_threshold, contrast_threshold

  def object_of(self, ctx: Context) -> str:
    shapes = [f.get('shape') for f in _caption_factors(ctx.captions)]
    return collections.Counter(shapes).most_common(1)[0][0]

  def ranking(self, ctx: Context) -> list[str]:
    facts = _caption_factors(ctx.captions)
    surprise = {}   # −log10 P(a uniform value shows up at least this often): comparable across categories
    for c in NAMED:
      vals = [f[c] for f in facts if c in f and not (c == 'position' and f.get('count') != 1)]
      if vals:
        _, n = collections.Counter(vals).most_common(1)[0]
        surprise[c] = -math.log10(max(_binomial_tail(len(vals), n, 1.0 / len(S.EXTENDED_FACTORS[c])), 1e-300))
      else:
        surprise[c] = 0.0
    strong = sorted((c for c in NAMED if surprise[c] >= self.surprise_threshold), key=lambda c: -surprise[c])
    weak = sorted((c for c in NAMED if surprise[c] < self.surprise_threshold), key=lambda c: -surprise[c])
    order = strong + list(HIDDEN) + weak
    if self.reflect and ctx.history and ctx.history[-1].self_eval is not None:
      lead = self.reflect_on_misses(ctx.history[-1].self_eval, set(ctx.tested()))
      if lead is not None:
        order = [lead] + [c for c in order if c != lead]
    return order

  def reflect_on_misses(self, se: P.SelfEvaluation, tested: set[str]) -> str | None:
    """The untested named category whose captioned value best separates the high-scoring (≥ half the
    exemplar mean) from the low-scoring self-evaluation images, if that contrast reaches the threshold."""
    images = T.Images(np.concatenate([se.high_images.pixels, se.low_images.pixels]),
                      se.high_images.scenes + se.low_images.scenes, se.high_images.seeds + se.low_images.seeds)
    scores = np.concatenate([se.high_scores, se.low_scores])
    high = scores >= 0.5 * se.exemplar_mean
    if high.all() or not high.any():
      return None
    facts = _caption_factors([S.caption(s) for s in images.scenes])
    best, best_c = None, self.contrast_threshold
    for c in NAMED:
      if c in tested:
        continue
      for v in S.EXTENDED_FACTORS[c]:
        has = np.array([f.get(c) == v for f in facts])
        contrast = has[high].mean() - has[~high].mean()
        if contrast > best_c:
          best, best_c = c, contrast
    return best

  def propose(self, ctx: Context) -> str:
    tested = set(ctx.tested())
    left = [c for c in self.ranking(ctx) if c not in tested]
    return left[0] if left else self.ranking(ctx)[0]

  def experiment(self, tools: T.Toolbox, ctx: Context, category: str) -> dict:
    return edit_experiment(tools, ctx, category, self.num_edit_images)

  def conclude(self, ctx: Context, evidence: dict) -> P.Label:
    obj = self.object_of(ctx)
    tried = {r.evidence['category']: r for r in ctx.history}
    cands = [r.evidence for r in ctx.history if r.evidence['category'] != evidence['category']] + [evidence]
    if self.reflect:
      rejected = {c for c, r in tried.items() if r.self_eval is not None and not r.self_eval.stop
                  and r.label.category == c}
      kept = [e for e in cands if e['category'] not in rejected]
      if not kept:   # every tested label failed its self-evaluation: the one with the largest HIGH − LOW gap
        best = max((r for r in ctx.history if r.self_eval is not None),
                   key=lambda r: r.self_eval.high_mean - r.self_eval.low_mean)
        return best.label
      cands = kept
    e = max(cands, key=lambda e: e['spread'])
    return P.Label(obj, e['category'], e['best_value'])


_LABEL_RE = re.compile(r'\[BIAS LABEL\]\s*([a-z]+)\s*;\s*([a-z_]+)\s*=\s*([a-z0-9]+)', re.I)


def parse_label(text: str) -> P.Label:
  """'[BIAS LABEL] star; noise=noisy' -> Label; anything else is a ValueError quoting the text."""
  m = _LABEL_RE.search(text)
  if not m:
    raise ValueError(f'no "[BIAS LABEL] object; category=value" in the agent reply {text[:200]!r}')
  obj, cat, val = m.group(1).lower(), m.group(2).lower(), m.group(3).lower()
  if obj not in S.SHAPES or cat not in CATEGORIES:
    raise ValueError(f'bias label {m.group(0)!r}: object must be one of {S.SHAPES}, category one of {CATEGORIES}')
  value = int(val) if cat == 'count' and val.isdigit() else val
  if value not in S.EXTENDED_FACTORS[cat]:
    raise ValueError(f'bias label {m.group(0)!r}: {cat} must be one of {S.EXTENDED_FACTORS[cat]}')
  return P.Label(obj, cat, value)


class LLMAgent:
  """The same loop with an LLM choosing what to test and writing the label (`complete`: prompt -> reply)."""

  def __init__(self, complete: Callable[[str], str], num_edit_images: int = 5):
    self.complete, self.num_edit_images = complete, num_edit_images
    self.transcript: list[tuple[str, str]] = []

  def _ask(self, prompt: str) -> str:
    reply = self.complete(prompt)
    self.transcript.append((prompt, reply))
    return reply

  def context_text(self, ctx: Context) -> str:
    lines = ['You study a vision model that detects one object but may rely on an attribute.',
             f'Attribute categories and values: { {c: list(S.EXTENDED_FACTORS[c]) for c in CATEGORIES} }',
             'Top dataset exemplars (score: caption):']
    lines += [f'  {s:.3f}: {c}' for s, c in zip(ctx.exemplar_scores, ctx.captions)]
    for r in ctx.history:
      lines.append(f'Round {r.round}: edits of {r.evidence["category"]} gave mean scores '
                   f'{ {str(k): round(v, 3) for k, v in r.evidence["value_means"].items()} }; '
                   f'label: {r.label.text}')
      if r.self_eval is not None:
        lines.append(r.self_eval.summary())
    return '\n'.join(lines)

  def propose(self, ctx: Context) -> str:
    reply = self._ask(self.context_text(ctx) + '\nWhich category do you test next? Reply "TEST <category>".')
    m = re.search(r'TEST\s+([a-z_]+)', reply, re.I)
    if not m or m.group(1).lower() not in CATEGORIES:
      raise ValueError(f'no "TEST <category>" with a known category in the agent reply {reply[:200]!r}')
    return m.group(1).lower()

  def experiment(self, tools: T.Toolbox, ctx: Context, category: str) -> dict:
    return edit_experiment(tools, ctx, category, self.num_edit_images)

  def conclude(self, ctx: Context, evidence: dict) -> P.Label:
    means = {str(k): round(v, 3) for k, v in evidence['value_means'].items()}
    return parse_label(self._ask(self.context_text(ctx) + f'\nEdits of {evidence["category"]} gave {means}.\n'
                                 'Reply "[BIAS LABEL] <object>; <category>=<value>".'))
