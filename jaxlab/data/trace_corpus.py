"""Student traces as LM data: the paper's three variants, a BPE trained on them, token budgets, padded batches,
parsing of generated traces, and export in the paper code's trace-collection JSON.

* `variant(traces, 'trace' | 'last' | 'synthetic')` (jaxlab.data.student_sim's last / synthetic variants).
* `train_tokenizer(texts, prefix, vocab_size)`: a SentencePiece BPE over the serialised traces.
* `encode(trace, tok, max_len)`: [placeholder for the student vector] + tokens of the serialised trace + eos;
  a trace longer than `max_len` loses its earliest CODE blocks (the title and the final programs stay; the
  kept blocks keep their numbers), and a single block that is still too long is cut at the end.
* `downsample(seqs, budget)`: a seeded subset whose token count stays within `budget` (the paper trains the
  trace and synthetic models on as many tokens as the last model sees).
* `parse_trace(text)`: programs of a generated trace; a last block without end of text is dropped unless it is
  the only one (as the paper code drops an unterminated last program).
* `export_json(traces, path)`: `[[raw_trace_text, username, title], ...]` (the paper code's
  TraceCollection.dump_trace_collection_json layout), raw_trace_text = CODE blocks + end of text.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence

import numpy as np

from jaxlab.data import student_sim as S
from jaxlab.data import tokenizers

VARIANTS = ('trace', 'last', 'synthetic')
_BLOCK = re.compile(r'CODE (\d+) \((.*?)\):\n(.*?)(?=\nCODE \d+ \(|\Z)', re.DOTALL)


def variant(traces: Sequence[S.Trace], name: str) -> list[S.Trace]:
  if name == 'trace':
    return list(traces)
  if name == 'last':
    return [S.last_variant(t) for t in traces]
  if name == 'synthetic':
    return [S.synthetic_variant(t) for t in traces]
  raise ValueError(f'variant {name!r} is not one of {VARIANTS}')


def blocks_text(trace: S.Trace, start: int = 0) -> str:
  """'CODE i (date):\\nprogram' blocks from block `start` on (numbers kept), joined by newlines."""
  return '\n'.join(f'CODE {i + 1} ({trace.dates[i]}):\n{trace.programs[i]}' for i in range(start, len(trace.programs)))


def text(trace: S.Trace, start: int = 0) -> str:
  """The serialised trace without end of text: title line + blocks."""
  return f'{trace.title}\n' + blocks_text(trace, start)


def train_tokenizer(texts: Sequence[str], prefix: str, vocab_size: int) -> tokenizers.SentencePieceTokenizer:
  """SentencePiece BPE trained on the lines of `texts`, with no dummy-prefix space (a line inside a trace follows a
  newline byte, not a space, so training lines and encoded traces agree) and whole numbers as pieces."""
  return tokenizers.train_or_load('\n'.join(texts), prefix, vocab_size, add_dummy_prefix=False, split_digits=False)


def encode(trace: S.Trace, tok, max_len: int) -> list[int]:
  """[pad (the student position)] + tokens + [eos], at most max_len ids (see module docstring)."""
  for start in range(len(trace.programs)):
    ids = [tok.pad_id] + tok.encode(text(trace, start)) + [tok.eos_id]
    if len(ids) <= max_len:
      return ids
  return ids[:max_len]


def downsample(seqs: Sequence[list[int]], budget: int, seed: int) -> list[int]:
  """Indices of a seeded random subset of `seqs` whose total length stays within `budget` tokens."""
  order = np.random.default_rng(seed).permutation(len(seqs))
  keep, total = [], 0
  for i in order:
    if total + len(seqs[i]) > budget:
      continue
    keep.append(int(i))
    total += len(seqs[i])
  return sorted(keep)


def pad_batch(seqs: Sequence[list[int]], max_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """tokens [n, max_len] int32 (right-padded) and weights [n, max_len] (1 at real targets: positions ≥ 1)."""
  toks = np.full((len(seqs), max_len), pad_id, np.int32)
  w = np.zeros((len(seqs), max_len), np.float32)
  for i, s in enumerate(seqs):
    toks[i, :len(s)] = s
    w[i, 1:len(s)] = 1.0
  return toks, w


@dataclasses.dataclass
class Parsed:
  programs: list[str]
  dates: list[str]
  eos: bool


def parse_trace(generated: str, eos: bool) -> Parsed:
  """CODE blocks of generated text (after the title line); `eos` says whether generation ended by itself."""
  found = _BLOCK.findall(generated)
  progs, dates = [m[2] for m in found], [m[1] for m in found]
  if progs and not eos and len(progs) > 1:
    progs, dates = progs[:-1], dates[:-1]
  return Parsed(progs, dates, eos)


def export_json(traces: Sequence[S.Trace], path: str) -> None:
  rows = [[blocks_text(t) + S.EOT, t.username, t.title] for t in traces]
  with open(path, 'w') as f:
    json.dump(rows, f, ensure_ascii=False, indent=1)


def load_json(path: str) -> list[S.Trace]:
  """Reads export_json's file back into Traces (solved is recomputed by the caller if needed: False here)."""
  with open(path) as f:
    rows = json.load(f)
  out = []
  for raw, username, title in rows:
    p = parse_trace(raw.replace(S.EOT, ''), eos=S.EOT in raw)
    out.append(S.Trace(username, title, p.programs, p.dates, False))
  return out
