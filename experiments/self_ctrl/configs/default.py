r"""Self-CTRL part 1: coins, a small decoder trained from scratch (CPU).

  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/default.py --workdir=workdirs/self_ctrl
More seeds / arms in the same workdir (finished stages are reused):
  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/default.py --workdir=workdirs/self_ctrl \
      --config.seeds="(0,1,2)"
Pilot (does SFT verbalise the bias of rollout-only coins at all?): the SFT and oracle arms only:
  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/default.py --workdir=workdirs/sc_pilot \
      --config.arms="('sft','oracle')"
Tiny variant (seconds; the entry test):
  python -m experiments.self_ctrl.main --config=experiments/self_ctrl/configs/default.py:tiny --workdir=workdirs/sc_tiny
"""

import ml_collections

from jaxlab.rl import recipe


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # unused by the seed loop; kept for the shared stage helpers
  c.seeds = (0,)                      # one full run (coins, SFT, Self-CTRL, eval) per seed
  c.arms = ("sft", "oracle", "selfctrl", "selfctrl_random")  # see main.ARMS
  recipe.add_stage_configs(c)         # mesh, model (2 layers, width 64), sft: defaults in jaxlab/rl/recipe.py
  del c.rl.grpo
  c.sft.total_steps = 600             # SFT updates (batch 64; 6000 examples: ~6 epochs)
  c.sft.log_every = 100
  c.sft.checkpoint_every = 200
  c.sft.optimizer.warmup_steps = 50

  c.task = ml_collections.ConfigDict()
  c.task.num_coins = 100              # Coin_A … Coin_CV
  c.task.num_sft = 50                 # coins with programs supervised in SFT (oracle: sft + cons)
  c.task.num_holdout = 10             # evenly spaced over the bias range, never trained on in stage 2
  c.task.flips = 40                   # flips per rollout (official 100; the brief allows 40-100)
  c.task.rollouts_per_coin = 40       # SFT rollouts of every coin
  c.task.programs_per_coin = 40       # SFT copies of each supervised program (balances the two sides)
  c.task.prompt_len = 2               # "flip Coin_S" / "program Coin_S"

  c.rl.total_steps = 150              # Self-CTRL updates (40 cons coins, 10 per step: ~37 epochs)
  c.rl.log_every = 25
  c.rl.checkpoint_every = 50
  c.rl.optimizer = dict(name="adamw", learning_rate=5e-4, schedule="constant", warmup_steps=0,
                        end_lr_fraction=1.0, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8, grad_clip_norm=1.0,
                        momentum=0.9)  # official lr 1e-5 on a pretrained LM; a from-scratch 0.1M-param model
  c.rl.ctrl = ml_collections.ConfigDict()
  c.rl.ctrl.group_size = 10           # K behaviours and K explanations per coin (official)
  c.rl.ctrl.prompts_per_step = 10     # coins per update (official batch 10)
  c.rl.ctrl.lam = 0.0                 # λ = 0: explanation update only
  c.rl.ctrl.std_floor = 0.05          # advantage std floor (official)
  c.rl.ctrl.untouched_coef = 0.3      # NLL of one frozen SFT rollout per coin (the official "λ_KL 0.3")
  c.rl.ctrl.continued_coef = 0.0      # continued-training NLL (not used in the coins runs)
  c.rl.ctrl.temperature = 1.0         # sampling temperature of both sides
  c.rl.ctrl.explanation_tokens = 16   # "{ H : 0 . 3 7 , T : 1 - H }" is 13 words + eos

  c.eval = ml_collections.ConfigDict()
  c.eval.explanations = 10            # K stated p̂ per coin (mode and mean)
  c.eval.rollouts = 10                # rollouts per coin: the first 100 flips are the target (official: one
                                      # 100-flip rollout), all of them the low-noise rate, the lowest-NLL one the anchor
  c.eval.bootstrap = 2000             # bootstrap resamples of the holdout coins

  if arg == "tiny":
    c.seeds = (0,)
    c.model.num_layers, c.model.embed_dim, c.model.num_heads, c.model.num_kv_heads, c.model.mlp_dim = 1, 16, 2, 2, 32
    c.task.flips, c.task.rollouts_per_coin, c.task.programs_per_coin = 8, 2, 2
    c.sft.total_steps, c.sft.batch_size, c.sft.log_every, c.sft.checkpoint_every = 3, 16, 1, 3
    c.sft.optimizer.warmup_steps = 1
    c.rl.total_steps, c.rl.log_every, c.rl.checkpoint_every = 2, 1, 2
    c.rl.ctrl.group_size, c.rl.ctrl.prompts_per_step = 2, 2
    c.eval.explanations, c.eval.rollouts, c.eval.bootstrap = 2, 2, 20
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
  return c
