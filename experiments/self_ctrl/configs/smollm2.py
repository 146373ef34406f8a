r"""Self-CTRL part 3: SmolLM2-135M-Instruct + LoRA, refusal domain, real jury (experiments/self_ctrl/smollm2.py).

  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/smollm2.py --workdir=workdirs/sc_smollm2
Pilot (the first 2 blocks of the model only; checks the code path, meaningless text):
  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/smollm2.py:pilot --workdir=workdirs/sc_smol_pilot
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.world = "smollm2"                 # main.py dispatches on this
  c.seed = 0
  c.arms = ("lam0", "lam1")           # λ = 0 (rules updated) and λ = 1 (responses updated)
  c.mesh = dict(data=1, fsdp=1, tensor=1)
  c.sharding_rules = None
  c.task = ml_collections.ConfigDict()
  c.task.num_layers = 0               # 0: all 30 blocks
  c.task.jury_len = 192               # jury prompts left-padded / cut to this many tokens (one compiled shape)
  c.task.max_chars = 240              # rule and response text cut to this many characters in judge prompts
  c.lora = ml_collections.ConfigDict()
  c.lora.rank = 8
  c.lora.alpha = 16.0
  c.lora.targets = ("q", "k", "v", "o")
  c.rl = ml_collections.ConfigDict()
  c.rl.total_steps = 3                # a handful of updates: timings and rewards, not a headline
  c.rl.log_every = 1
  c.rl.checkpoint_every = 3
  c.rl.optimizer = dict(name="adamw", learning_rate=1e-4, schedule="constant", warmup_steps=0,
                        end_lr_fraction=1.0, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, grad_clip_norm=1.0,
                        momentum=0.9)  # official lr 1e-5 (full fine-tune); LoRA at 1e-4
  c.rl.ctrl = ml_collections.ConfigDict()
  c.rl.ctrl.group_size = 2            # K (official 10): CPU budget
  c.rl.ctrl.prompts_per_step = 2      # requests per update (official 10)
  c.rl.ctrl.lam = 0.0                 # overridden per arm
  c.rl.ctrl.std_floor = 0.05
  c.rl.ctrl.untouched_coef = 0.0      # regularisers off: a few steps only, and the CPU budget
  c.rl.ctrl.continued_coef = 0.0
  c.rl.ctrl.temperature = 1.0
  c.rl.ctrl.behaviour_tokens = 24     # response budget (cut: CPU)
  c.rl.ctrl.explanation_tokens = 24   # rule budget
  c.rl.ctrl.row_multiple = 1          # one device
  if arg == "pilot":
    c.task.num_layers = 2
    c.rl.total_steps, c.rl.checkpoint_every = 1, 1
    c.rl.ctrl.behaviour_tokens = c.rl.ctrl.explanation_tokens = 6
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'pilot'")
  return c
