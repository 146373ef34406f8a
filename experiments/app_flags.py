"""What every experiment binary shares: the --config / --workdir flags and the start-up that turns a user's
mistake into one line.

``define()`` adds --config (an ml_collections config file, locked) and --workdir, idempotently, so several
experiment modules can be imported into one process (tests, notebooks) without absl's DuplicateFlagError.

``run(main)`` replaces ``app.run(main)``. Before ``main`` runs (so before anything is created on disk):

* the --config path is checked by hand (empty, missing, a folder, not a .py file) and then loaded by
  config_flags; a load failure, an unknown override key (``--config.total_step=100``) or a bad value
  (``--config.total_steps=abc``) is caught by its type (``flags.Error``, or the config_flags placeholder that
  is not a ConfigDict) and printed as one line ``error: --config...: <why>`` with exit code 2;
* ``check_workdir`` refuses a --workdir that is a regular file, that sits under a file, or whose nearest
  existing folder cannot be written to (probed, not guessed: root passes ``os.access`` everywhere);
* every sub-config holding the trainer's keys is validated (``jaxlab.train.validate_config``: signs, enum
  strings, the batch against the devices), each error naming the key.

While ``main`` runs, an error a user can cause (a bad config value, a missing input file, a damaged
checkpoint or model file, a missing asset; see USER_ERRORS) that is raised by jaxlab's or an experiment's own
code ends the run with one line ``error: <Type>: <what>: <why>`` and exit code 1. The traceback stays available
behind absl's verbosity flag: ``-v 1`` (``--verbosity=1``) re-raises the error with its full trace. Failures
raised inside JAX or other libraries are never shortened (they are bugs to report).
"""

import os
import re
import sys
import tempfile

from collections.abc import Callable, Sequence
from typing import NoReturn

import ml_collections
from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def define(workdir_help: str = "Folder for checkpoints, metrics and results.") -> None:
  if "config" not in FLAGS:
    config_flags.DEFINE_config_file("config", None, "Path to an ml_collections config file.", lock_config=True)
  if "workdir" not in FLAGS:
    flags.DEFINE_string("workdir", None, workdir_help)
    flags.mark_flags_as_required(["config", "workdir"])  # checked when a binary parses its flags


def main_for(run: Callable[[ml_collections.ConfigDict, str], object]) -> Callable[[list[str]], None]:
  """The absl ``main`` of a binary whose work is ``run(config, workdir)``: no positional arguments and a
  usable --workdir (``run()`` adds the config and user-error checks around it)."""

  def main(argv: list[str]) -> None:
    if len(argv) > 1:
      fail(f"unexpected arguments {argv[1:]} (flags are written --name=value)")
    run(FLAGS.config, FLAGS.workdir)

  return main


def one_line(message: object) -> str:
  return " ".join(str(message).split())


def fail(message: str, code: int = 2) -> NoReturn:
  """Prints ``error: <message>`` (one line) to stderr and exits."""
  sys.stderr.write("error: " + one_line(message) + "\n")
  sys.stderr.flush()
  sys.exit(code)


def check_workdir(workdir: str, flag: str = "--workdir") -> None:
  """Refuses a workdir that cannot become a folder of ours; creates nothing."""
  if not workdir:
    fail(f"{flag} is required (a folder for checkpoints, metrics and results)")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    fail(f"{flag}={workdir}: exists and is not a directory")
  ancestor = os.path.dirname(os.path.abspath(workdir))
  while not os.path.exists(ancestor):
    ancestor = os.path.dirname(ancestor)
  if not os.path.isdir(ancestor):
    fail(f"{flag}={workdir}: {ancestor} is a file, so the folder cannot be created under it")
  if os.path.isdir(workdir) and not os.access(workdir, os.W_OK | os.X_OK):
    fail(f"{flag}={workdir}: the folder is not writable")
  if not os.path.exists(workdir):
    try:  # a real probe: os.access says yes to root on read-only or virtual file systems
      os.rmdir(tempfile.mkdtemp(prefix=".jaxlab-probe-", dir=ancestor))
    except OSError as e:
      fail(f"{flag}={workdir}: cannot create folders in {ancestor} ({e.strerror or e})")


def check_input_file(path: str, flag: str) -> None:
  """A file the run reads must exist and be a readable regular file."""
  if not os.path.exists(path):
    fail(f"{flag}={path}: no such file")
  if not os.path.isfile(path):
    fail(f"{flag}={path}: not a regular file")
  if not os.access(path, os.R_OK):
    fail(f"{flag}={path}: not readable")


def _flag_arg(argv: Sequence[str], name: str) -> str | None:
  """The value of --name in argv (the last one wins, as in absl), or None when absent."""
  value = None
  for i, a in enumerate(argv):
    if a.startswith(f"--{name}="):
      value = a[len(f"--{name}="):]
    elif a == f"--{name}" and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def check_command_line(module_name: str, argv: Sequence[str] | None = None) -> None:
  """The first statement of a binary with --config/--workdir, before its heavy imports (JAX, flax): checks
  the --config path, the --workdir, positional arguments and the config's override keys and values on a
  throwaway FlagValues, so the common mistakes are one line in about a second. A no-op unless the module
  runs as ``__main__``; run() repeats every check on the real flags."""
  if module_name != "__main__":
    return
  argv = list(sys.argv if argv is None else argv)
  config = _flag_arg(argv[1:], "config")
  if config is None:
    fail("--config is required (e.g. --config=experiments/lm/configs/default.py)")
  _check_config_path(config)
  workdir = _flag_arg(argv[1:], "workdir")
  check_workdir(workdir or "")
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True)
  flags.DEFINE_string("workdir", None, "", flag_values=fv)
  flags.DEFINE_integer("verbosity", 0, "", short_name="v", flag_values=fv)
  try:
    rest = fv(argv, known_only=True)
  except flags.Error as e:
    fail(_flag_error_text(e))
  except (AttributeError, KeyError) as e:
    fail(_unknown_key_text(e, argv[1:]))
  _check_loaded(fv, config)
  positional = [a for a in rest[1:] if not a.startswith("-")]
  if positional:
    fail(f"unexpected arguments {positional} (flags are written --name=value)")


def _check_loaded(fv: flags.FlagValues, value: str | None) -> None:
  config = fv["config"].value
  if not isinstance(config, ml_collections.ConfigDict):  # config_flags defers a load failure to first use
    try:
      config.keys()
    except Exception as e:  # pylint: disable=broad-except  (the deferred IOError, or anything get_config raised)
      fail(f"--config={value}: could not be loaded: {_flag_error_text(e)}")
    fail(f"--config={value}: get_config() returned {type(config).__name__}, not a ConfigDict")


def _check_config_path(value: str) -> None:
  path = value.split(":", 1)[0]
  if not path:
    fail("--config: empty path (expected e.g. --config=experiments/lm/configs/default.py)")
  if not os.path.exists(path):
    fail(f"--config={value}: no such file {path}")
  if not os.path.isfile(path):
    fail(f"--config={value}: {path} is not a file")
  if not path.endswith(".py"):
    fail(f"--config={value}: {path} is not a Python config file (.py with get_config)")


def _flag_error_text(e: BaseException) -> str:
  """One line from an absl flag error. config_flags puts a whole traceback into the message of an error
  raised inside get_config, and the repr of a KeyError (quoted, escaped newlines) into override errors."""
  text = str(e)
  if "Traceback (most recent call last)" in text:
    head = text.split(":", 1)[0]
    last = [ln for ln in text.splitlines() if ln.strip()][-1].strip()
    text = f"{head}: {last}"
  if text[:1] == "'" and text[-1:] == "'":
    text = text[1:-1].replace("\\n", " ").replace("\\'", "")
  return one_line(text)


def _unknown_key_text(e: BaseException, argv: Sequence[str]) -> str:
  """'--config.total_step=100: no such config key 'total_step'; did you mean "total_steps"?'"""
  raw = str(e.args[0] if e.args else e)
  found = re.search(r'instead of "([^"]+)"', raw) or re.search(r"([A-Za-z_][\w]*)", raw)
  key = found.group(1) if found else ""
  hint = re.search(r'Did you mean "([^"]+)"', raw)
  named = [a for a in argv if a.startswith("--config.") and key in a.split("=", 1)[0].split(".")[1:]]
  where = named[-1] if named else "--config override"
  return f"{where}: no such config key {key!r}" + (f"; did you mean {hint.group(1)!r}?" if hint else "")


def _parse_flags(argv: list[str]) -> list[str]:
  has_config = "config" in FLAGS
  value = _flag_arg(argv[1:], "config") if has_config else None
  if value is not None:
    _check_config_path(value)
  try:
    rest = FLAGS(argv)
  except flags.Error as e:  # unknown flag, bad override value, missing required flag, get_config error
    fail(_flag_error_text(e))
  except (AttributeError, KeyError) as e:  # config_flags raises these, unwrapped, for an unknown override key
    fail(_unknown_key_text(e, argv[1:]))
  if has_config and FLAGS["config"].present:
    _check_loaded(FLAGS, value)
  return rest


def validate_trainer_configs(config: ml_collections.ConfigDict, prefix: str = "config") -> None:
  """Runs the trainer's checks on every (sub-)config that holds the trainer's keys, naming each key."""
  if "total_steps" in config:  # a trainer block: checked by the trainer's own rules
    from jaxlab.train import trainer  # pylint: disable=import-outside-toplevel  (imports JAX)
    trainer.validate_config(config, prefix=prefix, require=all(k in config for k in trainer.REQUIRED_KEYS),
                            check_devices=True)
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      validate_trainer_configs(v, f"{prefix}.{k}")


def user_errors() -> tuple[type[BaseException], ...]:
  """The exception types a user can cause: bad values, missing or unreadable files, damaged checkpoints or
  model files, missing assets (imported lazily: they pull in JAX)."""
  from jaxlab.data.assets import AssetError  # pylint: disable=import-outside-toplevel
  from jaxlab.train.checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel
  return (ValueError, KeyError, OSError, CheckpointError, AssetError, NotImplementedError)


_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _raised_by_project(e: BaseException) -> bool:
  """True when the innermost frame of the error is jaxlab's or an experiment's own code."""
  tb, last = e.__traceback__, None
  while tb is not None:
    last, tb = tb, tb.tb_next
  if last is None:
    return False
  path = os.path.abspath(last.tb_frame.f_code.co_filename)
  return any(path.startswith(os.path.join(_PROJECT_ROOT, d) + os.sep) for d in ("jaxlab", "experiments"))


def _message(e: BaseException) -> str:
  text = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 else e
  if isinstance(e, OSError) and e.filename and str(e.filename) not in str(e):
    text = f"{e.filename}: {e.strerror or e}"
  return f"{type(e).__name__}: {one_line(text)}"


def guarded(main: Callable[[list[str]], None],
            validate: Callable[[], None] | None = None) -> Callable[[list[str]], None]:
  """``main`` with the workdir/config checks first and user errors as one line (``-v 1``: full trace)."""

  def wrapped(argv: list[str]) -> None:
    try:
      if "workdir" in FLAGS:
        check_workdir(FLAGS.workdir)
      if "config" in FLAGS and isinstance(FLAGS.config, ml_collections.ConfigDict):
        validate_trainer_configs(FLAGS.config)
      if validate is not None:
        validate()
      main(argv)
    except SystemExit:
      raise
    except user_errors() as e:
      if FLAGS.verbosity >= 1 or not _raised_by_project(e):
        raise  # asked for, or an internal failure (inside JAX, say): keep the whole trace for the bug report
      fail(_message(e) + "  (run with -v 1 for the traceback)", code=1)

  return wrapped


def run(main: Callable[[list[str]], None], validate: Callable[[], None] | None = None) -> None:
  """``app.run(main)`` with flag/config mistakes (exit 2) and user errors inside the run (exit 1) reported as
  one ``error: ...`` line. ``validate`` (optional) checks the binary's own flags before ``main`` starts."""
  app.run(guarded(main, validate), flags_parser=_parse_flags)
