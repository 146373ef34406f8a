r"""Trains a small decoder-only LM (Llama or GPT-2 family) on a text corpus, reports validation
perplexity and prints samples.

  python -m experiments.lm.main --config=experiments/lm/configs/default.py --workdir=workdirs/lm

Running the same command again with the same workdir resumes from the latest checkpoint. The workdir
holds the trained tokenizer, checkpoints, metrics.jsonl, TensorBoard events and results.json.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, logging

from jaxlab.data import corpora, pipeline, tokenizers
from jaxlab.nn.lm import generate, transformer
from jaxlab.train import flops, runtime, trainer

app_flags.define()


def load_corpus(cfg: ml_collections.ConfigDict) -> str:
  """The corpus of a `config.data` block (corpus, text_files, cache_dir)."""
  return corpora.load_corpus(cfg.corpus, cfg.text_files, cache_dir=cfg.cache_dir)


def build_tokenizer(cfg: ml_collections.ConfigDict, text: str, workdir: str):
  kw = {"input_sentence_size": int(cfg.tokenizer_sentences)} if cfg.tokenizer_sentences else {}
  return tokenizers.train_or_load(text, os.path.join(workdir, "tokenizer", "spm"), int(cfg.vocab_size), **kw)


def model_config(cfg: ml_collections.ConfigDict, vocab_size: int, max_len: int) -> transformer.TransformerConfig:
  m = cfg.model
  common = dict(vocab_size=vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
                num_kv_heads=m.num_kv_heads, mlp_dim=m.mlp_dim, max_len=max_len, tie_embeddings=m.tie_embeddings,
                dropout_rate=m.dropout_rate, mixer=m.mixer)
  if m.family == "llama":
    return transformer.llama_config(rope_base=m.rope_base, **common)
  if m.family == "gpt2":
    return transformer.gpt2_config(**common)
  raise ValueError(f"config.model.family={m.family!r} is not one of 'llama', 'gpt2'")


def make_lm_task(config: ml_collections.ConfigDict, model: transformer.DecoderLM, train_tokens: np.ndarray,
                 val_tokens: np.ndarray) -> trainer.Task:
  """Loss, eval and data for next-token prediction; reused by the LM benchmark and experiments/psm/lm.py.

  `model` is any flax module mapping tokens [batch, T] to logits [batch, T, vocab] that accepts
  `deterministic` (DecoderLM, TransformerPSM)."""
  seq_len = int(config.data.seq_len)
  train_src = pipeline.TokenWindows(train_tokens, seq_len)
  val_src = pipeline.TokenWindows(val_tokens, seq_len)
  train_iter = pipeline.make_lm_pipeline(train_src, global_batch_size=int(config.batch_size), seed=int(config.seed))
  eval_batches = pipeline.make_eval_batches(val_src, int(config.data.eval_batch_size))
  max_eval = int(config.data.max_eval_batches)

  def loss_fn(params, batch, rng):
    logits = model.apply({"params": params}, batch["inputs"], deterministic=False, rngs={"dropout": rng})
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    return jnp.mean(nll), {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["targets"])}

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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  runtime.initialize()
  os.makedirs(workdir, exist_ok=True)
  logging.info("Config:\n%s", config)
  text = load_corpus(config.data)
  tok = build_tokenizer(config.data, text, workdir)
  tokens = np.asarray(tok.encode(text), np.int32)
  train_tokens, val_tokens = corpora.split_train_val(tokens, float(config.data.val_fraction))
  logging.info("Corpus: %d characters, %d tokens (%d train / %d val), vocab %d", len(text), len(tokens),
               len(train_tokens), len(val_tokens), tok.vocab_size)
  prompt = np.asarray([tok.encode(config.sample.prompt)], np.int32)
  max_len = max(int(config.data.seq_len), prompt.shape[1] + int(config.sample.num_tokens))
  model = transformer.DecoderLM(model_config(config, tok.vocab_size, max_len))
  task = make_lm_task(config, model, train_tokens, val_tokens)
  samples: list[str] = []

  def on_eval(state, step):
    params = state.ema_params if state.ema_params is not None else state.params
    out = generate.generate(model, params, jnp.asarray(prompt), max_new_tokens=int(config.sample.num_tokens),
                            rng=jax.random.PRNGKey(step), temperature=float(config.sample.temperature))
    toks, mask = jax.device_get((out.tokens, out.mask))
    samples.append(config.sample.prompt + tok.decode(toks[0][mask[0]].tolist()))
    logging.info("sample @ %d:\n%s", step, samples[-1])
    return {}

  task.on_eval = on_eval
  result = trainer.train(config, workdir, task)
  results = {"step": int(result.state.step), "val_perplexity": result.eval_metrics.get("perplexity"),
             "val_nll": result.eval_metrics.get("nll"), "val_accuracy": result.eval_metrics.get("accuracy"),
             "train_loss": result.train_metrics.get("loss"), "sample": samples[-1] if samples else None}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
      json.dump(results, f, indent=2)
  logging.info("Results: %s", results)
  return results


main = app_flags.main_for(run)


if __name__ == "__main__":
  app_flags.run(main)
