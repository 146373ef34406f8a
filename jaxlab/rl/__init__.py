"""RL for language models on the one jaxlab trainer.

* `rewards`: RLVR, RLCR, log-score, Multi-RLVR and Multi-RLCR rewards over decoded text (official formulas).
* `rollout`: G completions per prompt from jaxlab.nn.lm.generate on the training mesh, stop strings, scoring
  that survives a failing reward function, per-token log-probabilities.
* `grpo`: group-centred advantages, the (PPO-clipped, KL-regularised) policy-gradient loss, and `GRPO`,
  which turns a policy, a reward and a prompt iterator into a trainer Task with a rollout callback.
* `sft`: the supervised format warm-up (same batch layout), run through the ordinary trainer.
* `consistency`: Self-CTRL consistency training between self-explanations and behaviour (anchors, the
  population-std advantage, REINFORCE loss, the two NLL regularisers) through the trainer's rollout hook.
* `preference`: KTO / APO-zero from thumbs up / down and DPO (sigmoid, hinge, IPO, robust, RPO) from pairs, TRL's
  formulas and metric names; the reference is the same model with its LoRA adapters off.
"""

from jaxlab.rl import consistency, grpo, preference, rewards, rollout, sft
from jaxlab.rl.grpo import GRPO, GRPOConfig, group_advantages, policy_gradient_loss

__all__ = ["consistency", "grpo", "preference", "rewards", "rollout", "sft", "GRPO", "GRPOConfig", "group_advantages", "policy_gradient_loss"]
