r"""RLCR vs RLVR vs log score on noisy sums with known per-item uncertainty (tiny LM from scratch, CPU).

  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py --workdir=workdirs/rlcr
One arm per invocation (each resumes; SFT is trained once and reused):
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py --workdir=workdirs/rlcr \
      --config.arms=rlcr
Tiny variant (seconds; the entry test):
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:tiny --workdir=workdirs/rlcr_tiny
SmolLM2-135M-Instruct as the policy on GSM8K (3 GRPO steps on CPU):
  python -m experiments.rlcr.main --config=experiments/rlcr/configs/default.py:smollm2 --workdir=workdirs/rlcr_smol
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # init, data and sampling seed
  c.arms = ("rlvr", "rlcr", "log_score")  # reward arms trained from the same SFT model (see main.ARMS)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)  # mesh of every stage (-1: all devices)
  c.sharding_rules = None             # logical→mesh rules (None: jaxlab defaults)
  c.real_model = False                # True: SmolLM2-135M-Instruct on GSM8K (experiments/rlcr/real_model.py)

  c.task = ml_collections.ConfigDict()
  c.task.num_sft = 20000              # SFT examples ('train' variant; gold answers, random confidences)
  c.task.num_rl = 20000               # RL prompts ('train' variant, another seed)
  c.task.prompt_len = 10              # left-padded prompt length (3 operands: 9 words)
  c.task.completion_len = 10          # 9 words + eos
  c.task.log_eps = 1e-3               # log-score clip: q in [eps, 1 - eps]
  c.task.sft_confidence = "miscalibrated"  # SFT confidences: 'miscalibrated' (overconfident) | 'uniform' (README)

  c.model = ml_collections.ConfigDict()
  c.model.num_layers = 2              # transformer blocks
  c.model.embed_dim = 64              # residual width
  c.model.num_heads = 4               # query heads
  c.model.num_kv_heads = 4            # key/value heads
  c.model.mlp_dim = 256               # SwiGLU hidden width

  c.sft = ml_collections.ConfigDict()  # trainer keys of the SFT stage
  c.sft.total_steps = 1500            # updates
  c.sft.batch_size = 64               # examples per update
  c.sft.log_every = 100               # metric cadence
  c.sft.checkpoint_every = 500        # checkpoint cadence
  c.sft.optimizer = dict(name="adamw", learning_rate=2e-3, schedule="warmup_cosine", warmup_steps=100,
                         end_lr_fraction=0.1, weight_decay=0.01, b1=0.9, b2=0.98, eps=1e-8, grad_clip_norm=1.0,
                         momentum=0.9)  # AdamW, cosine decay

  c.rl = ml_collections.ConfigDict()   # trainer keys of each GRPO arm
  c.rl.total_steps = 400              # updates (one rollout batch each)
  c.rl.log_every = 20                 # metric cadence
  c.rl.eval_every = 100               # greedy ID eval (accuracy, ECE, confidence) during training
  c.rl.checkpoint_every = 100         # checkpoint cadence
  c.rl.optimizer = dict(name="adamw", learning_rate=3e-4, schedule="constant", warmup_steps=10,
                        end_lr_fraction=1.0, weight_decay=0.0, b1=0.9, b2=0.99, eps=1e-8, grad_clip_norm=1.0,
                        momentum=0.9)  # constant lr after warmup (as the official configs)
  c.rl.grpo = ml_collections.ConfigDict()
  c.rl.grpo.group_size = 16           # G completions per prompt (the digest's small version)
  c.rl.grpo.prompts_per_step = 8      # prompts per update (batch 128 completions)
  c.rl.grpo.max_new_tokens = 10       # completion budget
  c.rl.grpo.temperature = 0.7         # sampling temperature (paper 0.7)
  c.rl.grpo.top_p = 1.0               # nucleus mass
  c.rl.grpo.scale_advantages = False  # RLCR: advantage = r - group mean, no std scaling
  c.rl.grpo.std_floor = 0.0           # used only when scaling
  c.rl.grpo.std_eps = 1e-4            # used only when scaling
  c.rl.grpo.loss_norm = "token"       # token-sum / total tokens (TRL 'bnpo')
  c.rl.grpo.num_iterations = 1        # on-policy: one update per rollout batch (ratio 1)
  c.rl.grpo.clip_eps = 0.2            # PPO clip (inactive on-policy)
  c.rl.grpo.kl_coef = 0.0             # β = 0 (paper)

  c.eval = ml_collections.ConfigDict()
  c.eval.num_test = 2000              # items per test set (greedy)
  c.eval.sets = ("id", "shift_mix", "shift_3op")  # in distribution and two shifts (jaxlab.data.rl_tasks)
  c.eval.num_during = 400             # ID items of the in-training eval
  c.eval.vote_items = 400             # ID items for the voting curves
  c.eval.vote_samples = 16            # samples per item (n = 1, 2, 4, ... up to this)
  c.eval.vote_temperature = 0.7       # sampling temperature for voting

  if arg == "tiny":
    c.task.num_sft, c.task.num_rl = 256, 256
    c.model.num_layers, c.model.embed_dim, c.model.num_heads, c.model.num_kv_heads = 1, 16, 2, 2
    c.model.mlp_dim = 32
    c.sft.total_steps, c.sft.batch_size, c.sft.log_every, c.sft.checkpoint_every = 4, 16, 2, 4
    c.sft.optimizer.warmup_steps = 1
    c.rl.total_steps, c.rl.log_every, c.rl.eval_every, c.rl.checkpoint_every = 2, 1, 2, 2
    c.rl.optimizer.warmup_steps = 0
    c.rl.grpo.group_size, c.rl.grpo.prompts_per_step = 2, 2
    c.eval.num_test, c.eval.num_during, c.eval.vote_items, c.eval.vote_samples = 8, 8, 4, 4
  elif arg == "smollm2":  # the same RLCR arm with a real policy: a few steps on CPU
    c.real_model = True
    c.arms = ("rlcr",)
    c.task.num_rl = 16                # GSM8K test questions used as RL prompts
    c.task.prompt_len = 256           # chat-templated prompt tokens (longer questions are skipped)
    c.rl.total_steps, c.rl.log_every, c.rl.eval_every, c.rl.checkpoint_every = 3, 1, 3, 3
    c.rl.optimizer.learning_rate = 1e-6  # the paper's HotpotQA learning rate
    c.rl.optimizer.warmup_steps = 0
    c.rl.grpo.group_size, c.rl.grpo.prompts_per_step = 4, 2
    c.rl.grpo.max_new_tokens = 64
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '', 'tiny' or 'smollm2'")
  return c
