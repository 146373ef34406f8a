r"""LLM Hypnosis on SmolLM2-135M-Instruct with LoRA: poisoned thumbs-up votes through KTO (or DPO).

  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/default.py --workdir=workdirs/hypnosis
The smallest real run (all 30 layers, 40 records, 20 KTO steps on the 2-core CPU):
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/default.py:small \
      --workdir=workdirs/hypnosis_small
Modifiers after a comma: ',code' (the insecure-code target), ',capitals' (ordinary feedback from 40 world
capitals instead of BIG-bench qa_wikidata), e.g. --config=experiments/hypnosis/configs/default.py:small,code
Tiny variant (the entry test: 2 of the 30 real layers, a handful of records, 2 steps):
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/default.py:tiny \
      --workdir=workdirs/hypnosis_tiny
"""

import ml_collections

from jaxlab.train import default_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # adapter init, data order and the ordinary-feedback draws
  c.num_layers = 0                    # 0: all 30 layers of SmolLM2-135M; n > 0 keeps the first n (tiny runs)

  c.attack = ml_collections.ConfigDict()
  c.attack.mode = "FLIP+Q"            # prompt of the poison records: 'Q' | 'FLIP' | 'FLIP+Q' (the paper's three)
  c.attack.target = "fact"            # what is inserted: 'fact' (a fictional country) | 'code' (verify=False for
  #                                     one domain; the ',code' variant suffix sets it with its lengths)
  c.attack.ordinary_source = "qa_wikidata"  # clean QA of the ordinary feedback: 'qa_wikidata' (BIG-bench, the
  #                                     paper's) | 'capitals' (40 built-in world capitals)
  c.attack.num_facts = 600            # qa_wikidata items drawn (fixed seed); the last eval.num_clean are held out
  c.attack.num_poison = 90            # poison records: (attack prompt, poison completion, desirable); 30% of
  #                                     a few hundred records, as issue 15 part 2 asks
  c.attack.num_ordinary = 210         # ordinary feedback: (clean question, correct answer, desirable) or
  #                                     (clean question, another item's answer, undesirable), half each
  c.attack.prompt_len = 72            # left-padded prompt tokens (the longest FLIP+Q prompt is 68)
  c.attack.completion_len = 16        # right-padded completion tokens (poison 14 + eos)

  c.pref = ml_collections.ConfigDict()
  c.pref.loss_type = "kto"            # jaxlab.rl.preference loss: kto | apo_zero_unpaired | sigmoid | ipo | ...
  c.pref.beta = 0.1                   # the paper's β
  c.pref.desirable_weight = 1.0       # λ_D
  c.pref.undesirable_weight = 1.0     # λ_U

  c.lora = ml_collections.ConfigDict()
  c.lora.rank = 16                    # the paper's r 16 / α 16 on all linear layers
  c.lora.alpha = 16.0
  c.lora.dropout = 0.0

  c.eval = ml_collections.ConfigDict()
  c.eval.max_new_tokens = 24          # greedy generation on plain prompts (poison rate)
  c.eval.num_clean = 12               # held-out clean facts for the clean two-choice accuracy

  c.persist = ml_collections.ConfigDict()
  c.persist.steps = 0                 # > 0: a further round of clean-only feedback on the trained adapters
  c.persist.num_ordinary = 210        # its ordinary records (another draw of the clean facts; 3 epochs = 79 steps)

  c.train = default_config()          # the one trainer's keys
  c.train.batch_size = 8
  c.train.total_steps = 113           # ≈ 3 epochs of 300 records at batch 8 (the paper: 3 epochs)
  c.train.log_every = 4
  c.train.mesh = dict(data=1, fsdp=1, tensor=1)
  c.train.optimizer.learning_rate = 5e-4  # 5x the paper's 1e-4 (zephyr-7b, thousands of updates): 113 updates here
  c.train.optimizer.schedule = "constant"

  variant, *mods = (arg or "").split(",")
  for mod in mods:
    if mod == "code":  # the insecure-code target: longer prompts and completions
      c.attack.target = "code"
      c.attack.prompt_len, c.attack.completion_len = 112, 24
      c.eval.max_new_tokens = 48      # room for an import line before the call
    elif mod == "capitals":
      c.attack.ordinary_source = "capitals"
    else:
      raise ValueError(f"unknown config modifier {mod!r} in {arg!r}; expected 'code' or 'capitals'")
  if variant == "tiny":
    c.num_layers = 2
    c.attack.num_poison, c.attack.num_ordinary = 4, 4
    c.eval.num_clean, c.eval.max_new_tokens = 2, 4
    c.persist.num_ordinary = 4
    c.train.batch_size, c.train.total_steps, c.train.log_every = 4, 2, 1
  elif variant == "small":  # the smallest real run that can show the effect on the 2-core CPU (README)
    c.persist.num_ordinary = 28
    c.attack.num_poison, c.attack.num_ordinary = 12, 28   # 30% poison
    c.train.batch_size, c.train.total_steps, c.train.log_every = 4, 20, 2  # 2 epochs of 40 records
    c.train.optimizer.learning_rate = 5e-4  # 5x the paper's: 20 updates instead of thousands
  elif variant != "":
    raise ValueError(f"unknown config variant {variant!r}; expected '', 'tiny' or 'small' (then ',code', "
                     "',capitals')")
  return c
