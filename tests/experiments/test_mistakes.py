"""Every experiment binary turns a user's mistake into one line, before it creates anything (issue 13, item 3).

Each case runs a binary as a subprocess (``python -m experiments.X.main ...``) and checks: a non-zero exit
code, no "Traceback" anywhere in the output, exactly one ``error: ...`` line naming the flag / key / path,
and (for command-line and config mistakes) no workdir created. Command-line mistakes are caught by
``app_flags.check_command_line`` before JAX is imported (about 0.3 s each); the cases that need the binary's
full start (a value only the trainer rejects, a damaged checkpoint, a damaged model file) take a few
seconds each, and all but one representative per class are marked slow.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIGS = {  # binary -> its tiny config
    "lm": "experiments/lm/configs/default.py:tiny",
    "psm": "experiments/psm/configs/s5.py:tiny",
    "elf": "experiments/elf/configs/default.py:tiny",
    "varc": "experiments/varc/configs/pretrain.py:tiny",
    "rlcr": "experiments/rlcr/configs/default.py:tiny",
    "multi_answer": "experiments/multi_answer/configs/default.py:tiny",
    "attn_programs": "experiments/attn_programs/configs/smollm2.py:tiny",
    "hypnosis": "experiments/hypnosis/configs/default.py:tiny",
    "gd_prompting": "experiments/gd_prompting/configs/default.py:tiny",
    "own_words": "experiments/own_words/configs/default.py:tiny",
    "visual_skill": "experiments/visual_skill/configs/default.py:tiny",
    "circuits": "experiments/circuits/configs/default.py:tiny",
    "multimodal_saes": "experiments/multimodal_saes/configs/default.py:tiny",
    "self_ctrl": "experiments/self_ctrl/configs/default.py:tiny",
    "student_traces": "experiments/student_traces/configs/default.py:tiny",
    "saia": "experiments/saia/configs/default.py:tiny",
    "self_explain": "experiments/self_explain/configs/default.py:tiny",
    "concur": "experiments/concur/configs/default.py:tiny",
}
ALL_BINARIES = [*CONFIGS, "chat"]
# A value that parses but is wrong, rejected by the trainer's (or the binary's) checks after the full start.
NEGATIVE = {"lm": "total_steps", "psm": "train.total_steps", "elf": "total_steps", "varc": "total_steps",
            "rlcr": "sft.total_steps", "multi_answer": "sft.total_steps", "attn_programs": "num_fit",
            "hypnosis": "train.total_steps", "gd_prompting": "meta.total_steps",
            "own_words": "num_conversations", "visual_skill": "max_steps", "circuits": "num_prompts",
            "multimodal_saes": "vit.train.total_steps", "self_ctrl": "sft.total_steps",
            "student_traces": "train.total_steps", "saia": "vit.train.total_steps",
            "self_explain": "train.total_steps", "concur": "max_epochs"}
# The integer key each binary's config has for the typo and bad-value cases (default "seed").
INT_KEY = {"visual_skill": "max_steps", "concur": "max_epochs"}
# Binaries whose config loading imports JAX (their configs build on jaxlab.rl.recipe): typo cases take seconds.
HEAVY_CONFIG = {"rlcr", "multi_answer", "self_ctrl"}


def user_env(devices=None):
  """The environment a user runs a binary in: without the 8 fake devices of tests/conftest.py (the tiny
  configs of varc and psm ask for one device), unless ``devices`` asks for them."""
  env = dict(os.environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
  if devices:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  env["XLA_FLAGS"] = " ".join(flags)
  return env


def run_binary(name, *args, timeout=300, devices=None):
  cmd = [sys.executable, "-m", f"experiments.{name}.main", *args]
  return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=user_env(devices))


def assert_one_line_error(proc, *names, workdir=None):
  out = proc.stdout + proc.stderr
  assert proc.returncode != 0, out[-2000:]
  assert "Traceback" not in out, out[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1, proc.stderr[-3000:]
  for n in names:
    assert str(n) in errors[0], errors[0]
  if workdir is not None:
    assert not os.path.exists(workdir), f"{workdir} was created"
  return errors[0]


def _slow_if(cond):
  return [pytest.mark.slow] if cond else []


def _command_line_cases():
  """(binary, case) pairs of mistakes that need no JAX, each failing in check_command_line."""
  for b in CONFIGS:
    for case in ("missing_config", "config_not_python", "no_config_flag", "no_workdir_flag", "workdir_is_file",
                 "workdir_under_file", "workdir_unwritable"):
      yield pytest.param(b, case, id=f"{b}-{case}")
    for case in ("key_typo", "nested_key_typo", "bad_value_type", "positional_argument"):
      yield pytest.param(b, case, id=f"{b}-{case}", marks=_slow_if(b in HEAVY_CONFIG))


@pytest.mark.parametrize("binary,case", list(_command_line_cases()))
def test_command_line_mistake(tmp_path, binary, case):
  config = CONFIGS[binary]
  key = INT_KEY.get(binary, "seed")
  workdir = str(tmp_path / "wd")
  afile = tmp_path / "a_file.txt"
  afile.write_text("not a folder")
  args, names, expect_workdir = {
      "missing_config": ([f"--config={tmp_path}/no_such_config.py", f"--workdir={workdir}"],
                         ["no_such_config.py", "no such file"], workdir),
      "config_not_python": ([f"--config={afile}", f"--workdir={workdir}"], ["a_file.txt", "not a Python"], workdir),
      "no_config_flag": ([f"--workdir={workdir}"], ["--config"], workdir),
      "no_workdir_flag": ([f"--config={config}"], ["--workdir"], None),
      "workdir_is_file": ([f"--config={config}", f"--workdir={afile}"], [f"--workdir={afile}", "not a directory"],
                          None),
      "workdir_under_file": ([f"--config={config}", f"--workdir={afile}/run"], [str(afile), "is a file"], None),
      "workdir_unwritable": ([f"--config={config}", "--workdir=/proc/jaxlab_mistakes/run"],
                             ["/proc/jaxlab_mistakes/run", "cannot create"], "/proc/jaxlab_mistakes"),
      "positional_argument": ([f"--config={config}", f"--workdir={workdir}", "oops"], ["unexpected", "oops"],
                              workdir),
      "key_typo": ([f"--config={config}", f"--config.{key}d=1", f"--workdir={workdir}"],
                   [f"--config.{key}d=1", f"'{key}d'", f"did you mean '{key}'"], workdir),
      "nested_key_typo": ([f"--config={config}", "--config.no_such_block.x=1", f"--workdir={workdir}"],
                          ["--config.no_such_block.x=1", "'no_such_block'"], workdir),
      "bad_value_type": ([f"--config={config}", f"--config.{key}=abc", f"--workdir={workdir}"],
                         [f"--config.{key}=abc", "invalid literal"], workdir),
  }[case]
  if case == "workdir_unwritable" and not os.path.isdir("/proc"):
    pytest.skip("needs a /proc file system (an unwritable place even for root)")
  proc = run_binary(binary, *args, timeout=120)
  line = assert_one_line_error(proc, *names, workdir=expect_workdir)
  assert proc.returncode == 2, line


@pytest.mark.parametrize("binary", [pytest.param(b, marks=_slow_if(b != "lm")) for b in CONFIGS])
def test_bad_config_value(tmp_path, binary):
  """A value of the right type that the trainer (or the binary's checks) rejects names the key; nothing created."""
  key = NEGATIVE[binary]
  workdir = str(tmp_path / "wd")
  proc = run_binary(binary, f"--config={CONFIGS[binary]}", f"--config.{key}=-1", f"--workdir={workdir}")
  assert_one_line_error(proc, f"config.{key}=-1", workdir=workdir)


def test_unknown_enum_string(tmp_path):
  workdir = str(tmp_path / "wd")
  proc = run_binary("lm", f"--config={CONFIGS['lm']}", "--config.optimizer.name=adam", f"--workdir={workdir}")
  assert_one_line_error(proc, "config.optimizer.name='adam'", "adamw", workdir=workdir)


@pytest.mark.slow
def test_batch_not_divisible_by_the_devices(tmp_path):
  """On 8 (fake CPU) devices a batch of 6 cannot be split over the data axis."""
  workdir = str(tmp_path / "wd")
  proc = run_binary("lm", f"--config={CONFIGS['lm']}", "--config.batch_size=6", f"--workdir={workdir}", devices=8)
  assert_one_line_error(proc, "config.batch_size=6", "divisible", workdir=workdir)


def _fake_checkpoint(folder):
  """A step folder orbax sees as the latest checkpoint, with its files damaged (a crash, a bad copy)."""
  step = os.path.join(folder, "checkpoints", "3")
  for item in ("state", "data", "config"):
    os.makedirs(os.path.join(step, item))
  with open(os.path.join(step, "state", "_METADATA"), "w") as f:
    f.write('{"tree_metadata": {"params": tru')  # truncated JSON
  with open(os.path.join(step, "_CHECKPOINT_METADATA"), "w") as f:
    f.write("{}")


CHECKPOINTING = {"lm": "", "psm": "transformer", "elf": "", "varc": ""}  # binary -> run folder in the workdir


@pytest.mark.parametrize("binary", [pytest.param(b, marks=_slow_if(b != "lm")) for b in CHECKPOINTING])
def test_damaged_checkpoint(tmp_path, binary):
  workdir = str(tmp_path / "wd")
  _fake_checkpoint(os.path.join(workdir, CHECKPOINTING[binary]))
  proc = run_binary(binary, f"--config={CONFIGS[binary]}", f"--workdir={workdir}")
  line = assert_one_line_error(proc, "checkpoint", "step 3")
  assert len(line) < 600 and "tensorstore_spec" not in line, line
  assert "Event loop is closed" not in proc.stderr


def _small_gguf(path):
  import gguf as gguf_pkg  # pylint: disable=import-outside-toplevel
  writer = gguf_pkg.GGUFWriter(str(path), "llama")
  writer.add_tensor("token_embd.weight", np.ones((64, 64), np.float32))
  writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file()
  writer.close()


def damaged_gguf(tmp_path, kind):
  path = tmp_path / f"{kind}.gguf"
  if kind == "wrong_format":
    path.write_bytes(b"PK\x03\x04 this is a zip archive, not a model" * 4)
  else:  # truncated: the header is intact, the tensor data cut short
    _small_gguf(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 8000])
  return path


@pytest.mark.parametrize("kind,why", [pytest.param("wrong_format", "not a GGUF file", marks=pytest.mark.slow),
                                      ("truncated", "truncated")])
def test_chat_damaged_model_file(tmp_path, kind, why):
  path = damaged_gguf(tmp_path, kind)
  proc = run_binary("chat", f"--gguf={path}", "--max_new_tokens=2")
  assert_one_line_error(proc, str(path), why)


@pytest.mark.slow
@pytest.mark.parametrize("kind,why", [("wrong_format", "not a GGUF file"), ("truncated", "truncated")])
def test_attn_programs_damaged_model_file(tmp_path, kind, why):
  path = damaged_gguf(tmp_path, kind)
  workdir = str(tmp_path / "wd")
  proc = run_binary("attn_programs", f"--config={CONFIGS['attn_programs']}", f"--config.gguf={path}",
                    f"--workdir={workdir}")
  assert_one_line_error(proc, str(path), why, workdir=workdir)


@pytest.mark.parametrize("args,names", [
    (["--gguf=/no/such/model.gguf"], ["--gguf=/no/such/model.gguf", "no such file"]),
    (["--gguf=/tmp"], ["--gguf=/tmp", "not a regular file"]),
    (["--top_p=1.5"], ["--top_p=1.5", "(0, 1]"]),
    (["--temperature=-1"], ["--temperature=-1"]),
    (["--max_new_tokens=0"], ["--max_new_tokens=0"]),
    (["--max_new_tokens=lots"], ["--max_new_tokens", "lots"]),
    (["--prompt="], ["--prompt", "empty"]),
    (["--no_such_flag=1"], ["no_such_flag"]),
    (["hello"], ["unexpected", "hello"]),
], ids=["missing_model", "model_is_folder", "top_p", "temperature", "max_new_tokens", "bad_int", "empty_prompt",
        "unknown_flag", "positional"])
def test_chat_flag_mistakes(args, names):
  proc = run_binary("chat", *args, timeout=120)
  assert_one_line_error(proc, *names)


def test_every_binary_is_covered():
  found = sorted(d for d in os.listdir(os.path.join(ROOT, "experiments"))
                 if os.path.exists(os.path.join(ROOT, "experiments", d, "main.py")))
  assert found == sorted(ALL_BINARIES)


def test_verbosity_flag_shows_the_traceback(tmp_path):
  """-v 1 keeps the whole trace of an error raised inside the run (here a value the trainer rejects)."""
  workdir = str(tmp_path / "wd")
  proc = run_binary("lm", f"--config={CONFIGS['lm']}", "--config.total_steps=-1", f"--workdir={workdir}", "-v", "1")
  assert proc.returncode != 0
  assert "Traceback" in proc.stderr and "config.total_steps=-1 must be positive" in proc.stderr
