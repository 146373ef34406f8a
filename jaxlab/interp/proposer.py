"""Program search: proposers of program sources, a sandboxed loader, fit/held-out selection.

* `ProgramProposer.propose(summary) -> list[str]`: Python sources, each defining one program
  `def name(tokens, text): ...`. An LLM plugs in here: `format_prompt(summary)` renders the paper's
  prompt (per sentence, the top-k `(query_token | key_token : weight%)` pairs, k = 10% of n^2).
* `OfflineProposer`: no LLM; enumerates parameterised families (k-back offsets, windows, recency
  decays, first-token sinks mixed with local patterns) as source text, so it exercises the same path.
* `load_program_source(source, sentences)`: a cheap AST filter first (imports only ALLOWED_IMPORTS, no
  dunder attributes, no eval/exec/open/...), then `jaxlab.sandbox` runs the program on every sentence
  in a locked-down child process and returns the matrices; the parent never executes the source, and
  checks each output (shape, causal, row-stochastic). Any failure is a `ProgramRejected` with a clear
  message; `search` records it and goes on.
"""

from __future__ import annotations

import abc
import ast
import concurrent.futures
import dataclasses
import os
import textwrap

import numpy as np

from jaxlab import sandbox
from jaxlab.interp.iou import soft_iou
from jaxlab.interp.registry import Program, check_matrix, programs_from_namespace

ALLOWED_IMPORTS = frozenset({'numpy', 'math', 're', 'string', 'itertools', 'collections',
                             'unicodedata', 'functools', 'jaxlab.interp.program_lib'})
FORBIDDEN_NAMES = frozenset({'eval', 'exec', 'compile', 'open', '__import__', 'globals', 'locals',
                             'vars', 'getattr', 'setattr', 'delattr', 'input', 'breakpoint',
                             'memoryview', 'exit', 'quit'})


class ProgramRejected(ValueError):
  """A proposed program failed a sandbox check; the message says which and why."""


@dataclasses.dataclass
class HeadSummary:
  """What a proposer sees about one head."""
  layer: int
  head: int
  sentences: list[list[str]]             # token strings per sentence
  attention: list[np.ndarray]            # [n, n] per sentence


def top_pairs(tokens: list[str], att: np.ndarray, frac: float = 0.1) -> list[tuple[str, str, float]]:
  """The top 10% (query_token, key_token, weight%) pairs of one sentence."""
  n = len(tokens)
  k = max(1, int(round(frac * n * n)))
  flat = np.argsort(att, axis=None)[::-1][:k]
  return [(tokens[i], tokens[j], 100. * float(att[i, j])) for i, j in zip(*np.unravel_index(flat, att.shape))]


def format_prompt(summary: HeadSummary, max_sentences: int = 5) -> str:
  """The paper's proposer prompt: top-k pairs per sentence, then the program contract."""
  lines = [f'Attention head L{summary.layer}H{summary.head}. For each sentence, the strongest '
           '(query_token | key_token : weight%) pairs:']
  for toks, att in list(zip(summary.sentences, summary.attention))[:max_sentences]:
    pairs = ', '.join(f'({q!r} | {k!r} : {w:.0f}%)' for q, k, w in top_pairs(toks, att))
    lines.append(f'- {"".join(toks)!r}: {pairs}')
  lines.append('Propose three hypotheses for what this head does, pick the best, and write a Python '
               'function `def program(tokens, text)` returning an [n, n] numpy array whose rows sum to 1 '
               'and put weight only on keys j <= i. Allowed imports: ' + ', '.join(sorted(ALLOWED_IMPORTS)))
  return '\n'.join(lines)


class ProgramProposer(abc.ABC):
  """summary of a head's attention -> candidate program sources."""

  @abc.abstractmethod
  def propose(self, summary: HeadSummary) -> list[str]:
    ...


class OfflineProposer(ProgramProposer):
  """Parameterised families (head-independent; the search picks per head)."""

  def __init__(self, max_k: int = 6, windows=(2, 4, 8), decays=(0.3, 0.7),
               sink_weights=(0.3, 0.6, 0.9)):
    self.max_k, self.windows, self.decays, self.sink_weights = max_k, windows, decays, sink_weights

  def sources(self) -> list[str]:
    head = 'import numpy as np\nfrom jaxlab.interp.program_lib import finish\n\n'
    out = []
    for k in range(1, self.max_k + 1):
      out.append(head + textwrap.dedent(f'''
        def back_{k}(tokens, text):
          """Attend {k} tokens back."""
          n = len(tokens)
          return finish(np.eye(n, k=-{k}))'''))
    for w in self.windows:
      out.append(head + textwrap.dedent(f'''
        def window_{w}(tokens, text):
          """Uniform over the last {w} tokens."""
          i, j = np.indices((len(tokens), len(tokens)))
          return finish(((i - j) < {w}).astype(float))'''))
    for g in self.decays:
      out.append(head + textwrap.dedent(f'''
        def decay_{int(g * 10)}(tokens, text):
          """Recency decay {g} ** distance."""
          i, j = np.indices((len(tokens), len(tokens)))
          return finish({g} ** np.clip(i - j, 0, None))'''))
    for w in self.sink_weights:
      for k in range(0, 4):
        out.append(head + textwrap.dedent(f'''
          def sink_{int(w * 10)}_back_{k}(tokens, text):
            """{w:.0%} on the first token, the rest {k} tokens back."""
            n = len(tokens)
            m = (1 - {w}) * finish(np.eye(n, k=-{k}))
            if n:
              m[:, 0] += {w}
            return finish(m)'''))
    return out

  def propose(self, summary: HeadSummary) -> list[str]:
    return self.sources()


# --------------------------------------------------------------------------------------------------
# Sandbox.
# --------------------------------------------------------------------------------------------------

def _check_ast(source: str) -> None:
  try:
    tree = ast.parse(source)
  except SyntaxError as e:
    raise ProgramRejected(f'syntax error: {e}') from None
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      mods = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      mods = [node.module or '']
    else:
      mods = []
    for m in mods:
      if m not in ALLOWED_IMPORTS:
        raise ProgramRejected(f'import of {m!r} is not allowed (allowed: {sorted(ALLOWED_IMPORTS)}).')
    if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
      raise ProgramRejected(f'use of {node.id!r} is not allowed.')
    if isinstance(node, ast.Attribute) and node.attr.startswith('__'):
      raise ProgramRejected(f'access to dunder attribute {node.attr!r} is not allowed.')


# The only modules a program may import; the sandbox imports them before it runs the program.
PRELOAD = ('numpy', 'numpy.linalg', 'numpy.fft', 'numpy.random', 'math', 're', 'string', 'itertools',
           'collections', 'unicodedata', 'functools', 'jaxlab.interp.program_lib')


def program_matrices(namespace: dict, args: dict):
  """Sandbox task (runs in the child, after the program): its matrices on every sentence.

  args: {'sentences': [[token, ...], ...]}. Returns ({'name', 'doc'}, [matrix per sentence]).
  """
  progs = programs_from_namespace(namespace, '')
  if len(progs) != 1:
    raise ProgramRejected(f'source must define exactly one program f(tokens, text), found {len(progs)}.')
  prog = progs[0]
  return {'name': prog.name, 'doc': prog.doc}, [
      np.asarray(prog(toks, ''.join(toks)), np.float64) for toks in args['sentences']]


class PrecomputedProgram:
  """A proposed program's stand-in in the parent: the matrices the sandbox computed, by sentence.

  Calling it on a sentence that was not sent to the sandbox raises KeyError: the parent never runs
  proposed code, so pass every sentence you will evaluate to `load_program_source`.
  """

  def __init__(self, name: str, sentences: list[list[str]], mats: list[np.ndarray]):
    self.name = name
    self._mats = {tuple(t): m for t, m in zip(sentences, mats)}

  def __call__(self, tokens, text) -> np.ndarray:
    key = tuple(tokens)
    if key not in self._mats:
      raise KeyError(f'proposed program {self.name!r} was not evaluated on this {len(key)}-token '
                     'sentence in the sandbox.')
    return self._mats[key].copy()


def load_program_source(source: str, sentences: list[list[str]], timeout_s: float = 5.,
                        limits: sandbox.Limits | None = None) -> tuple[Program, list[np.ndarray]]:
  """Checks a proposed program, runs it in `jaxlab.sandbox` on `sentences`, validates each output.

  The parent never executes the source: the returned Program's fn is a `PrecomputedProgram` that
  answers only for `sentences`, so pass every sentence the caller will evaluate (fit, held-out and
  evaluation sentences alike).

  Returns:
    (Program with the source, its [n, n] matrices on `sentences`). Raises ProgramRejected otherwise.
  """
  _check_ast(source)
  limits = limits or sandbox.Limits(timeout_s=timeout_s, cpu_s=max(1, int(np.ceil(timeout_s))) + 1)
  sentences = [list(map(str, t)) for t in sentences]
  try:
    res = sandbox.run(source, 'jaxlab.interp.proposer:program_matrices', {'sentences': sentences},
                      limits, preload=PRELOAD)
  except sandbox.Rejected as e:
    reason = e.reason
    if e.kind == 'error':
      prefix = 'ProgramRejected: '
      raise ProgramRejected(reason[len(prefix):] if reason.startswith(prefix) else f'program raised {reason}'
                            ) from None
    raise ProgramRejected(reason) from None
  name, doc, mats = res.meta.get('name'), res.meta.get('doc'), res.arrays
  if not isinstance(name, str) or not name.isidentifier() or not isinstance(doc, str):
    raise ProgramRejected('the sandbox returned a malformed program name or docstring.')
  if len(mats) != len(sentences):
    raise ProgramRejected(f'{name}: returned {len(mats)} matrices for {len(sentences)} sentences.')
  for toks, m in zip(sentences, mats):
    try:
      check_matrix(m, len(toks))
    except ValueError as e:
      raise ProgramRejected(f'{name}: bad output on a {len(toks)}-token sentence: {e}') from None
  mats = [m.astype(np.float64) for m in mats]
  return Program(name, doc, PrecomputedProgram(name, sentences, mats), source), mats


def load_program_sources(sources: list[str], sentences: list[list[str]], timeout_s: float = 5.,
                         workers: int | None = None) -> list[tuple[Program, list[np.ndarray]] | ProgramRejected]:
  """`load_program_source` for many sources, a few sandboxes at a time (one child per source).

  Returns, per source in order, (Program, matrices) or the ProgramRejected that it raised.
  """
  def one(src):
    try:
      return load_program_source(src, sentences, timeout_s)
    except ProgramRejected as e:
      return e
  workers = workers or max(1, min(4, os.cpu_count() or 1))
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:   # threads only wait on children
    return list(pool.map(one, sources))


@dataclasses.dataclass
class SearchResult:
  best: str
  fit_iou: dict[str, float]
  heldout_iou: dict[str, float]
  rejected: list[tuple[str, str]]     # (first line of source, reason)


def search(summary_fit: HeadSummary, summary_heldout: HeadSummary, proposer: ProgramProposer,
           library: dict[str, Program] | None = None, top_n: int = 5, timeout_s: float = 5.) -> SearchResult:
  """Scores the library plus the proposals on the fit sentences, re-ranks the top_n on held-out ones."""
  sents = summary_fit.sentences + summary_heldout.sentences
  nfit = len(summary_fit.sentences)
  att = summary_fit.attention + summary_heldout.attention
  mats: dict[str, list[np.ndarray]] = {}
  for name, prog in (library or {}).items():
    mats[name] = [prog(t, ''.join(t)) for t in sents]
  rejected = []
  sources = proposer.propose(summary_fit)
  for src, out in zip(sources, load_program_sources(sources, sents, timeout_s)):
    if isinstance(out, ProgramRejected):
      rejected.append((src.strip().splitlines()[0] if src.strip() else '', str(out)))
    else:
      mats[out[0].name] = out[1]
  if not mats:
    raise ValueError('No valid program to score.')
  fit = {k: float(np.mean([soft_iou(a, p) for a, p in zip(att[:nfit], v[:nfit])])) for k, v in mats.items()}
  top = sorted(fit, key=fit.get, reverse=True)[:top_n]
  held = {k: float(np.mean([soft_iou(a, p) for a, p in zip(att[nfit:], mats[k][nfit:])])) for k in top}
  return SearchResult(max(held, key=held.get), fit, held, rejected)
