"""A small in-house arithmetic specialist: a character-level DecoderLM trained in minutes by the trainer.

It reads only the arithmetic expression in a question (the last run of digits and + - * between them,
e.g. "Calculate 13 - 92." -> "13-92") and writes the value's digits least-significant first, then '$'
(reversed digits are the usual trick that lets a tiny transformer carry). A question without such an
expression gets an empty answer, so the specialist is cheap and right on the arithmetic families and wrong
elsewhere: headroom for a router.

Training examples are random expressions of `min_terms`..`max_terms` integers of up to `max_digits` digits
joined by + - * (operator mix `ops`), drawn fresh from a seeded numpy generator (an unbounded grain source);
the loss is cross-entropy on the answer characters only.
"""

from __future__ import annotations

import dataclasses
import re
import time

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxlab.nn.lm.transformer import DecoderLM, TransformerConfig
from jaxlab.train import flops as flops_lib
from jaxlab.train import trainer as trainer_lib

CHARS = '_0123456789+-*=$'  # '_' pads
PAD, EQ, END = 0, CHARS.index('='), CHARS.index('$')
_EXPR = re.compile(r'-?\d+(?:\s*[-+*]\s*-?\d+)+')


def expression(question: str) -> str | None:
  """The last arithmetic expression in `question`, spaces removed, or None."""
  found = _EXPR.findall(question)
  return found[-1].replace(' ', '') if found else None


def encode(text: str) -> list[int]:
  return [CHARS.index(c) for c in text]


@dataclasses.dataclass(frozen=True)
class SpecialistData:
  """An unbounded random-access grain source of (tokens, loss mask) rows."""
  seq_len: int = 24
  min_terms: int = 2
  max_terms: int = 3
  max_digits: int = 2
  ops: str = '+-*'
  seed: int = 0

  def __len__(self) -> int:
    return 1 << 30

  def example(self, rng: np.random.Generator) -> tuple[str, str]:
    n = int(rng.integers(self.min_terms, self.max_terms + 1))
    nums = [int(rng.integers(0, 10 ** int(rng.integers(1, self.max_digits + 1)))) for _ in range(n)]
    ops = [self.ops[int(rng.integers(len(self.ops)))] for _ in range(n - 1)]
    expr = str(nums[0]) + ''.join(o + str(x) for o, x in zip(ops, nums[1:]))
    return expr, str(eval(expr))  # pylint: disable=eval-used  # digits and + - * only

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    expr, value = self.example(np.random.default_rng([self.seed, int(i)]))
    prompt, target = encode(expr + '='), encode(value[::-1] + '$')
    toks = np.full(self.seq_len, PAD, np.int32)
    seq = (prompt + target)[:self.seq_len]
    toks[:len(seq)] = seq
    mask = np.zeros(self.seq_len, np.float32)
    mask[len(prompt) - 1:len(seq) - 1] = 1.  # position t predicts token t + 1
    return {'tokens': toks, 'mask': mask}


def model_config(size: str = 'small') -> TransformerConfig:
  width = {'small': 128, 'base': 64, 'tiny': 32}[size]
  return TransformerConfig(vocab_size=len(CHARS), num_layers=2, embed_dim=width, num_heads=4, mlp_dim=4 * width,
                           max_len=32, pos='learned', norm='layer', mlp='gelu')


def train(config: ml_collections.ConfigDict, workdir: str, size: str = 'small'):
  """Trains the specialist with the one trainer; returns (model config, params, wall seconds)."""
  cfg = model_config(size)
  model = DecoderLM(cfg)
  data = SpecialistData(seed=int(config.seed))
  ds = grain.MapDataset.source(data).batch(int(config.batch_size), drop_remainder=True)

  def loss_fn(params, batch, rng):
    del rng
    logits = model.apply({'params': params}, batch['tokens'])
    ce = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], batch['tokens'][:, 1:])
    m = batch['mask'][:, :-1]
    loss = (ce * m).sum() / jnp.maximum(m.sum(), 1.)
    right = ((jnp.argmax(logits[:, :-1], -1) == batch['tokens'][:, 1:]) * m).sum() / jnp.maximum(m.sum(), 1.)
    return loss, {'char_acc': right}

  task = trainer_lib.Task(init_params=lambda rng: model.init(rng, jnp.zeros((1, data.seq_len), jnp.int32))['params'],
                          loss_fn=loss_fn, train_data=iter(ds.to_iter_dataset()), tokens_per_example=data.seq_len)
  t0 = time.perf_counter()
  result = trainer_lib.train(config, workdir, task)
  return cfg, jax.device_get(result.state.params), time.perf_counter() - t0


def answer(cfg: TransformerConfig, params, questions: list[str], max_new: int = 7) -> list[tuple[str, int, int]]:
  """Greedy answers: (answer, prompt chars, generated chars) per question ('' when it has no expression)."""
  model = DecoderLM(cfg)
  exprs = [expression(q) for q in questions]
  seqs = [encode(e + '=') if e and len(e) + 1 + max_new <= cfg.max_len else [] for e in exprs]
  width = max([len(s) for s in seqs] + [1])
  out_tokens = [list(s) for s in seqs]
  apply = jax.jit(lambda p, t: model.apply({'params': p}, t))
  buf = np.full((len(seqs), width + max_new), PAD, np.int32)
  lens = np.array([len(s) for s in seqs])
  for i, s in enumerate(seqs):
    buf[i, :len(s)] = s
  done = lens == 0
  for _ in range(max_new):  # right-padded rows, each reads its own last position
    logits = np.asarray(apply(params, jnp.asarray(buf)))
    for i in np.flatnonzero(~done):
      tok = int(np.argmax(logits[i, lens[i] - 1]))
      buf[i, lens[i]] = tok
      out_tokens[i].append(tok)
      lens[i] += 1
      done[i] = tok == END or lens[i] >= buf.shape[1]
    if done.all():
      break
  res = []
  for s, toks in zip(seqs, out_tokens):
    if not s:
      res.append(('', 0, 0))
      continue
    gen = ''.join(CHARS[t] for t in toks[len(s):]).split('$')[0]
    res.append((gen[::-1], len(s), len(toks) - len(s)))
  return res


def answer_flops(cfg: TransformerConfig, prompt_chars: int, new_chars: int) -> float:
  from jaxlab.routing.outcomes import sequence_flops  # pylint: disable=import-outside-toplevel
  return sequence_flops(cfg, prompt_chars, new_chars)
