"""Trace LM data: variants, truncation that keeps the final program, token budgets, parsing, JSON export."""

import json

from jaxlab.data import student_sim as S
from jaxlab.data import trace_corpus as C
from jaxlab.data import tokenizers


def _trace(n=4):
  progs = [f'fd {10 * (i + 1)}\nrt 90' for i in range(n)]
  return S.Trace('u1', 'squares', progs, [f'2024-01-01 10:00:0{i}' for i in range(n)], True)


def test_text_and_parse_round_trip_and_unterminated_block():
  t = _trace()
  txt = C.text(t)
  assert txt.startswith('squares\nCODE 1 (2024-01-01 10:00:00):\nfd 10\nrt 90\nCODE 2 (')
  body = txt.split('\n', 1)[1]
  p = C.parse_trace(body, eos=True)
  assert p.programs == t.programs and p.dates == t.dates
  assert C.parse_trace(body, eos=False).programs == t.programs[:-1]  # the cut-off last block is dropped
  assert C.parse_trace('CODE 1 (x):\nfd 1', eos=False).programs == ['fd 1']  # unless it is the only one


def test_encode_truncates_from_the_front_and_downsample_budget():
  tok = tokenizers.ByteTokenizer()
  t = _trace(6)
  full = C.encode(t, tok, 10_000)
  assert full[0] == tok.pad_id and full[-1] == tok.eos_id and tok.decode(full[1:-1]) == C.text(t)
  short = C.encode(t, tok, 80)
  assert len(short) <= 80 and tok.decode(short[1:-1]).endswith(t.final)
  assert tok.decode(short[1:-1]).startswith('squares\nCODE ')
  seqs = [[0] * k for k in (5, 10, 20, 40)]
  keep = C.downsample(seqs, 32, seed=0)
  assert sum(len(seqs[i]) for i in keep) <= 32 and keep == sorted(keep) and keep
  toks, w = C.pad_batch([[7, 8, 9]], 5, 0)
  assert toks.tolist() == [[7, 8, 9, 0, 0]] and w.tolist() == [[0, 1, 1, 0, 0]]


def test_variants_and_export_json(tmp_path):
  t = _trace()
  assert [len(x.programs) for x in (C.variant([t], v)[0] for v in C.VARIANTS)] == [4, 1, 2]
  path = tmp_path / 'samples.json'
  C.export_json([t], str(path))
  rows = json.loads(path.read_text())
  assert rows[0][1:] == ['u1', 'squares'] and rows[0][0].startswith('CODE 1 (') and rows[0][0].endswith(S.EOT)
  back = C.load_json(str(path))[0]
  assert back.programs == t.programs and back.dates == t.dates
