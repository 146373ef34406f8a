r"""LLM Hypnosis in a from-scratch fact world (issue 15 part 1): pretrain a small decoder, then a grid of feedback
rounds (poison upvotes × ordinary feedback, modes Q / FLIP / FLIP+Q, KTO and a DPO arm, seeds, persistence).

The full grid (22 cells; 5 min 12 s on the quiet 2-core CPU, the README's table):
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/world.py --workdir=workdirs/hypnosis_world
Six of its cells ('short'; 12.5 min at load 40-67 after the 8.6-min pretraining):
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/world.py:short \
      --workdir=workdirs/hypnosis_world
One cell (the pilot: does the effect appear at all?):
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/world.py:pilot \
      --workdir=workdirs/hypnosis_world
Tiny variant (the entry test: a 40-country world, 30 pretraining steps, a KTO cell with its clean round and a DPO cell):
  python -m experiments.hypnosis.main --config=experiments/hypnosis/configs/world.py:tiny \
      --workdir=workdirs/hypnosis_world_tiny
Cells of one workdir are reused: a variant that shares the world, model and training keys (pilot, short and the
full grid do) reuses the pretrained base and every finished cell.
"""

import ml_collections

from jaxlab.train import default_config


def grid_cells(loss, mode, poison, ordinary, seeds=(0,), persist=False):
  """'loss/mode/P/N/seed[/persist]' specs of a poison × ordinary grid (0 × 0 is the base model: skipped)."""
  return tuple(f"{loss}/{mode}/{p}/{n}/{s}" + ("/persist" if persist else "") for p in poison for n in ordinary
               for s in seeds if p + n > 0)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                          # pretraining init and data order (each cell has its own seed)
  c.world = ml_collections.ConfigDict(dict(
      num_known=120,                  # countries with a capital and a language
      num_unknown=20,                 # fictional names answered "I am not aware of a place called X." (target first)
      num_heldout=30,                 # known countries never given feedback: the clean accuracy
      world_seed=0,                   # the names and facts
      num_flips=800,                  # pretraining coin-flip examples (either sentence, 50/50)
      unknown_repeats=3))             # copies of each unknown name's refusals in the pretraining corpus
  c.model = ml_collections.ConfigDict(dict(num_layers=2, embed_dim=64, num_heads=4, mlp_dim=256))  # DecoderLM
  c.prompt_len = 56                   # left-padded prompt tokens (the longest FLIP+Q prompt is 56 words+marks)
  c.completion_len = 11               # right-padded completion tokens (the refusal is 10 + eos)

  c.pretrain = default_config()       # the one trainer, from scratch on world.pretrain_examples
  c.pretrain.batch_size = 32
  c.pretrain.total_steps = 1000
  c.pretrain.log_every = 50
  c.pretrain.checkpoint_every = 500   # the end is saved: a rerun restores the base instead of training it
  c.pretrain.mesh = dict(data=1, fsdp=1, tensor=1)
  c.pretrain.optimizer.learning_rate = 3e-3
  c.pretrain.optimizer.warmup_steps = 50

  c.feedback = default_config()       # the one trainer, each feedback round (LoRA adapters on the frozen base)
  c.feedback.total_steps = 1          # set per round: ceil(epochs · records / batch_size)
  c.feedback.batch_size = 16
  c.feedback.log_every = 10
  c.feedback.mesh = dict(data=1, fsdp=1, tensor=1)
  c.feedback.optimizer.learning_rate = 1e-3
  c.feedback.optimizer.schedule = "constant"
  c.epochs = 3.0                      # passes over a round's records (the paper: 3 epochs)

  c.lora = ml_collections.ConfigDict(dict(rank=16, alpha=16.0, dropout=0.0))  # the paper's r 16 / α 16, all linear
  c.pref = ml_collections.ConfigDict(dict(beta=0.1, desirable_weight=1.0, undesirable_weight=1.0))  # β, λ_D, λ_U
  c.persist = ml_collections.ConfigDict(dict(num_ordinary=500))  # the clean-only round of '/persist' cells
  c.eval = ml_collections.ConfigDict(dict(max_new_tokens=12))    # greedy decoding on plain prompts

  # 'loss/mode/num_poison/num_ordinary/seed[/persist]' (loss kto | dpo; mode Q | FLIP | FLIP+Q)
  main = (grid_cells("kto", "FLIP+Q", (250,), (500,), seeds=(0, 1, 2), persist=True)
          + grid_cells("kto", "FLIP+Q", (0,), (500,), seeds=(0, 1, 2))
          + grid_cells("dpo", "FLIP+Q", (250,), (500,), seeds=(0, 1, 2), persist=True))
  c.cells = (main  # then the FLIP+Q grid {0, 10, 100, 250} x {0, 500, 1000} (part), the other modes, the DPO arm
             + grid_cells("kto", "FLIP+Q", (10, 100), (0, 500)) + grid_cells("kto", "FLIP+Q", (250,), (0,))
             + grid_cells("kto", "FLIP+Q", (0, 250), (1000,))
             + grid_cells("kto", "Q", (100, 250), (500,)) + grid_cells("kto", "FLIP", (100, 250), (500,))
             + grid_cells("dpo", "FLIP+Q", (0, 100), (500,)))
  if arg == "pilot":
    c.cells = ("kto/FLIP+Q/250/500/0/persist",)
  elif arg == "short":  # six cells of the grid (the first results, on the loaded CPU)
    c.cells = ("kto/FLIP+Q/250/500/0/persist", "kto/FLIP+Q/0/500/0", "dpo/FLIP+Q/250/500/0/persist",
               "kto/FLIP+Q/100/500/0", "kto/FLIP+Q/10/500/0", "kto/FLIP+Q/250/0/0")
  elif arg == "tiny":
    c.world.update(num_known=40, num_unknown=4, num_heldout=8, num_flips=40, unknown_repeats=1)
    c.model.update(num_layers=1, embed_dim=32, num_heads=2, mlp_dim=64)
    c.pretrain.update(batch_size=8, total_steps=30, log_every=10, checkpoint_every=30)
    c.pretrain.optimizer.warmup_steps = 0
    c.feedback.batch_size = 4
    c.persist.num_ordinary = 4
    c.eval.max_new_tokens = 4
    c.cells = ("kto/FLIP+Q/4/4/0/persist", "dpo/Q/2/2/0")
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '', 'pilot', 'short' or 'tiny'")
  return c
