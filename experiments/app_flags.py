"""The flags every experiment binary shares: --config (an ml_collections config file, locked) and --workdir.

Defined idempotently, so several experiment modules can be imported into one process (tests, notebooks)
without absl's DuplicateFlagError; each binary reads them through ``flags.FLAGS`` in its main().
"""

from collections.abc import Callable

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from jaxlab.train import runtime


def define(workdir_help: str = "Folder for checkpoints, metrics and results.") -> None:
  if "config" not in flags.FLAGS:
    config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.", lock_config=True)
  if "workdir" not in flags.FLAGS:
    flags.DEFINE_string("workdir", None, workdir_help)
    flags.mark_flags_as_required(["config", "workdir"])  # checked when a binary parses its flags


def main_for(run: Callable[[ml_collections.ConfigDict, str], object]) -> Callable[[list[str]], None]:
  """The absl ``main`` of a binary whose work is ``run(config, workdir)``: no positional arguments, a
  non-empty --workdir, and errors raised inside JAX shortened to the jaxlab frames (runtime.clear_errors)."""

  def main(argv: list[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS.workdir:
      raise app.UsageError("--workdir is required")
    with runtime.clear_errors():
      run(flags.FLAGS.config, flags.FLAGS.workdir)

  return main
