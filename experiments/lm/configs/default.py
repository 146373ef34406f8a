"""A small Llama-style LM on the complete works of Shakespeare, trained on CPU in about 10 minutes
(measured: see experiments/lm/README.md).

Run (flagship):
  python -m experiments.lm.main --config=experiments/lm/configs/default.py --workdir=workdirs/lm
Tiny variant (seconds; used by the entry test):
  python -m experiments.lm.main --config=experiments/lm/configs/default.py:tiny --workdir=workdirs/lm_tiny
Paper-size variant (compiled ahead of time for a TPU slice; no data or weights):
  python -m jaxlab.train.aot --config=experiments/lm/configs/default.py:paper --topology=v5p:4x4x4
Override any field on the command line, e.g. --config.total_steps=100 (unknown keys are an error).
"""

import ml_collections

from jaxlab.train import default_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = default_config()            # the trainer's keys and defaults (jaxlab/train/config.py); set here: what differs
  c.seed = 0                      # RNG seed: init, dropout and data order
  c.total_steps = 600             # optimiser updates
  c.batch_size = 32               # global batch (sequences), split over the data×fsdp mesh axes
  c.log_every = 50                # steps between metric lines (metrics.jsonl, TensorBoard, log)
  c.eval_every = 200              # steps between validation passes (0: only at the end)
  c.checkpoint_every = 200        # steps between checkpoints (0: never)
  c.keep_checkpoints = 2          # checkpoints kept on disk
  c.measure_peak = True           # time a matmul at start-up as the MFU denominator

  c.optimizer.learning_rate = 3e-3        # peak learning rate
  c.optimizer.warmup_steps = 60           # linear warmup steps
  c.optimizer.weight_decay = 0.1          # decoupled weight decay on matrices
  c.optimizer.momentum = 0.95             # SGD momentum / Muon β

  c.data = ml_collections.ConfigDict()
  c.data.corpus = "shakespeare"   # 'shakespeare' (the packaged asset) or 'files'
  c.data.text_files = ()          # text files to train on when corpus == 'files'
  c.data.cache_dir = ""           # asset cache folder ('' = $JAXLAB_CACHE or ~/.cache/jaxlab)
  c.data.vocab_size = 2048        # SentencePiece BPE vocabulary trained on the corpus
  c.data.tokenizer_sentences = 0  # lines used to train the tokenizer (0 = all)
  c.data.seq_len = 128            # tokens per training window
  c.data.val_fraction = 0.05      # tail of the token stream held out for validation
  c.data.eval_batch_size = 64     # eval batch (sequences)
  c.data.max_eval_batches = 0     # cap on eval batches (0 = the whole validation split)

  c.model = ml_collections.ConfigDict()
  c.model.family = "llama"        # llama (RMSNorm, RoPE, SwiGLU, GQA) | gpt2 (LayerNorm, learned pos, GELU)
  c.model.num_layers = 4          # transformer blocks
  c.model.embed_dim = 192         # residual width
  c.model.num_heads = 4           # query heads
  c.model.num_kv_heads = 2        # key/value heads (grouped-query attention)
  c.model.mlp_dim = 512           # SwiGLU hidden width
  c.model.rope_base = 10000.0     # RoPE base frequency
  c.model.tie_embeddings = True   # share the input embedding with the output head
  c.model.dropout_rate = 0.0      # dropout on embeddings, attention and residual branches
  c.model.mixer = "attention"     # sequence mixer in every block
  c.model.dtype = "float32"       # compute dtype (parameters stay float32)
  c.model.remat = "none"          # per-block rematerialisation: none | full | a jax.checkpoint_policies name
  c.model.attention_impl = "reference"  # reference | xla | cudnn | splash | auto (jaxlab.nn.fast_attention)

  c.sample = ml_collections.ConfigDict()
  c.sample.prompt = "ROMEO:"      # prompt for the samples printed after each eval
  c.sample.num_tokens = 64        # tokens sampled per prompt
  c.sample.temperature = 0.8      # sampling temperature (0 = greedy)

  if arg == "tiny":
    c.total_steps = 6
    c.batch_size = 8
    c.log_every = 2
    c.eval_every = 6
    c.checkpoint_every = 3
    c.measure_peak = False
    c.optimizer.warmup_steps = 2
    c.data.vocab_size = 384
    c.data.tokenizer_sentences = 5000
    c.data.seq_len = 32
    c.data.eval_batch_size = 8
    c.data.max_eval_batches = 2
    c.model.num_layers = 2
    c.model.embed_dim = 64
    c.model.num_heads = 4
    c.model.num_kv_heads = 2
    c.model.mlp_dim = 128
    c.sample.num_tokens = 8
  elif arg == "paper":  # SmolLM2-1.7B's shape (Allal et al. 2025; the family jaxlab imports) on a v5p-128 slice
    c.batch_size = 256            # 0.5M tokens per step (SmolLM2: 2M; 4 micro-batches of this reach it)
    c.data.vocab_size = 49152
    c.data.seq_len = 2048
    c.model.num_layers = 24
    c.model.embed_dim = 2048
    c.model.num_heads = 32
    c.model.num_kv_heads = 32
    c.model.mlp_dim = 8192
    c.model.rope_base = 130000.0
    c.model.dtype = "bfloat16"
    c.model.remat = "full"
    c.mesh = dict(data=1, fsdp=64, tensor=1)  # python -m jaxlab.train.aot ... --topology=v5p:4x4x4
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; expected '', 'tiny' or 'paper'")
  return c
