"""The language-modelling task shared by experiments/lm, experiments/psm (task 'lm') and experiments/elf's
AR evaluator: corpus → tokenizer → train/validation split → token windows → next-token loss and eval.

  data = lm_task.prepare(config.data, workdir)            # corpus, tokenizer (trained once), split
  model = transformer.DecoderLM(lm_task.model_config(config, data.tokenizer.vocab_size, max_len))
  task = lm_task.make_task(config, model, data.train_tokens, data.val_tokens)   # a jaxlab.train.Task

``config.data`` holds corpus, text_files, cache_dir, vocab_size, tokenizer_sentences, val_fraction,
seq_len, eval_batch_size, max_eval_batches; the task also reads config.batch_size and config.seed, and
``model_config`` reads config.model (family, num_layers, embed_dim, num_heads, num_kv_heads, mlp_dim,
tie_embeddings, dropout_rate, mixer, rope_base). See experiments/lm/configs/default.py for every field.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils

from jaxlab.data import corpora, pipeline, tokenizers
from jaxlab.nn.lm import transformer
from jaxlab.train import flops, trainer


def load_corpus(cfg: ml_collections.ConfigDict) -> str:
  """The corpus of a `config.data` block (corpus, text_files, cache_dir)."""
  return corpora.load_corpus(cfg.corpus, cfg.text_files, cache_dir=cfg.cache_dir)


def build_tokenizer(cfg: ml_collections.ConfigDict, text: str, workdir: str) -> tokenizers.Tokenizer:
  """The SentencePiece tokenizer of `workdir/tokenizer/spm`, trained on `text` on first use."""
  kw = {"input_sentence_size": int(cfg.tokenizer_sentences)} if cfg.tokenizer_sentences else {}
  path = os.path.join(workdir, "tokenizer", "spm")
  if jax.process_count() == 1:
    return tokenizers.train_or_load(text, path, int(cfg.vocab_size), **kw)
  # Several processes share the workdir: process 0 trains (or loads), the others load its file afterwards.
  if jax.process_index() == 0:
    tok = tokenizers.train_or_load(text, path, int(cfg.vocab_size), **kw)
  multihost_utils.sync_global_devices("jaxlab.data.lm_task.build_tokenizer")
  return tok if jax.process_index() == 0 else tokenizers.train_or_load(text, path, int(cfg.vocab_size), **kw)


@dataclasses.dataclass
class LMData:
  """A tokenized corpus: the text, its tokenizer and the contiguous train / validation token arrays."""
  text: str
  tokenizer: tokenizers.Tokenizer
  train_tokens: np.ndarray   # [n_train] int32
  val_tokens: np.ndarray     # [n_val] int32

  @property
  def num_tokens(self) -> int:
    return len(self.train_tokens) + len(self.val_tokens)


def prepare(cfg: ml_collections.ConfigDict, workdir: str) -> LMData:
  """Loads the corpus of `config.data`, trains (or loads) the tokenizer in `workdir` and splits the tokens."""
  text = load_corpus(cfg)
  tok = build_tokenizer(cfg, text, workdir)
  tokens = np.asarray(tok.encode(text), np.int32)
  train_tokens, val_tokens = corpora.split_train_val(tokens, float(cfg.val_fraction))
  return LMData(text, tok, train_tokens, val_tokens)


def model_config(cfg: ml_collections.ConfigDict, vocab_size: int, max_len: int) -> transformer.TransformerConfig:
  """The DecoderLM config of `config.model` (family 'llama' or 'gpt2')."""
  m = cfg.model
  common = dict(vocab_size=vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
                num_kv_heads=m.num_kv_heads, mlp_dim=m.mlp_dim, max_len=max_len, tie_embeddings=m.tie_embeddings,
                dropout_rate=m.dropout_rate, mixer=m.mixer, dtype=m.get("dtype", "float32"),
                remat=m.get("remat", "none"), attention_impl=m.get("attention_impl", "reference"))
  if m.family == "llama":
    return transformer.llama_config(rope_base=m.rope_base, **common)
  if m.family == "gpt2":
    return transformer.gpt2_config(**common)
  raise ValueError(f"config.model.family={m.family!r} is not one of 'llama', 'gpt2'")


def make_loss_fn(model):
  """``(params, batch, rng) -> (mean next-token NLL, {'accuracy'})`` on {'inputs', 'targets'} [batch, T]."""
  def loss_fn(params, batch, rng):
    logits = model.apply({"params": params}, batch["inputs"], deterministic=False, rngs={"dropout": rng})
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    return jnp.mean(nll), {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["targets"])}
  return loss_fn


def make_task(config: ml_collections.ConfigDict, model, train_tokens: np.ndarray,
              val_tokens: np.ndarray) -> trainer.Task:
  """Loss, eval and data for next-token prediction on `seq_len`-token windows.

  `model` is any flax module mapping tokens [batch, T] to logits [batch, T, vocab] that accepts
  `deterministic` (DecoderLM, TransformerPSM). Eval reports the mean NLL, accuracy and perplexity over
  the validation windows (at most `config.data.max_eval_batches` batches; 0 = all)."""
  seq_len = int(config.data.seq_len)
  train_src = pipeline.TokenWindows(train_tokens, seq_len)
  val_src = pipeline.TokenWindows(val_tokens, seq_len)
  train_iter = pipeline.make_lm_pipeline(train_src, global_batch_size=int(config.batch_size), seed=int(config.seed))
  eval_batches = pipeline.make_eval_batches(val_src, int(config.data.eval_batch_size))
  max_eval = int(config.data.max_eval_batches)

  loss_fn = make_loss_fn(model)

  def eval_step(params, batch):
    logits = model.apply({"params": params}, batch["inputs"])
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    w = batch["mask"][:, None] * jnp.ones_like(nll)
    return {"nll": jnp.sum(nll * w), "accuracy": jnp.sum((jnp.argmax(logits, -1) == batch["targets"]) * w),
            "weight": jnp.sum(w)}

  def eval_data():
    return [eval_batches[i] for i in range(len(eval_batches) if not max_eval else min(max_eval, len(eval_batches)))]

  return trainer.Task(
      init_params=lambda rng: model.init(rng, jnp.zeros((1, seq_len), jnp.int32))["params"],
      loss_fn=loss_fn, train_data=train_iter, eval_step=eval_step, eval_data=eval_data,
      tokens_per_example=seq_len,
      flops_per_example=(flops.lm_train_flops_per_token(model.config, seq_len) * seq_len  # None: XLA's count
                         if isinstance(model.config, transformer.TransformerConfig) else None),
      eval_finalize=lambda m: {"perplexity": float(np.exp(m["nll"]))})
