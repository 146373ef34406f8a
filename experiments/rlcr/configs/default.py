r"""RLCR vs RLVR vs log score on noisy sums with known per-item uncertainty (tiny LM from scratch, CPU).

  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py --workdir=workdirs/rlcr
One arm per invocation (each resumes; SFT is trained once and reused):
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py --workdir=workdirs/rlcr \
      --config.arms=rlcr
Tiny variant (seconds; the entry test):
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:tiny --workdir=workdirs/rlcr_tiny
SmolLM2-135M-Instruct as the policy on reasoning-gym arithmetic (6 GRPO steps on CPU, ~13 min):
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:smollm2 --workdir=workdirs/rlcr_smol
"""

import ml_collections

from jaxlab.rl import recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # init, data and sampling seed
  c.arms = ("rlvr", "rlcr", "log_score")  # reward arms trained from the same SFT model (see main.arms)
  c.real_model = False                # True: SmolLM2-135M-Instruct as the policy (experiments/rlcr/real_model.py)
  recipe.add_stage_configs(c)         # mesh, model, sft, rl (+ rl.grpo): defaults commented in jaxlab/rl/recipe.py
  c.rl.log_every = 25                 # metric cadence
  c.rl.grpo.prompts_per_step = 32     # prompts per update (batch 512 completions)

  c.task = ml_collections.ConfigDict()
  c.task.num_sft = 20000              # SFT examples ('train' variant)
  c.task.num_rl = 20000               # RL prompts ('train' variant, another seed)
  c.task.prompt_len = 10              # left-padded prompt length (3 operands: 9 words)
  c.task.completion_len = 10          # 9 words + eos
  c.task.log_eps = 1e-3               # log-score clip: q in [eps, 1 - eps]
  c.task.sft_confidence = "miscalibrated"  # SFT confidences: 'miscalibrated' (overconfident) | 'uniform' (README)

  c.eval = ml_collections.ConfigDict()
  c.eval.num_test = 2000              # items per test set (greedy)
  c.eval.sets = ("id", "shift_mix", "shift_3op")  # in distribution and two shifts (jaxlab.data.rl_tasks)
  c.eval.num_during = 400             # ID items of the in-training eval
  c.eval.vote_items = 400             # ID items for the voting curves
  c.eval.vote_samples = 16            # samples per item (n = 1, 2, 4, ... up to this)
  c.eval.vote_temperature = 0.7       # sampling temperature for voting

  if arg == "tiny":
    recipe.shrink_to_tiny(c)
    c.task.num_sft, c.task.num_rl = 256, 256
    c.eval.num_test, c.eval.num_during, c.eval.vote_items, c.eval.vote_samples = 8, 8, 2, 4
  elif arg == "smollm2":  # the same RLCR arm with a real policy: a few steps on CPU (real_model.py)
    c.real_model = True
    c.arms = ("rlcr",)
    c.task.source = "basic_arithmetic"  # reasoning-gym generator ('gsm8k': GSM8K test, ~0 accuracy at 135M)
    c.task.arithmetic = dict(min_terms=2, max_terms=2, min_digits=1, max_digits=2, operators=("+", "-"),
                             allow_parentheses=False, allow_negation=False)  # "Calculate 13 - 92." (1-2 digits)
    c.task.shots = 2                  # worked in-context examples in the chat (the format; no SFT warm-up)
    c.task.num_rl = 64                # RL prompts (seed c.seed)
    c.task.prompt_len = 192           # chat-templated prompt tokens (longer prompts are skipped)
    c.rl.total_steps, c.rl.log_every, c.rl.eval_every, c.rl.checkpoint_every = 6, 1, 6, 6
    c.rl.optimizer.learning_rate = 1e-5  # paper 1e-6 for 7B models; a 135M model and 6 steps
    c.rl.optimizer.warmup_steps = 0
    c.rl.grpo.group_size, c.rl.grpo.prompts_per_step = 4, 4  # 16 completions per step
    c.rl.grpo.max_new_tokens = 40     # "48 - 95 = -47. <answer>-47</answer> <confidence>0.6</confidence>" is 29
    c.rl.grpo.log_kl = True           # KL to the starting policy (one more 135M forward pass per step)
    c.rl.grpo.temperature = 0.7       # the paper's sampling temperature
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '', 'tiny' or 'smollm2'")
  return c
