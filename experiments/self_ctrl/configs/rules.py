r"""Self-CTRL part 2: the rule world (experiments/self_ctrl/rules.py), a small decoder trained from scratch.

  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/rules.py --workdir=workdirs/sc_rules
Tiny variant (seconds; the entry test):
  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/rules.py:tiny --workdir=workdirs/sc_rules_tiny
"""

import ml_collections

from jaxlab.rl import recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.world = "rules"                   # main.py dispatches on this (coins: absent)
  c.seed = 0                          # unused by the seed loop
  c.seeds = (0, 1, 2)
  c.arms = ("sft", "lam0", "lam05", "lam1")  # see rules.ARMS: the SFT model, λ = 0, 0.5, 1 from it
  recipe.add_stage_configs(c)         # mesh, model (2 layers, width 64), sft
  del c.rl.grpo
  c.sft.total_steps = 400             # batch 64: 25,600 examples ≈ 3.8 epochs of the 6,720 below
  c.sft.log_every = 100
  c.sft.checkpoint_every = 400
  c.sft.optimizer.warmup_steps = 40

  c.task = ml_collections.ConfigDict()
  c.task.behaviours_per_request = 12  # SFT behaviours of each of the 480 requests (REFUSE iff s ≥ t_c)
  c.task.rules_per_category = 120     # SFT stated rules per category (k near the constitution's 6)
  c.task.noise = 0.1                  # behaviour label flip probability (so K samples disagree)
  c.task.rule_spread = 1.0            # std of the stated k around 6

  c.rl.total_steps = 100              # updates, 10 of the 320 training requests each (~3 epochs)
  c.rl.log_every = 25
  c.rl.checkpoint_every = 50
  c.rl.optimizer = dict(name="adamw", learning_rate=5e-4, schedule="constant", warmup_steps=0,
                        end_lr_fraction=1.0, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, grad_clip_norm=1.0,
                        momentum=0.9)  # as the coins runs (official 1e-5 on a pretrained LM)
  c.rl.ctrl = ml_collections.ConfigDict()
  c.rl.ctrl.group_size = 10           # K behaviours and K rules per request (official K)
  c.rl.ctrl.prompts_per_step = 10     # requests per update (official batch 10)
  c.rl.ctrl.lam = 0.0                 # overridden per arm
  c.rl.ctrl.std_floor = 0.05
  c.rl.ctrl.untouched_coef = 0.3      # frozen SFT sample of the side not updated (λ = 0 or 1 only)
  c.rl.ctrl.continued_coef = 0.0
  c.rl.ctrl.temperature = 1.0

  c.eval = ml_collections.ConfigDict()
  c.eval.behaviours = 10              # sampled behaviours per request
  c.eval.rules = 20                   # sampled rules per category (the stated rule: their mode)
  c.eval.bootstrap = 2000             # resamples of the held-out requests

  if arg == "tiny":
    c.seeds = (0,)
    c.model.num_layers, c.model.embed_dim, c.model.num_heads, c.model.num_kv_heads, c.model.mlp_dim = 1, 16, 2, 2, 32
    c.task.behaviours_per_request, c.task.rules_per_category = 1, 4
    c.sft.total_steps, c.sft.batch_size, c.sft.log_every, c.sft.checkpoint_every = 3, 16, 1, 3
    c.sft.optimizer.warmup_steps = 1
    c.rl.total_steps, c.rl.log_every, c.rl.checkpoint_every = 2, 1, 2
    c.rl.ctrl.group_size, c.rl.ctrl.prompts_per_step = 2, 2
    c.eval.behaviours, c.eval.rules, c.eval.bootstrap = 2, 2, 20
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
  return c
