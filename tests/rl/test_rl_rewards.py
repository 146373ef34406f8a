"""Rewards on hand-written completions equal the official formulas (values written out by hand)."""

import math

import pytest

from jaxlab.rl import rewards as R

GOLD = {"answer": "Paris"}


def total(comps, weights):
  return sum(w * comps.get(k, 0.0) for k, w in weights.items())


WELL = ("<think> capital of France </think> <answer> Paris </answer> <analysis> sure </analysis> "
        "<confidence> 0.8 </confidence>")


@pytest.mark.parametrize("text, fmt, acc, q", [
    (WELL, 1, 1, 0.8),                                                       # well-formed, correct
    (WELL.replace("Paris", "Lyon"), 1, 0, 0.8),                              # well-formed, wrong
    (WELL.replace("0.8", "1"), 1, 1, 1.0),                                   # integer confidence parses
    (WELL + " trailing", 0, 0, None),                                        # text after </confidence>
    (WELL.replace("<analysis> sure </analysis> ", ""), 0, 0, None),          # missing analysis tags
    (WELL.replace("</think>", ""), 0, 0, None),                              # missing </think>
    (WELL.replace("0.8", "1.3"), 0, 0, None),                                # confidence out of range
    (WELL.replace("0.8", "-0.1"), 0, 0, None),                               # negative confidence
    (WELL.replace("0.8", "high"), 0, 0, None),                               # unparseable confidence
    (WELL.replace("0.8", "nan"), 0, 0, None),                                # nan (float() accepts it)
    ("<answer> Paris </answer>", 0, 0, None),                                # malformed: tags missing
])
def test_rlcr_single(text, fmt, acc, q):
  c = R.rlcr(text, GOLD, fmt="tabc")
  assert c["format"] == fmt and c["accuracy"] == acc
  brier = 1 - (acc - q) ** 2 if fmt else 0.0  # official: 0 when the format fails
  assert c["brier"] == pytest.approx(brier)
  assert total(c, R.RLCR_WEIGHTS) == pytest.approx(0.5 * fmt + 0.5 * acc + 0.5 * brier)


def test_rlcr_hand_values():
  # correct at 0.8: 0.5 + 0.5 + 0.5·(1 - 0.04) = 1.48; wrong at 0.8: 0.5 + 0 + 0.5·(1 - 0.64) = 0.68.
  assert total(R.rlcr(WELL, GOLD), R.RLCR_WEIGHTS) == pytest.approx(1.48)
  assert total(R.rlcr(WELL.replace("Paris", "Lyon"), GOLD), R.RLCR_WEIGHTS) == pytest.approx(0.68)
  # The last <answer> and <confidence> count; normalisation ignores case, articles and punctuation.
  two = WELL.replace("<answer> Paris </answer>", "<answer> Lyon </answer> <answer> the paris. </answer>")
  assert R.rlcr(two, GOLD)["accuracy"] == 1


def test_rlvr_and_formats():
  ta = "<think> x </think> <answer> Paris </answer>"
  assert R.rlvr(ta, GOLD, fmt="ta") == {"format": 1.0, "accuracy": 1.0}
  # 'ta' is anchored at the end: a confidence after the answer breaks it (official regex).
  assert R.rlvr(ta + " <confidence> 0.5 </confidence>", GOLD, fmt="ta")["format"] == 0
  ac = "<answer> Paris </answer> <confidence> 0.5 </confidence>"
  c = R.rlvr(ac, GOLD, fmt="ac")
  assert (c["format"], c["accuracy"], c["confidence"]) == (1.0, 1.0, 0.5)
  assert total(c, R.RLVR_WEIGHTS) == 1.0
  assert R.rlvr("<answer> Paris </answer>", GOLD, fmt="ac")["format"] == 0  # confidence required
  with pytest.raises(ValueError, match="unknown single-answer format"):
    R.rlvr(ac, GOLD, fmt="xyz")


def test_log_score():
  ac = "<answer> Paris </answer> <confidence> 0.8 </confidence>"
  c = R.log_score(ac, GOLD, fmt="ac")
  assert c["log_score"] == pytest.approx(math.log(0.8))
  wrong = R.log_score(ac.replace("Paris", "Rome"), GOLD, fmt="ac")
  assert wrong["log_score"] == pytest.approx(math.log(0.2))
  # q = 0 on a wrong answer: log(1 - eps) ≈ 0, the paper's "confident wrong answer" that the score rewards.
  zero = R.log_score(ac.replace("Paris", "Rome").replace("0.8", "0.0"), GOLD, fmt="ac", eps=1e-3)
  assert zero["log_score"] == pytest.approx(math.log(1 - 1e-3))
  bad = R.log_score("<answer> Paris </answer>", GOLD, fmt="ac", eps=1e-3)
  assert bad["format"] == 0 and bad["log_score"] == pytest.approx(math.log(1e-3))


def test_log_score_rewards_confident_wrong_answers_but_brier_does_not():
  """An item answered correctly with probability 0.1: state it honestly (q = 0.1) or dodge (wrong, q = 0)."""
  def reward(fn, weights, answer, q):
    return total(fn(f"<answer> {answer} </answer> <confidence> {q} </confidence>", GOLD, fmt="ac"), weights)
  for fn, weights, dodge_wins in ((R.log_score, R.LOG_SCORE_WEIGHTS, True), (R.rlcr, R.RLCR_WEIGHTS, False)):
    honest = 0.1 * reward(fn, weights, "Paris", 0.1) + 0.9 * reward(fn, weights, "Rome", 0.1)
    dodge = reward(fn, weights, "Rome", 0.0)
    assert (dodge > honest) == dodge_wins
  # By hand: log score honest 0.05 + 0.5·(0.1 ln 0.1 + 0.9 ln 0.9) + 0.5 = 0.387; dodge 0.5 + 0.5 ln(0.999).
  honest = 0.1 * reward(R.log_score, R.LOG_SCORE_WEIGHTS, "Paris", 0.1) + 0.9 * reward(
      R.log_score, R.LOG_SCORE_WEIGHTS, "Rome", 0.1)
  assert honest == pytest.approx(0.5 + 0.05 + 0.5 * (0.1 * math.log(0.1) + 0.9 * math.log(0.9)))


def multi(answers, confs, think=True):
  body = " ".join(f"<answer{i}> {a} </answer{i}> <confidence{i}> {c} </confidence{i}>"
                  for i, (a, c) in enumerate(zip(answers, confs), 1))
  return f"<think> t </think> <analysis> a </analysis> {body}" if think else body


@pytest.mark.parametrize("answers, confs, gate, acc, brier", [
    (("Paris", "Lyon", "Nice"), ("0.6", "0.3", "0.1"), 1, 1, 1 - (0.16 + 0.09 + 0.01) / 3),
    (("Rome", "Lyon", "Nice"), ("0.6", "0.3", "0.1"), 1, 0, 1 - (0.36 + 0.09 + 0.01) / 3),
    (("Rome", "Lyon", "Paris"), ("0.2", "0.2", "0.2"), 1, 1, 1 - (0.04 + 0.04 + 0.64) / 3),
    (("Paris", "paris ", "Nice"), ("0.3", "0.3", "0.3"), 0, 0, 0.0),      # duplicate answers
    (("Paris", "Lyon", "Nice"), ("0.6", "0.3", "0.2"), 0, 0, 0.0),        # Σp = 1.1 > 1
    (("Paris", "Lyon", "Nice"), ("0.6", "1.2", "0.1"), 0, 0, 0.0),        # confidence out of range
    (("Paris", "Lyon", "Nice"), ("0.6", "x", "0.1"), 0, 0, 0.0),          # unparseable confidence
])
def test_multi_rlcr(answers, confs, gate, acc, brier):
  c = R.multi_rlcr(multi(answers, confs), GOLD, k=3)
  assert c["format"] == gate and c["accuracy"] == acc and c["brier"] == pytest.approx(brier)
  assert total(c, R.RLCR_WEIGHTS) == pytest.approx(0.5 * gate + 0.5 * acc + 0.5 * brier)
  v = R.multi_rlvr(multi(answers, confs), GOLD, k=3)
  assert "brier" not in v and total(v, R.RLVR_WEIGHTS) == pytest.approx(0.5 * gate + 0.5 * acc)


def test_multi_missing_tags_and_order():
  good = multi(("Paris", "Lyon", "Nice"), ("0.6", "0.3", "0.1"))
  assert R.multi_rlcr(good.replace("<think> t </think> ", ""), GOLD)["format"] == 0        # needs <think>
  assert R.multi_rlcr(good.replace("<analysis> a </analysis> ", ""), GOLD)["format"] == 0  # needs <analysis>
  assert R.multi_rlcr(good.replace("<confidence3> 0.1 </confidence3>", ""), GOLD)["format"] == 0
  # Without reasoning tags (tiny models) the same candidates pass.
  bare = multi(("Paris", "Lyon", "Nice"), ("0.6", "0.3", "0.1"), think=False)
  assert R.multi_rlcr(bare, GOLD, reasoning_tags=False)["format"] == 1
  # A confidence before its answer breaks the ordered extraction.
  swapped = bare.replace("<answer1> Paris </answer1> <confidence1> 0.6 </confidence1>",
                         "<confidence1> 0.6 </confidence1> <answer1> Paris </answer1>")
  assert R.multi_rlcr(swapped, GOLD, reasoning_tags=False)["format"] == 0


def test_multi_rlvr_answers_only():
  text = "<think> t </think> <answer1> Rome </answer1> <answer2> Paris </answer2> <answer3> Rome </answer3>"
  # The official answers-only variant has no uniqueness gate: any correct candidate scores.
  assert R.multi_rlvr(text, GOLD, k=3, confidences=False) == {"format": 1.0, "accuracy": 1.0}
  assert R.multi_rlvr(text.replace("<answer3> Rome </answer3>", ""), GOLD, k=3, confidences=False)["format"] == 0


def test_numeric_match():
  assert R.numeric_match("The answer is $1,234.", "1234")
  assert R.numeric_match("x = -3.50", "-3.5")
  assert not R.numeric_match("no number", "3") and not R.numeric_match("41", "42")
