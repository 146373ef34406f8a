"""Program search: sandbox rejections are clear and do not stop the search; offline proposer works."""

import numpy as np
import pytest

from jaxlab.interp import proposer, registry

SENTS = [[' The', ' cat', ' sat', '.', ' The', ' dog'], [' Hi', '!']]

BAD = {
    'infinite loop': ('def loop(tokens, text):\n  while True:\n    pass\n', 'timed out'),
    'import os': ('import os\ndef bad(tokens, text):\n  return os.listdir(".")\n', "import of 'os'"),
    'wrong shape': ('import numpy as np\ndef shape(tokens, text):\n  return np.ones((2, 3))\n', 'shape'),
    'not causal': ('import numpy as np\ndef fut(tokens, text):\n  n = len(tokens)\n'
                   '  return np.ones((n, n)) / max(n, 1)\n', 'causal'),
    'raises': ('def boom(tokens, text):\n  return 1 / 0\n', 'ZeroDivisionError'),
    'dunder': ('def esc(tokens, text):\n  return ().__class__.__bases__\n', 'dunder'),
    'eval': ('def ev(tokens, text):\n  return eval("1")\n', "'eval'"),
    'syntax': ('def (:\n', 'syntax error'),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_programs_are_rejected_with_clear_message(case):
  src, expected = BAD[case]
  with pytest.raises(proposer.ProgramRejected, match=expected):
    proposer.load_program_source(src, SENTS, timeout_s=1.)


class _MixedProposer(proposer.ProgramProposer):
  def propose(self, summary):
    good = 'import numpy as np\nfrom jaxlab.interp.program_lib import finish\n' \
           'def prev(tokens, text):\n  """Previous token."""\n  return finish(np.eye(len(tokens), k=-1))\n'
    return [BAD['infinite loop'][0], BAD['import os'][0], good, BAD['wrong shape'][0]]


def _summary(sents):
  att = []
  for t in sents:
    n = len(t)
    m = np.eye(n, k=-1); m[0, 0] = 1.
    att.append(m)
  return proposer.HeadSummary(0, 0, sents, att)


def test_search_survives_bad_programs_and_finds_the_good_one(monkeypatch):
  s = _summary(SENTS)
  res = proposer.search(s, s, _MixedProposer(), library=None, timeout_s=1.)
  assert res.best == 'prev' and res.heldout_iou['prev'] > 0.99
  assert len(res.rejected) == 3
  assert any('timed out' in r for _, r in res.rejected)


def test_offline_proposer_and_prompt():
  s = _summary(SENTS)
  lib = {k: v for k, v in registry.load_folder().items() if k in ('first_token', 'uniform_causal')}
  small = proposer.OfflineProposer(max_k=2, windows=(2,), decays=(0.3,), sink_weights=(0.3,))  # 8 sources
  res = proposer.search(s, s, small, library=lib)
  assert not res.rejected and res.best in ('back_1', 'sink_3_back_1') and res.heldout_iou[res.best] > 0.9
  prompt = proposer.format_prompt(s)
  assert ': 100%)' in prompt and "' The cat sat." in prompt and 'def program(tokens, text)' in prompt
