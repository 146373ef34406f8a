r"""Single-answer RLVR sampled 3× vs Multi-RLVR vs Multi-RLCR on synthetic diagnosis (tiny LM, CPU).

  python -m experiments.multi_answer.main --config=experiments/multi_answer/configs/default.py \
      --workdir=workdirs/multi_answer
One arm per invocation (each resumes; the two SFT models are trained once and reused):
  python -m experiments.multi_answer.main --config=experiments/multi_answer/configs/default.py \
      --workdir=workdirs/multi_answer --config.arms=multi_rlcr
Tiny variant (seconds; the entry test):
  python -m experiments.multi_answer.main --config=experiments/multi_answer/configs/default.py:tiny \
      --workdir=workdirs/multi_answer_tiny
"""

import ml_collections

from jaxlab.rl import recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # init, data and sampling seed
  c.arms = ("rlvr_single", "multi_rlvr", "multi_rlcr")  # see main.arms
  c.k = 3                             # candidates per answer set (K)
  recipe.add_stage_configs(c)         # mesh, model, sft, rl (+ rl.grpo): defaults commented in jaxlab/rl/recipe.py
  c.rl.grpo.max_new_tokens = 20       # completion budget (single-answer arms stop after 4)

  c.task = ml_collections.ConfigDict()
  c.task.num_diseases = 8             # labels of the diagnosis model
  c.task.num_symptoms = 12            # symptom vocabulary
  c.task.model_seed = 0               # seed of the fixed prior / emission tables
  c.task.num_sft = 20000              # SFT examples
  c.task.num_rl = 20000               # RL prompts (another seed)
  c.task.prompt_len = 8               # "patient s3 s7 s3 s1 :" (at most 4 symptoms)
  c.task.completion_len = 20          # K·6 words + eos (single answer: 3 words + eos)
  c.task.sft_confidence = "miscalibrated"  # SFT sets: 'miscalibrated' (posterior draws, shrunk p) | 'uniform' (README)

  c.eval = ml_collections.ConfigDict()
  c.eval.num_test = 2000              # test patients
  c.eval.num_during = 400             # patients of the in-training eval
  c.eval.single_samples = 3           # samples of the single-answer model per set (k)
  c.eval.single_temperature = 0.7     # their sampling temperature (paper 0.7)

  if arg == "tiny":
    recipe.shrink_to_tiny(c)
    c.task.num_sft, c.task.num_rl = 256, 256
    c.eval.num_test, c.eval.num_during = 8, 8
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
  return c
