r"""Language modelling on Shakespeare: Transformer-PSM validation perplexity vs chunk size c, against a causal
Transformer with the same blocks and layer count, on the same tokens for the same number of steps.

  python -m experiments.psm.main --config=experiments/psm/configs/lm.py --workdir=workdirs/psm_lm
  python -m experiments.psm.main --config=experiments/psm/configs/lm.py:tiny --workdir=workdirs/psm_lm_tiny

Corpus, tokenizer (SentencePiece BPE trained on the corpus), split and windows come from experiments/lm (see
experiments/psm/lm.py); override any field, e.g. --config.train.total_steps=100.
"""

import ml_collections

from experiments.psm.configs import base


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                                  # Init and data-order seed (the same batches for every model).
  c.models = ('transformer', 'psm', 'llama')  # GPT-2-style and Llama-style Transformers; Transformer-PSM per c.
  c.batch_size = 32                           # Sequences per step.
  c.data = ml_collections.ConfigDict()        # experiments/lm's data fields.
  c.data.task = 'lm'                          # Selects experiments/psm/lm.py.
  c.data.corpus = 'shakespeare'               # 'shakespeare' (packaged asset) or 'files'.
  c.data.text_files = ()                      # Text files when corpus == 'files'.
  c.data.cache_dir = ''                       # Asset cache ('' = $JAXLAB_CACHE or ~/.cache/jaxlab).
  c.data.vocab_size = 2048                    # SentencePiece BPE vocabulary trained on the corpus.
  c.data.tokenizer_sentences = 0              # Lines used to train the tokenizer (0 = all).
  c.data.seq_len = 128                        # Tokens per training / validation window.
  c.data.val_fraction = 0.05                  # Tail of the token stream held out for validation.
  c.data.eval_batch_size = 64                 # Eval batch (sequences).
  c.data.max_eval_batches = 0                 # Cap on eval batches (0 = the whole validation split).
  c.model = ml_collections.ConfigDict()
  c.model.embed_dim = 128                     # Residual width of both models.
  c.model.num_heads = 4                       # Heads of every block.
  c.model.chunk_sizes = (8, 16, 32)           # Transformer-PSM chunk sizes c: one run each.
  c.model.agg_layers = 2                      # PSM Agg layers (the Transformer has agg + inf layers).
  c.model.inf_layers = 2                      # PSM Inf layers.
  c.train = base.trainer_config(500, log_every=50, eval_every=250, checkpoint_every=250, learning_rate=3e-3,
                                warmup_steps=50, weight_decay=0.1, b2=0.95)  # experiments/lm's optimiser.
  if arg == 'tiny':
    c.batch_size = 4
    c.data.vocab_size, c.data.tokenizer_sentences, c.data.seq_len = 384, 5000, 32
    c.data.eval_batch_size, c.data.max_eval_batches = 8, 2
    c.model.embed_dim, c.model.chunk_sizes, c.model.agg_layers, c.model.inf_layers = 32, (8,), 1, 1
    c.train.total_steps, c.train.log_every, c.train.eval_every, c.train.checkpoint_every = 3, 1, 0, 0
    c.train.optimizer.warmup_steps = 1
  elif arg == 'paper':  # the paper's WikiText-103 LM at GPT-2-small width, for AOT compilation on a v5p-16 slice
    c.models, c.batch_size = ('psm',), 64                    # paper: batch 64, seq 512, GPT-2 tokenizer
    c.data.vocab_size, c.data.seq_len = 50257, 512
    c.model.embed_dim, c.model.num_heads, c.model.chunk_sizes = 768, 12, (32,)   # c = 32: ppl 24.12 in the paper
    c.model.agg_layers, c.model.inf_layers = 6, 6            # assumed: 12 layers as GPT-2 small (not in the digest)
    c.train.optimizer.learning_rate, c.train.optimizer.warmup_steps = 1e-4, 1000
    c.train.mesh = dict(data=8, fsdp=1, tensor=1)            # python -m jaxlab.train.aot ... --topology=v5p:2x2x2
  elif arg is not None:
    raise ValueError(f'Unknown config argument {arg!r}; expected None, "tiny" or "paper".')
  return c
