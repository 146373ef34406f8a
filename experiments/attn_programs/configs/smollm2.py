"""Attention heads as programs on SmolLM2-135M-Instruct (all 270 heads), CPU-sized.

python -m experiments.attn_programs.main --config=experiments/attn_programs/configs/smollm2.py \
    --workdir=workdirs/attn_programs
Tiny variant (a few sentences, 2 replacement targets): --config=...smollm2.py:tiny
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0                      # Sentence shuffling and random baselines.
  c.gguf = ''                     # Model file ('' = the pinned SmolLM2-135M-Instruct Q4_1 asset).
  c.corpus = 'lee'                # Sentences from the Lee news corpus (gensim-data asset).
  c.min_tokens = 10               # Shortest sentence kept (tokens).
  c.bucket = 40                   # Longest sentence kept; padded length of every forward pass.
  c.num_fit = 24                  # Sentences for scoring programs (best-fit selection).
  c.num_heldout = 12              # Held-out sentences for re-ranking and the reported IoU.
  c.num_eval = 16                 # Sentences for perplexity / KL under head replacement.
  c.top_n = 5                     # Candidates re-ranked on held-out sentences per head.
  c.use_offline_proposer = True   # Add the OfflineProposer's parameterised family to the library.
  c.replace_fractions = (0.1, 0.25)  # Fractions of heads replaced for the reported PPL/KL.
  c.max_ppl_jump = 50.            # Skip a head that adds more than this many PPL points.
  c.grid_heads = 12               # Heads shown in the PNG grid (best, median and worst fits).
  if arg == 'tiny':
    c.num_fit, c.num_heldout, c.num_eval, c.grid_heads = 4, 2, 4, 4
    c.replace_fractions = (0.02, 0.05)
  return c
