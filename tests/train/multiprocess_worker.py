"""One process of the multi-process trainer test (tests/train/test_multiprocess.py), started by jaxlab.launch.

Trains the tiny LM of experiments/lm/configs/default.py:tiny on the trainer, on a data=2 × fsdp=2 mesh over all
the job's devices, with log_every=1 (process 0 writes every step's loss to metrics.jsonl). The training windows
carry their window index, and every batch the trainer draws is recorded, so the test can check which windows
each process read (``<workdir>/indices_<process>.json``). At the end process 0 writes the gathered parameters to
``<workdir>/params.npz``. With ``--die_at=N`` each process (or only ``--die_process``) kills itself (SIGKILL) when the trainer asks for batch
N + 2, once the checkpoint of step N is committed: a crash mid-run that a restart must continue exactly.

  python -m jaxlab.launch --num_processes=2 -- python -m tests.train.multiprocess_worker --workdir=DIR
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time

import grain
import numpy as np


class IndexedWindows:
  """TokenWindows whose examples also carry 'index' (the window number, int32 scalar)."""

  def __init__(self, windows):
    self.windows = windows

  def __len__(self):
    return len(self.windows)

  def __getitem__(self, i):
    return {**self.windows[i], "index": np.int32(i)}


class Recorder(grain.DatasetIterator):
  """Records the window indices of each batch handed to the trainer; optionally dies after a checkpoint."""

  def __init__(self, it, workdir: str, die_at: int, die: bool):
    super().__init__(it)
    self._it, self.workdir, self.die_at, self.die, self.batches = it, workdir, die_at, die, []

  def __next__(self):
    if self.die and self.die_at and len(self.batches) == self.die_at + 1:  # the trainer has run step die_at + 1
      committed = os.path.join(self.workdir, "checkpoints", str(self.die_at))
      deadline = time.monotonic() + 120
      while not os.path.isdir(committed) and time.monotonic() < deadline:
        time.sleep(0.05)
      os.kill(os.getpid(), signal.SIGKILL)
    b = next(self._it)
    self.batches.append(np.asarray(b["index"]).tolist())
    return b

  def get_state(self):
    return self._it.get_state()

  def set_state(self, state):
    self._it.set_state(state)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--total_steps", type=int, default=6)
  parser.add_argument("--die_at", type=int, default=0)
  parser.add_argument("--die_process", type=int, default=-1, help="the process that dies (-1: all)")
  args = parser.parse_args()

  import jax  # pylint: disable=import-outside-toplevel
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

  from experiments.lm.configs import default  # pylint: disable=import-outside-toplevel
  from jaxlab.data import lm_task, pipeline  # pylint: disable=import-outside-toplevel
  from jaxlab.nn.lm import transformer  # pylint: disable=import-outside-toplevel
  from jaxlab.train import runtime, trainer  # pylint: disable=import-outside-toplevel

  runtime.initialize()
  config = default.get_config("tiny")
  config.total_steps = args.total_steps
  config.log_every = 1
  config.eval_every = 0
  config.checkpoint_every = 3
  config.keep_checkpoints = 5
  config.mesh.data, config.mesh.fsdp = 2, 2
  os.makedirs(args.workdir, exist_ok=True)
  data = lm_task.prepare(config.data, args.workdir)
  model = transformer.DecoderLM(lm_task.model_config(config, data.tokenizer.vocab_size, int(config.data.seq_len)))
  task = lm_task.make_task(config, model, data.train_tokens, data.val_tokens)
  source = IndexedWindows(pipeline.TokenWindows(data.train_tokens, int(config.data.seq_len)))
  recorder = Recorder(pipeline.make_lm_pipeline(source, global_batch_size=int(config.batch_size),
                                                seed=int(config.seed)), args.workdir, args.die_at,
                      die=args.die_process in (-1, jax.process_index()))
  task.train_data = recorder
  result = trainer.train(config, args.workdir, task)
  with open(os.path.join(args.workdir, f"indices_{jax.process_index()}.json"), "w", encoding="utf-8") as f:
    json.dump({"start_step": result.start_step, "batches": recorder.batches,
               "process_count": jax.process_count(), "devices": jax.device_count(),
               "num_windows": len(source)}, f)
  params = multihost_utils.process_allgather(result.state.params, tiled=True)
  if jax.process_index() == 0:
    flat = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(params)}
    np.savez(os.path.join(args.workdir, "params.npz"), **flat)


if __name__ == "__main__":
  main()
