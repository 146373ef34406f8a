"""The flags every experiment binary shares: --config (an ml_collections config file, locked) and --workdir.

Defined idempotently, so several experiment modules can be imported into one process (tests, notebooks)
without absl's DuplicateFlagError; each binary reads them through ``flags.FLAGS`` in its main().
"""

from absl import flags
from ml_collections import config_flags


def define(workdir_help: str = "Folder for checkpoints, metrics and results.") -> None:
  if "config" not in flags.FLAGS:
    config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.", lock_config=True)
  if "workdir" not in flags.FLAGS:
    flags.DEFINE_string("workdir", None, workdir_help)
    flags.mark_flags_as_required(["config", "workdir"])  # checked when a binary parses its flags
