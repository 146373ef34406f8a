"""ECE, Brier, AUROC, voting and set metrics against values computed by hand."""

import numpy as np
import pytest

from jaxlab.evals import answer_sets as S
from jaxlab.evals import calibration as C


def test_brier_and_accuracy():
  q, c = [0.9, 0.2, 0.65, 1.0], [1, 0, 0, 1]
  # (0.1² + 0.2² + 0.65² + 0²) / 4 = (0.01 + 0.04 + 0.4225) / 4
  assert C.brier(q, c) == pytest.approx(0.118125)
  assert C.accuracy(c) == 0.5


def test_ece_hand_computed():
  # Bins (width 0.1): 0.05,0.08 -> bin 0; 0.55,0.52 -> bin 5; 0.95,0.97,0.99 -> bin 9.
  q = [0.05, 0.08, 0.55, 0.52, 0.95, 0.97, 0.99]
  c = [0, 1, 1, 0, 1, 1, 0]
  # bin 0: |0.065 - 0.5| = 0.435 (2/7); bin 5: |0.535 - 0.5| = 0.035 (2/7); bin 9: |0.97 - 2/3| (3/7)
  expected = 2 / 7 * 0.435 + 2 / 7 * 0.035 + 3 / 7 * abs(0.97 - 2 / 3)
  assert C.ece(q, c) == pytest.approx(expected)
  assert C.ece([1.0, 1.0], [1, 1]) == 0.0 and C.ece([0.0, 1.0], [1, 0]) == pytest.approx(1.0)


def test_ece_official_edges():
  # 1.0 is in the last bin, 0.0 in the first; 0.3 sits below linspace's 0.30000000000000004 (official quirk).
  assert C.bin_indices([0.0, 0.1, 0.3, 0.35, 0.9, 1.0]).tolist() == [0, 1, 2, 3, 9, 9]


def test_auroc_hand_computed_and_ties():
  # Correct: 0.9, 0.6, 0.6; wrong: 0.6, 0.2. Pairs: (0.9>0.6)(0.9>0.2)(0.6=0.6)(0.6>0.2)(0.6=0.6)(0.6>0.2)
  q, c = [0.9, 0.6, 0.6, 0.6, 0.2], [1, 1, 1, 0, 0]
  assert C.auroc(q, c) == pytest.approx((1 + 1 + 0.5 + 1 + 0.5 + 1) / 6)
  assert C.auroc([0.5, 0.5, 0.5], [1, 0, 1]) == pytest.approx(0.5)   # constant confidence: chance
  assert np.isnan(C.auroc([0.3, 0.4], [1, 1]))                      # one class: undefined


def test_auroc_matches_sklearn():
  metrics = pytest.importorskip("sklearn.metrics")
  rng = np.random.default_rng(0)
  q = np.round(rng.random(200), 1)  # many ties
  c = (rng.random(200) < q).astype(int)
  assert C.auroc(q, c) == pytest.approx(metrics.roc_auc_score(c, q))


def test_bad_confidence_is_clear():
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    C.brier([1.2], [1])
  with pytest.raises(ValueError, match="no examples"):
    C.ece([], [])


def test_reliability_diagram_png(tmp_path):
  path = C.reliability_diagram({"a": ([0.1, 0.9, 0.8], [0, 1, 0])}, str(tmp_path / "r.png"), title="t")
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_voting():
  answers = ["7", "3", "3", None, "7", "7"]
  conf = [0.9, 0.8, 0.8, 1.0, 0.1, 0.1]
  assert C.majority_vote(answers) == "7"                # 3 votes vs 2
  assert C.weighted_vote(answers, conf) == "3"          # 1.6 vs 1.1
  assert C.max_confidence(answers, conf) == "7"         # 0.9 (the unparsed 1.0 is ignored)
  assert C.majority_vote(["3", "7"]) == "3"             # tie -> first seen
  assert C.majority_vote([None]) is None


def test_answer_sets():
  sets = [S.AnswerSet(("a", "b", "c"), (0.2, 0.5, 0.3), tokens=10),
          S.AnswerSet(("x", "y", "z"), (0.6, 0.3, 0.1), tokens=12),
          S.from_samples(["b", "b", "q"], tokens=9)]      # vote shares 2/3, 1/3
  golds = ["a", "z", "q"]
  assert S.pass_at(sets, golds, 1) == 0.0                 # top: b, x, b
  assert S.pass_at(sets, golds, 2) == pytest.approx(1 / 3)  # q is 2nd in set 3
  assert S.pass_at(sets, golds, 3) == 1.0
  # Σ_i (p_i - y_i)²: set 1: 0.64 + 0.25 + 0.09; set 2: 0.36 + 0.09 + 0.81; set 3: (2/3)² + (2/3)²
  assert S.set_brier(sets, golds) == pytest.approx((0.98 + 1.26 + 8 / 9) / 3)
  assert S.diversity(sets, 3) == pytest.approx((1 + 1 + 2 / 3) / 3)
  q, c = S.flat_pairs(sets, golds)
  assert len(q) == 8 and c.sum() == 3
  post = [np.array([0.5, 0.3, 0.2, 0.0]), np.array([0.1, 0.1, 0.1, 0.7])]
  agree = S.posterior_agreement(sets[:1] * 2, post, ["a", "b", "c", "d"], k=3)
  assert agree["posterior_mass"] == pytest.approx((1.0 + 0.3) / 2)
  assert agree["topk_recall"] == pytest.approx((1 + 2 / 3) / 2)
  assert agree["confidence_abs_error"] == pytest.approx((0.3 + 0.2 + 0.1 + 0.1 + 0.4 + 0.2) / 6)
  summ = S.summary(sets, golds, 3)
  assert summ["coverage"] == 1.0 and summ["tokens_per_set"] == pytest.approx(31 / 3)
