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


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # init, data and sampling seed
  c.arms = ("rlvr_single", "multi_rlvr", "multi_rlcr")  # see main.ARMS
  c.k = 3                             # candidates per answer set (K)
  c.mesh = dict(data=-1, fsdp=1, tensor=1)  # mesh of every stage (-1: all devices)
  c.sharding_rules = None             # logical→mesh rules (None: jaxlab defaults)

  c.task = ml_collections.ConfigDict()
  c.task.num_diseases = 8             # labels of the diagnosis model
  c.task.num_symptoms = 12            # symptom vocabulary
  c.task.model_seed = 0               # seed of the fixed prior / emission tables
  c.task.num_sft = 20000              # SFT examples (gold first, random other labels and confidences)
  c.task.num_rl = 20000               # RL prompts (another seed)
  c.task.prompt_len = 8               # "patient s3 s7 s3 s1 :" (at most 4 symptoms)
  c.task.completion_len = 20          # K·6 words + eos (single answer: 3 words + eos)
  c.task.sft_confidence = "miscalibrated"  # SFT sets: 'miscalibrated' (posterior draws, shrunk p) | 'uniform' (README)

  c.model = ml_collections.ConfigDict()
  c.model.num_layers = 2              # transformer blocks
  c.model.embed_dim = 64              # residual width
  c.model.num_heads = 4               # query heads
  c.model.num_kv_heads = 4            # key/value heads
  c.model.mlp_dim = 256               # SwiGLU hidden width

  c.sft = ml_collections.ConfigDict()  # trainer keys of both SFT stages
  c.sft.total_steps = 1500            # updates
  c.sft.batch_size = 64               # examples per update
  c.sft.log_every = 100               # metric cadence
  c.sft.checkpoint_every = 500        # checkpoint cadence
  c.sft.optimizer = dict(name="adamw", learning_rate=2e-3, schedule="warmup_cosine", warmup_steps=100,
                         end_lr_fraction=0.1, weight_decay=0.01, b1=0.9, b2=0.98, eps=1e-8, grad_clip_norm=1.0,
                         momentum=0.9)  # AdamW, cosine decay

  c.rl = ml_collections.ConfigDict()   # trainer keys of each GRPO arm
  c.rl.total_steps = 600              # updates (one rollout batch each)
  c.rl.log_every = 50                 # metric cadence
  c.rl.eval_every = 100               # quick set metrics during training
  c.rl.checkpoint_every = 100         # checkpoint cadence
  c.rl.optimizer = dict(name="adamw", learning_rate=1e-4, schedule="constant", warmup_steps=10,
                        end_lr_fraction=1.0, weight_decay=0.0, b1=0.9, b2=0.99, eps=1e-8, grad_clip_norm=1.0,
                        momentum=0.9)  # constant lr after warmup
  c.rl.grpo = ml_collections.ConfigDict()
  c.rl.grpo.group_size = 16           # G completions per prompt
  c.rl.grpo.prompts_per_step = 32     # prompts per update (batch 512 completions)
  c.rl.grpo.max_new_tokens = 20       # completion budget (single-answer arms stop after 4)
  c.rl.grpo.temperature = 1.0         # sampling temperature (the paper: 0.7; see README)
  c.rl.grpo.top_p = 1.0               # nucleus mass
  c.rl.grpo.scale_advantages = False  # advantage = r - group mean
  c.rl.grpo.std_floor = 0.0           # used only when scaling
  c.rl.grpo.std_eps = 1e-4            # used only when scaling
  c.rl.grpo.loss_norm = "token"       # token-sum / total tokens
  c.rl.grpo.num_iterations = 1        # on-policy
  c.rl.grpo.clip_eps = 0.2            # PPO clip (inactive on-policy)
  c.rl.grpo.kl_coef = 0.0             # β = 0 (paper)

  c.eval = ml_collections.ConfigDict()
  c.eval.num_test = 2000              # test patients
  c.eval.num_during = 400             # patients of the in-training eval
  c.eval.single_samples = 3           # samples of the single-answer model per set (k)
  c.eval.single_temperature = 0.7     # their sampling temperature (paper 0.7)

  if arg == "tiny":
    c.task.num_sft, c.task.num_rl = 256, 256
    c.model.num_layers, c.model.embed_dim, c.model.num_heads, c.model.num_kv_heads = 1, 16, 2, 2
    c.model.mlp_dim = 32
    c.sft.total_steps, c.sft.batch_size, c.sft.log_every, c.sft.checkpoint_every = 4, 16, 2, 4
    c.sft.optimizer.warmup_steps = 1
    c.rl.total_steps, c.rl.log_every, c.rl.eval_every, c.rl.checkpoint_every = 2, 1, 2, 2
    c.rl.optimizer.warmup_steps = 0
    c.rl.grpo.group_size, c.rl.grpo.prompts_per_step = 2, 2
    c.eval.num_test, c.eval.num_during = 8, 8
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
  return c
