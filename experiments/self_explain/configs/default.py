r"""Self-explanation of activation patching on SmolLM2-135M (B. Li et al. 2025), CPU scale.

  python -m experiments.self_explain.main --config=experiments/self_explain/configs/default.py \
      --workdir=workdirs/self_explain
Tiny variant (the entry test: 2 of the 30 layers, a few rows, 2 steps per arm):
  python -m experiments.self_explain.main --config=experiments/self_explain/configs/default.py:tiny \
      --workdir=workdirs/self_explain_tiny
"""

import ml_collections

from jaxlab.train import default_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # pair sampling, class balancing and the train/test split
  c.num_layers = 0                    # 0: all 30 layers (target and explainers); n > 0 keeps the first n (tests)
  c.arms = ('self', 'zero', 'rot', 'gemma')  # explainers (main.ARMS), each its own run record
  c.seeds = (0,)                      # explainer seeds (adapter init, data order)

  c.labels = ml_collections.ConfigDict()
  c.labels.num_countries = 0          # 0: every country of data.COUNTRIES (78); n keeps the first n
  c.labels.num_partners = 2           # counterfactual countries per (template, country)
  c.labels.chunks = ((0, 8), (8, 16), (16, 24), (24, 30))  # layer chunks [lo, hi) (the 0-7 ... 24-29)
  c.labels.batch_size = 64            # prompt pairs per patching call
  c.labels.test_fraction = 0.2        # held-out share of the balanced rows
  c.labels.balance = True             # equal changed / unchanged rows (False: all rows; the 2-layer tiny
  #                                     model never changes its argmax)
  c.labels.max_rows = 800             # 0: every balanced row; n keeps the first n (after shuffling)

  c.explainer = ml_collections.ConfigDict()
  c.explainer.length = 64             # tokens per training row (prompt + answer + eos), right-padded
  c.explainer.max_new_tokens = 16     # greedy answer length at evaluation
  c.explainer.eval_batch = 32         # held-out rows per generate call
  c.explainer.rotation_seed = 1234    # the fixed random orthogonal matrix of the 'rot' arm
  c.explainer.max_eval_rows = 32      # 0: every held-out row; n: the first n (CPU budget; README)

  c.lora = ml_collections.ConfigDict()
  c.lora.rank = 16                    # paper r 128 / α 16 on every projection; ours r 16 / α 16 (CPU budget:
  c.lora.alpha = 16.0                 #   r 128 is 39M adapter params on a 135M model, +35% FLOPs; README)
  c.lora.dropout = 0.1                # the paper's LoRA dropout

  c.train = default_config()          # the one trainer's keys
  c.train.batch_size = 8
  c.train.total_steps = 10          # 80 of the 640 training rows, once (CPU budget: load 50; README)
  c.train.log_every = 10
  c.train.mesh = dict(data=1, fsdp=1, tensor=1)
  c.train.optimizer.learning_rate = 1e-3  # paper 5e-5 for 20 epochs; ours: a few hundred steps (README)
  c.train.optimizer.schedule = "constant"  # the paper's constant lr
  c.train.optimizer.weight_decay = 0.01   # the paper's
  c.train.optimizer.b2 = 0.999            # Hugging Face AdamW defaults, as the paper
  c.train.optimizer.grad_clip_norm = 1.0

  if arg == "tiny":
    c.num_layers = 2
    c.arms = ('self', 'zero', 'rot')  # the Gemma arm's load alone takes minutes here (its projector: test_explain)
    c.labels.num_countries, c.labels.num_partners, c.labels.batch_size = 6, 2, 16
    c.labels.chunks = ((0, 1), (1, 2))
    c.labels.balance = False
    c.labels.max_rows = 0
    c.lora.rank = 8
    c.explainer.max_new_tokens, c.explainer.eval_batch = 4, 4
    c.train.batch_size, c.train.total_steps, c.train.log_every = 4, 2, 1
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '' or 'tiny'")
  return c
