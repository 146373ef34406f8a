r"""Trains a small decoder-only LM (Llama or GPT-2 family) on a text corpus, reports validation
perplexity and prints samples.

  python -m experiments.lm.main --config=experiments/lm/configs/default.py --workdir=workdirs/lm

Running the same command again with the same workdir resumes from the latest checkpoint; once the run is
finished, a rerun prints that it is finished and changes nothing (jaxlab.train.runrecord; a larger
`total_steps` trains on). The workdir holds the trained tokenizer, checkpoints, metrics.jsonl, TensorBoard
events, results.json and run.json (the run record: config, status, results, commit). The task (corpus,
tokenizer, split, windows, loss and eval) is jaxlab.data.lm_task.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxlab.data import lm_task
from jaxlab.nn.lm import generate, transformer
from jaxlab.train import runrecord, runtime, trainer

app_flags.define()


@runrecord.recorded(continuable=("total_steps",))
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  runtime.initialize()
  os.makedirs(workdir, exist_ok=True)
  logging.info("Config:\n%s", config)
  data = lm_task.prepare(config.data, workdir)
  tok, train_tokens, val_tokens = data.tokenizer, data.train_tokens, data.val_tokens
  logging.info("Corpus: %d characters, %d tokens (%d train / %d val), vocab %d", len(data.text), data.num_tokens,
               len(train_tokens), len(val_tokens), tok.vocab_size)
  prompt = np.asarray([tok.encode(config.sample.prompt)], np.int32)
  max_len = max(int(config.data.seq_len), prompt.shape[1] + int(config.sample.num_tokens))
  model = transformer.DecoderLM(lm_task.model_config(config, tok.vocab_size, max_len))
  task = lm_task.make_task(config, model, train_tokens, val_tokens)
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
  runrecord.write_json(os.path.join(workdir, "results.json"), results)
  logging.info("Results: %s", results)
  return results


main = app_flags.main_for(run)


if __name__ == "__main__":
  app_flags.run(main)
