"""Trace metrics on hand cases: backtracking ratio, self-BLEU, self-Jaccard, edit types, counts."""

import pytest

from jaxlab.evals import traces as M


def test_edit_distance_is_the_paper_difflib_distance():
  assert M.edit_distance('abc', 'abc') == 0
  assert M.edit_distance('a', 'abc') == 1       # int(3 · (1 − 2·1/4))
  assert M.edit_distance('', 'abcd') == 4


def test_backtracking_ratio_hand_cases():
  assert M.backtracking_ratio(['fd 10']) == 0.0
  assert M.backtracking_ratio(['a', 'ab', 'abc']) == 0.0          # monotone progress
  # d = [1, 0, 1] for the states before the final 'abc': one increase over three distances
  assert M.backtracking_ratio(['a', 'ab', 'a', 'abc']) == pytest.approx(1 / 3)
  assert M.distances_to_final(['a', 'ab', 'a', 'abc']) == [1, 0, 1]


@pytest.mark.slow  # importing nltk takes ~10 s on a loaded 2-core machine
def test_corpus_bleu_matches_nltk_without_smoothing_on_hand_and_random_cases():
  import numpy as np
  nltk_bleu = pytest.importorskip('nltk.translate.bleu_score')
  rng = np.random.default_rng(0)
  words = 'fd rt lt 10 90 pen red for [1..4] dot'.split()
  for _ in range(20):
    progs = [' '.join(rng.choice(words, size=rng.integers(3, 15))) for _ in range(5)]
    toks = [p.split() for p in progs]
    refs = [[t for j, t in enumerate(toks) if j != i] for i in range(len(toks))]
    for n in range(1, 5):
      w = tuple(1 / n for _ in range(n))
      assert M.corpus_bleu(refs, toks, n) == pytest.approx(nltk_bleu.corpus_bleu(refs, toks, weights=w), abs=1e-9)


def test_self_bleu_hand_cases():
  assert M.self_bleu(['fd 10 rt 90', 'fd 10 rt 90']) == pytest.approx(1.0)
  assert M.self_bleu(['a b c d', 'e f g h']) == pytest.approx(0.0)
  # two identical + one disjoint: corpus precision 8/12 at every order (6/9, 4/6, 2/3), brevity penalty 1
  assert M.self_bleu(['a b c d', 'a b c d', 'e f g h']) == pytest.approx(2 / 3)
  with pytest.raises(ValueError, match='at least 2'):
    M.self_bleu(['x'])


def test_self_jaccard_hand_case():
  # {a,b} vs {b,c}: 1/3; {a,b} vs {a,b}: 1; {b,c} vs {a,b}: 1/3 -> mean 5/9
  assert M.self_jaccard(['a b', 'b c', 'a b']) == pytest.approx(5 / 9)


def test_edit_types_categories_and_counts():
  base = 'fd 10\nrt 90'
  big = base + '\nfd 1\nfd 2\nfd 3\nfd 4\nfd 5'
  e = M.edit_types([base, big, base, base.replace('rt 90', 'rt 45'), 'pen red\n' + base.replace('rt 90', 'rt 45')])
  assert e['large_add'] == 1 and e['large_del'] == 1 and e['modify_existing'] == 1 and e['small_add'] == 1
  assert e['number_changes'] == 1 and e['lines_added'] == 6 and e['lines_deleted'] == 5
  assert M.edit_pair('pen red\nfd 10', 'pen blue\nfd 10')['color_changes'] == 1
  e = M.edit_pair('fd 10', 'fd 10\n# a comment\nsq = ->\n  fd 1')
  assert e['comment_additions'] == 1 and e['function_additions'] == 1
  assert e['category'] == 'small_add' and e['lines_added'] == 3
  # the paper code's pairing: a '+' line pairs with the nearest earlier '-' line, even one already paired
  assert M.edit_pair('pen red\nfd 10', 'pen blue\nfd 10\n# c')['lines_modified'] == 2
  assert M.edit_pair('fd 10\nrt 90', 'fd 10')['category'] == 'small_del'


def test_counts():
  p = '# title\nsq = ->\n  for [1..4]\n    fd 10 # side\n    rt 90\nsq()'
  assert M.num_comments(p) == 2 and M.num_functions(p) == 1 and M.num_loops(p) == 1
  s = M.trace_stats(['fd 10', p])
  assert s['trace_length'] == 2 and s['executes'] == 1.0 and s['final_lines'] == 6
