"""Every library program returns a row-stochastic causal matrix of the right size on odd inputs."""

import numpy as np
import pytest

from jaxlab.interp import registry

LIB = registry.load_folder()

ODD_INPUTS = [
    [],                                                    # empty string
    ['Hello'],                                             # one token
    [' caf', 'é', ' 北京', ' 🙂', '!', ' naïve'],          # unicode
    [' supercalifragilistic', 'expial', 'idocious'] * 3 + [' antidisestablishmentarianism' * 5],
    [' The', ' cat', ' sat', '.', ' The', ' cat', ' ran', ',', ' "', 'yes', '"', ' (', '3', ')', '?'],
    ['\n', ' ', '  ', '.', '.', '.'],
]


def test_library_size_and_docs():
  assert len(LIB) >= 25
  for name, prog in LIB.items():
    assert prog.doc, f'{name} has no docstring'
  for needed in ('previous_token', 'first_token', 'self_token', 'same_token', 'induction',
                 'last_punctuation', 'word_start', 'sentence_start', 'first_and_previous', 'two_back'):
    assert needed in LIB


@pytest.mark.parametrize('name', sorted(LIB))
def test_program_outputs_are_valid(name):
  for toks in ODD_INPUTS:
    registry.check_matrix(LIB[name](toks, ''.join(toks)), len(toks))


def test_semantics_of_key_programs():
  toks = [' A', ' B', ' C', ' A', ' B']
  ind = LIB['induction'](toks, ''.join(toks))
  assert ind[3, 1] == 1. and ind[4, 2] == 1.      # after previous A comes B; after previous B, C
  prev = LIB['previous_token'](toks, '')
  assert prev[4, 3] == 1. and prev[0, 0] == 1.


def test_registry_loads_a_folder(tmp_path):
  (tmp_path / 'mine.py').write_text(
      'import numpy as np\n\ndef _helper(n):\n  return np.eye(n)\n\n'
      'def diag(tokens, text):\n  """Self attention."""\n  return _helper(len(tokens))\n')
  lib = registry.load_folder(tmp_path)
  assert list(lib) == ['diag'] and lib['diag'].doc == 'Self attention.'
  np.testing.assert_array_equal(lib['diag']([' a', ' b'], ''), np.eye(2))
