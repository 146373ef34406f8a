"""The flags every experiment binary shares: --config (an ml_collections config file, locked) and --workdir.

Defined idempotently, so several experiment modules can be imported into one process (tests, notebooks)
without absl's DuplicateFlagError; each binary reads them through ``flags.FLAGS`` in its main().

``run(main)`` replaces ``app.run(main)``: a flag/config mistake (missing or unloadable --config file, unknown
override key, bad value) is printed as one line ``error: ...`` to stderr with exit code 2, before anything
is created on disk.
"""

import os
import sys

from collections.abc import Callable
from typing import NoReturn

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
    _check_workdir(flags.FLAGS.workdir)
    with runtime.clear_errors():
      run(flags.FLAGS.config, flags.FLAGS.workdir)

  return main


def _fail(message: str) -> NoReturn:
  sys.stderr.write("error: " + " ".join(str(message).split()) + "\n")
  sys.exit(2)


def _check_workdir(workdir: str) -> None:
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    _fail(f"--workdir={workdir}: exists and is not a directory")
  parent = os.path.dirname(os.path.abspath(workdir))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.exists(workdir) and not os.access(parent, os.W_OK):
    _fail(f"--workdir={workdir}: parent folder {parent} is not writable")


def _parse_flags(argv: list[str]) -> list[str]:
  try:
    rest = flags.FLAGS(argv)
    config = flags.FLAGS["config"].value if "config" in flags.FLAGS else None
    if type(config).__name__ == "_ErrorConfig":  # config_flags defers a failed load to the first attribute read
      config.keys()
    return rest
  except Exception as e:  # flags.Error, and the IOError/ValueError/KeyError config_flags raises for a bad file
    # config_flags puts the repr of a KeyError into the flag error (quotes, an escaped newline): unquote it.
    text = str(e)
    if text[:1] == "'" and text[-1:] == "'":
      text = text[1:-1].replace("\\n", " ").replace("\\'", "")
    _fail(f"--config: {text}")


def run(main: Callable[[list[str]], None]) -> None:
  """``app.run(main)`` with flag and config mistakes reported as one line (exit code 2)."""
  app.run(main, flags_parser=_parse_flags)
