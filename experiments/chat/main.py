"""Chat with SmolLM2-135M-Instruct or Gemma-3-270M (GGUF -> jaxlab) using jaxlab.nn.lm.generate.

python -m experiments.chat.main --prompt="What is the capital of France?"
python -m experiments.chat.main --prompt="Tell me a story." --temperature=0.7 --top_p=0.9
python -m experiments.chat.main --model=gemma3 --prompt="What is the capital of France?"
Several --prompt flags are answered as one left-padded batch. --gguf=PATH chats with another GGUF of the
--model's architecture (default: the pinned SmolLM2-135M-Instruct / Gemma-3-270M asset). SmolLM2 uses the
chat template of its GGUF; the Gemma-3-270M GGUF (the base model, not instruction-tuned) has none, so
Gemma's turn format (jaxlab.io.gguf.GEMMA_CHAT_TEMPLATE) is used. Gemma is used under the Gemma Terms of
Use (https://ai.google.dev/gemma/terms). A mistake (a bad flag value, a missing or damaged model
file) is one `error: ...` line; -v 1 shows the traceback.
"""

import time

from absl import flags

from experiments import app_flags  # light: JAX and the model code are imported in main(), after the checks

_MODEL = flags.DEFINE_enum('model', 'smollm2', ['smollm2', 'gemma3'], 'Which model family to chat with.')
_PROMPT = flags.DEFINE_multi_string('prompt', ['What is the capital of France?'], 'User message(s).')
_MAX_NEW = flags.DEFINE_integer('max_new_tokens', 64, 'Tokens to generate at most.')
_TEMPERATURE = flags.DEFINE_float('temperature', 0., '0 = greedy.')
_TOP_P = flags.DEFINE_float('top_p', 1., 'Nucleus mass.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_SYSTEM = flags.DEFINE_string('system', None, 'System message (default: the template\'s).')
_GGUF = flags.DEFINE_string('gguf', '', 'Model file (a GGUF of --model\'s architecture; default: the pinned asset).')


def validate() -> None:
  """Flag checks before any download or model load (app_flags.run prints each as one line)."""
  if _MAX_NEW.value <= 0:
    app_flags.fail(f'--max_new_tokens={_MAX_NEW.value} must be positive')
  if _TEMPERATURE.value < 0:
    app_flags.fail(f'--temperature={_TEMPERATURE.value} must be ≥ 0 (0 = greedy)')
  if not 0 < _TOP_P.value <= 1:
    app_flags.fail(f'--top_p={_TOP_P.value} must be in (0, 1]')
  if any(not p.strip() for p in _PROMPT.value):
    app_flags.fail('--prompt: empty message')
  if _GGUF.value:
    app_flags.check_input_file(_GGUF.value, '--gguf')


def main(argv):
  if len(argv) > 1:
    app_flags.fail(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  from jaxlab.agents import chat  # pylint: disable=import-outside-toplevel
  from jaxlab.train import runtime  # pylint: disable=import-outside-toplevel
  runtime.initialize()
  model = chat.load(_MODEL.value, _GGUF.value)
  system = [{'role': 'system', 'content': _SYSTEM.value}] if _SYSTEM.value else []
  t = time.time()
  answers = model.respond([system + [{'role': 'user', 'content': p}] for p in _PROMPT.value],
                          max_new_tokens=_MAX_NEW.value, temperature=_TEMPERATURE.value, top_p=_TOP_P.value,
                          seed=_SEED.value, batch_size=len(_PROMPT.value), bucket=1)
  dt = time.time() - t
  for p, answer in zip(_PROMPT.value, answers):
    print(f'USER: {p}\nASSISTANT: {answer}\n')
  print(f'({len(answers)} answers in {dt:.1f} s including compilation)')


if __name__ == '__main__':
  app_flags.run(main, validate)
