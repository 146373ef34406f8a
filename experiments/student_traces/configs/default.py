r"""Student program traces on simulated students (experiments/student_traces).

  python -m experiments.student_traces.main --config=experiments/student_traces/configs/default.py --workdir=workdirs/traces
  python -m experiments.student_traces.main --config=experiments/student_traces/configs/default.py:tiny --workdir=workdirs/traces_tiny
  python -m experiments.student_traces.main --config=experiments/student_traces/configs/default.py --config.seed=1 --workdir=workdirs/traces_s1

Each variant's model trains through the one trainer (`train` holds its keys) in workdir/<variant>.
"""

import ml_collections

from jaxlab.train import default_config


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                  # Model init, data order, downsampling, sampling and probe folds.
  c.class_seed = 0            # The simulated class (the same students and traces for every model seed).
  c.num_students = 150        # Simulated students.
  c.per_student = 6           # Assignments per student (the last one is held out for generation / recovery).
  c.vocab_size = 512          # SentencePiece BPE pieces (256 byte pieces included).
  c.max_len = 256             # Tokens per training sequence (student position included); longer traces lose early states.
  c.variants = ('trace', 'last', 'synthetic')  # Models to train (the paper's three data variants).
  c.model = ml_collections.ConfigDict(dict(num_layers=2, embed_dim=64, num_heads=4, mlp_dim=256,
                                           num_buckets=2048))  # GPT-2-style DecoderLM + hashed student embedding.
  t = default_config()
  t.total_steps, t.batch_size, t.log_every, t.checkpoint_every = 150, 8, 25, 50
  t.mesh = dict(data=1, fsdp=1, tensor=1)
  t.optimizer.learning_rate, t.optimizer.warmup_steps = 3e-3, 20
  t.optimizer.weight_decay = 0.01
  c.train = t                 # Trainer keys, the same for every variant.
  c.temperature = 1.0         # Sampling temperature (generation and recovery).
  c.sample_batch = 64         # Prompts per generate() call.
  c.probe_folds = 5           # Cross-validation folds of the probes.
  c.num_recovery = 50         # Failing states of held-out traces continued by each model.
  if arg == 'tiny':
    c.num_students, c.per_student, c.vocab_size, c.max_len = 12, 3, 320, 128
    c.model = ml_collections.ConfigDict(dict(num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, num_buckets=64))
    c.train.total_steps, c.train.batch_size, c.train.log_every, c.train.checkpoint_every = 3, 4, 1, 3
    c.train.optimizer.warmup_steps = 1
    c.sample_batch, c.probe_folds, c.num_recovery = 8, 2, 4
  elif arg:
    raise ValueError(f'Unknown config variant {arg!r}; expected "" or "tiny".')
  return c
