"""Language modelling with the Transformer-PSM vs a same-size causal Transformer (validation perplexity vs c).

Run through the psm app (`config.data.task = 'lm'`, experiments/psm/configs/lm.py). The corpus, the
SentencePiece tokenizer, the train/validation split, the windowed grain pipeline and the loss/eval task are
experiments/lm's (jaxlab.data.lm_task), so every model sees the same tokens in the same order for the same
number of steps. Each model's run is recorded and reused like the other psm tasks'. Models:

* 'transformer': a GPT-2-style causal Transformer (LayerNorm, GELU, learned positions, untied head) with
  agg_layers + inf_layers layers, i.e. the same blocks and about the same parameter count as the PSM;
* 'llama': the same size in the Llama family (RMSNorm, RoPE, SwiGLU of width 8d/3, untied head), the
  stronger modern baseline;
* 'psm' (one run per c in `config.model.chunk_sizes`): the Transformer-PSM with `agg_layers` Agg and
  `inf_layers` Inf blocks. Every token of a chunk is a target (see jaxlab/nn/psm/transformer_psm.py).
"""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from jaxlab.data import lm_task
from jaxlab.nn.lm import transformer
from jaxlab.nn.psm.transformer_psm import PSMConfig, TransformerPSM
from jaxlab.train import runrecord, trainer


def make_model(cfg: ml_collections.ConfigDict, name: str, vocab: int, chunk_size: int):
  m, seq_len = cfg.model, int(cfg.data.seq_len)
  if name == 'transformer':
    return transformer.DecoderLM(transformer.gpt2_config(
        vocab_size=vocab, num_layers=m.agg_layers + m.inf_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
        mlp_dim=4 * m.embed_dim, max_len=seq_len, tie_embeddings=False))
  if name == 'llama':
    return transformer.DecoderLM(transformer.llama_config(
        vocab_size=vocab, num_layers=m.agg_layers + m.inf_layers, embed_dim=m.embed_dim, num_heads=m.num_heads,
        num_kv_heads=None, mlp_dim=round(8 * m.embed_dim / 3), max_len=seq_len, tie_embeddings=False,
        rope_base=10000.))
  if name.startswith('psm'):
    return TransformerPSM(PSMConfig(vocab_size=vocab, chunk_size=chunk_size, embed_dim=m.embed_dim,
                                    num_heads=m.num_heads, agg_layers=m.agg_layers, inf_layers=m.inf_layers,
                                    max_len=seq_len))
  raise ValueError(f"config.models entry {name!r} is not 'transformer', 'llama' or 'psm' for task 'lm'.")


def trainer_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The trainer's keys (config.train) plus what experiments/lm's task reads (seed, batch_size, data)."""
  tcfg = ml_collections.ConfigDict(cfg.train.to_dict())
  tcfg.seed, tcfg.batch_size, tcfg.data = cfg.seed, cfg.batch_size, cfg.data.to_dict()
  return tcfg


def run(config: ml_collections.ConfigDict, workdir: str, runs: list[tuple[str, int]],
        run_config) -> list[dict]:
  """Trains every (name, chunk size) in `runs` on the corpus (a finished model's run is reused: `run_config`
  gives what each run depends on); writes workdir/results.json."""
  if int(config.data.seq_len) <= 0:
    raise ValueError(f'config.data.seq_len={config.data.seq_len} must be positive.')
  data = lm_task.prepare(config.data, workdir)
  train_tokens, val_tokens, tok = data.train_tokens, data.val_tokens, data.tokenizer
  logging.info('Corpus: %d tokens (%d train / %d val), vocab %d', data.num_tokens, len(train_tokens),
               len(val_tokens), tok.vocab_size)
  tcfg = trainer_config(config)

  def train(name: str, c: int, model_dir: str) -> dict:
    model = make_model(config, name, tok.vocab_size, c)
    task = lm_task.make_task(tcfg, model, train_tokens, val_tokens)
    start = time.time()
    result = trainer.train(tcfg, model_dir, task, devices=[jax.devices()[0]])
    n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(result.state.params))
    out = {'model': name, 'chunk_size': c or None, 'params': n_params, 'steps': int(result.state.step),
           'train_seconds': round(time.time() - start, 1),
           'train_tokens': int(result.state.step) * int(config.batch_size) * int(config.data.seq_len),
           'final_train_loss': result.train_metrics.get('loss'),
           'val_nll': result.eval_metrics.get('nll'), 'val_perplexity': result.eval_metrics.get('perplexity'),
           'val_accuracy': result.eval_metrics.get('accuracy')}
    logging.info('%s: %s', name, out)
    return out

  results = []
  for name, c in runs:
    model_dir = os.path.join(workdir, name)
    results.append(runrecord.reuse_or_run(model_dir, run_config(config, name, c),
                                          lambda name=name, c=c, d=model_dir: train(name, c, d),
                                          continuable=('train.total_steps',)))
  runrecord.write_json(os.path.join(workdir, 'results.json'),
                       {'config': config.to_dict(), 'corpus_tokens': [len(train_tokens), len(val_tokens)],
                        'results': results}, indent=1)
  return results
