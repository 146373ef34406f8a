"""Hugging Face checkpoint layouts (Llama, GPT-2, BERT) -> jaxlab parameter trees.

Every converter takes a flat `{name: np.ndarray}` state dict in Hugging Face naming (what
`safetensors.numpy.load_file` returns, or `{k: v.numpy()}` of a torch state dict) and returns a nested
dict of float32 numpy arrays with the exact paths of the jaxlab module (pinned by
tests/nn/test_transformer.py and jaxlab/nn/encoders/bert.py). Nothing here imports torch.

Weight conventions: Hugging Face `nn.Linear` stores [out, in]; flax kernels are [in, out] (attention
kernels [embed, heads, head_dim] and [heads, head_dim, embed]). GPT-2's `Conv1D` is already [in, out].

Tokenizers come from the checkpoint: `tokenizer_from_json(path)` loads a tokenizer.json with the
Hugging Face `tokenizers` library.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping

import numpy as np

from jaxlab.nn.lm.transformer import TransformerConfig, gpt2_config, llama_config

StateDict = Mapping[str, np.ndarray]
Params = dict[str, Any]


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Reads a .safetensors file (or every *.safetensors shard of a folder) into numpy arrays."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  files = sorted(path.glob('*.safetensors')) if path.is_dir() else [path]
  if not files:
    raise FileNotFoundError(f'No .safetensors file in {path}.')
  out: dict[str, np.ndarray] = {}
  for f in files:
    out.update(load_file(str(f)))
  return out


def tokenizer_from_json(path: str | os.PathLike[str]):
  """A Hugging Face `tokenizers.Tokenizer` from a tokenizer.json file (or a folder holding one)."""
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if path.is_dir():
    path = path / 'tokenizer.json'
  return Tokenizer.from_file(str(path))


def _get(sd: StateDict, name: str, prefixes: tuple[str, ...]) -> np.ndarray:
  for p in prefixes:
    if p + name in sd:
      return np.asarray(sd[p + name], np.float32)
  raise KeyError(f'Checkpoint has no tensor {name!r} (tried prefixes {prefixes}); '
                 f'first keys: {sorted(sd)[:5]}.')


def _dense(w: np.ndarray) -> np.ndarray:
  """HF Linear weight [out, in] -> flax kernel [in, out]."""
  return np.ascontiguousarray(w.T)


# --------------------------------------------------------------------------------------------------
# Llama.
# --------------------------------------------------------------------------------------------------

def llama_config_from_hf(hf_config: Mapping[str, Any], **overrides: Any) -> TransformerConfig:
  """TransformerConfig from a Hugging Face LlamaConfig dict (config.json)."""
  heads = hf_config['num_attention_heads']
  return llama_config(**{
      'vocab_size': hf_config['vocab_size'], 'num_layers': hf_config['num_hidden_layers'],
      'embed_dim': hf_config['hidden_size'], 'num_heads': heads,
      'num_kv_heads': hf_config.get('num_key_value_heads', heads),
      'head_dim': hf_config.get('head_dim') or hf_config['hidden_size'] // heads,
      'mlp_dim': hf_config['intermediate_size'], 'norm_eps': hf_config.get('rms_norm_eps', 1e-6),
      'rope_base': float(hf_config.get('rope_theta')
                         or (hf_config.get('rope_parameters') or {}).get('rope_theta', 10000.)),
      'tie_embeddings': bool(hf_config.get('tie_word_embeddings', False)),
      'max_len': min(int(hf_config.get('max_position_embeddings', 2048)), 2048), **overrides})


def llama_params_from_hf(sd: StateDict, config: TransformerConfig) -> Params:
  """Llama / Mistral / SmolLM2 state dict (model.layers.N.self_attn.q_proj.weight, ...) -> DecoderLM params."""
  pre = ('model.', '')
  d, h, kv, hd = (config.embed_dim, config.num_heads, config.resolved_kv_heads,
                  config.resolved_head_dim)
  params: Params = {'embed': {'embedding': _get(sd, 'embed_tokens.weight', pre)},
                    'final_norm': {'scale': _get(sd, 'norm.weight', pre)}}
  for i in range(config.num_layers):
    g = lambda n: _get(sd, f'layers.{i}.{n}', pre)  # pylint: disable=cell-var-from-loop
    params[f'layers_{i}'] = {
        'attn_norm': {'scale': g('input_layernorm.weight')},
        'mlp_norm': {'scale': g('post_attention_layernorm.weight')},
        'attn': {
            'query': {'kernel': _dense(g('self_attn.q_proj.weight')).reshape(d, h, hd)},
            'key': {'kernel': _dense(g('self_attn.k_proj.weight')).reshape(d, kv, hd)},
            'value': {'kernel': _dense(g('self_attn.v_proj.weight')).reshape(d, kv, hd)},
            'out': {'kernel': _dense(g('self_attn.o_proj.weight')).reshape(h, hd, d)},
        },
        'mlp': {
            'wi_gate': {'kernel': _dense(g('mlp.gate_proj.weight'))},
            'wi_up': {'kernel': _dense(g('mlp.up_proj.weight'))},
            'wo': {'kernel': _dense(g('mlp.down_proj.weight'))},
        },
    }
  if not config.tie_embeddings:
    params['lm_head'] = {'kernel': _dense(_get(sd, 'lm_head.weight', ('',)))}
  return params


# --------------------------------------------------------------------------------------------------
# GPT-2.
# --------------------------------------------------------------------------------------------------

def gpt2_config_from_hf(hf_config: Mapping[str, Any], **overrides: Any) -> TransformerConfig:
  """TransformerConfig from a Hugging Face GPT2Config dict."""
  d = hf_config['n_embd']
  return gpt2_config(**{
      'vocab_size': hf_config['vocab_size'], 'num_layers': hf_config['n_layer'], 'embed_dim': d,
      'num_heads': hf_config['n_head'], 'mlp_dim': hf_config.get('n_inner') or 4 * d,
      'max_len': hf_config['n_positions'], 'norm_eps': hf_config.get('layer_norm_epsilon', 1e-5),
      **overrides})


def gpt2_params_from_hf(sd: StateDict, config: TransformerConfig) -> Params:
  """GPT-2 state dict (transformer.h.N.attn.c_attn.weight, ...; Conv1D [in, out]) -> DecoderLM params."""
  pre = ('transformer.', '')
  d, h, hd = config.embed_dim, config.num_heads, config.resolved_head_dim
  ln = lambda n: {'scale': _get(sd, f'{n}.weight', pre), 'bias': _get(sd, f'{n}.bias', pre)}
  params: Params = {'embed': {'embedding': _get(sd, 'wte.weight', pre)},
                    'pos_embed': {'embedding': _get(sd, 'wpe.weight', pre)},
                    'final_norm': ln('ln_f')}
  for i in range(config.num_layers):
    g = lambda n: _get(sd, f'h.{i}.{n}', pre)  # pylint: disable=cell-var-from-loop
    w_qkv, b_qkv = g('attn.c_attn.weight'), g('attn.c_attn.bias')    # [d, 3d], [3d]
    attn = {}
    for j, name in enumerate(('query', 'key', 'value')):
      attn[name] = {'kernel': w_qkv[:, j * d:(j + 1) * d].reshape(d, h, hd),
                    'bias': b_qkv[j * d:(j + 1) * d].reshape(h, hd)}
    attn['out'] = {'kernel': g('attn.c_proj.weight').reshape(h, hd, d), 'bias': g('attn.c_proj.bias')}
    params[f'layers_{i}'] = {
        'attn_norm': ln(f'h.{i}.ln_1'), 'mlp_norm': ln(f'h.{i}.ln_2'), 'attn': attn,
        'mlp': {'wi': {'kernel': g('mlp.c_fc.weight'), 'bias': g('mlp.c_fc.bias')},
                'wo': {'kernel': g('mlp.c_proj.weight'), 'bias': g('mlp.c_proj.bias')}},
    }
  return params


# --------------------------------------------------------------------------------------------------
# BERT.
# --------------------------------------------------------------------------------------------------

def bert_config_from_hf(hf_config: Mapping[str, Any]):
  """jaxlab.nn.encoders.bert.BertConfig from a Hugging Face BertConfig dict (config.json)."""
  from jaxlab.nn.encoders.bert import BertConfig  # pylint: disable=g-import-not-at-top
  if hf_config.get('hidden_act', 'gelu') != 'gelu':
    raise ValueError(f"Only hidden_act='gelu' (exact erf GELU) is supported, got {hf_config['hidden_act']!r}.")
  return BertConfig(
      vocab_size=hf_config['vocab_size'], num_layers=hf_config['num_hidden_layers'],
      embed_dim=hf_config['hidden_size'], num_heads=hf_config['num_attention_heads'],
      mlp_dim=hf_config['intermediate_size'], max_len=hf_config['max_position_embeddings'],
      type_vocab_size=hf_config.get('type_vocab_size', 2), norm_eps=hf_config.get('layer_norm_eps', 1e-12))


def load_hf_config(path: str | os.PathLike[str]) -> dict[str, Any]:
  """config.json of a Hugging Face folder (or the file itself) as a dict."""
  path = pathlib.Path(path)
  return json.loads((path / 'config.json' if path.is_dir() else path).read_text())


def bert_params_from_hf(sd: StateDict, config) -> Params:
  """BertModel state dict (embeddings.*, encoder.layer.N.*, pooler.*) -> jaxlab.nn.encoders.bert.BertEncoder params."""
  pre = ('bert.', '')
  d, h = config.embed_dim, config.num_heads
  hd = d // h
  ln = lambda n: {'scale': _get(sd, f'{n}.weight', pre), 'bias': _get(sd, f'{n}.bias', pre)}
  lin = lambda n: {'kernel': _dense(_get(sd, f'{n}.weight', pre)), 'bias': _get(sd, f'{n}.bias', pre)}
  params: Params = {
      'word_embed': {'embedding': _get(sd, 'embeddings.word_embeddings.weight', pre)},
      'pos_embed': {'embedding': _get(sd, 'embeddings.position_embeddings.weight', pre)},
      'type_embed': {'embedding': _get(sd, 'embeddings.token_type_embeddings.weight', pre)},
      'embed_norm': ln('embeddings.LayerNorm'),
  }
  for i in range(config.num_layers):
    p = f'encoder.layer.{i}.'
    attn = {}
    for name in ('query', 'key', 'value'):
      a = lin(p + f'attention.self.{name}')
      attn[name] = {'kernel': a['kernel'].reshape(d, h, hd), 'bias': a['bias'].reshape(h, hd)}
    o = lin(p + 'attention.output.dense')
    attn['out'] = {'kernel': o['kernel'].reshape(h, hd, d), 'bias': o['bias']}
    params[f'layers_{i}'] = {
        'attn': attn, 'attn_norm': ln(p + 'attention.output.LayerNorm'),
        'mlp': {'wi': lin(p + 'intermediate.dense'), 'wo': lin(p + 'output.dense')},
        'mlp_norm': ln(p + 'output.LayerNorm'),
    }
  if any(k.endswith('pooler.dense.weight') for k in sd):
    params['pooler'] = lin('pooler.dense')
  return params


# --------------------------------------------------------------------------------------------------
# Gemma 3 (text).
# --------------------------------------------------------------------------------------------------

def gemma3_params_from_hf(sd: StateDict, config: TransformerConfig) -> Params:
  """Gemma3ForCausalLM state dict (model.layers.N.pre_feedforward_layernorm.weight, ...) -> DecoderLM params.

  Hugging Face's Gemma RMSNorm multiplies by (1 + weight); jaxlab's by `scale`, so every norm
  (the four of each block, q_norm / k_norm and the final norm) gets scale = 1 + weight.
  """
  pre = ('model.language_model.', 'model.', '')
  d, h, kv, hd = (config.embed_dim, config.num_heads, config.resolved_kv_heads,
                  config.resolved_head_dim)
  norm = lambda name: {'scale': 1. + _get(sd, name, pre)}
  params: Params = {'embed': {'embedding': _get(sd, 'embed_tokens.weight', pre)},
                    'final_norm': norm('norm.weight')}
  for i in range(config.num_layers):
    g = lambda n: _get(sd, f'layers.{i}.{n}', pre)  # pylint: disable=cell-var-from-loop
    p = f'layers.{i}.'
    params[f'layers_{i}'] = {
        'attn_norm': norm(p + 'input_layernorm.weight'),
        'attn_post_norm': norm(p + 'post_attention_layernorm.weight'),
        'mlp_norm': norm(p + 'pre_feedforward_layernorm.weight'),
        'mlp_post_norm': norm(p + 'post_feedforward_layernorm.weight'),
        'attn': {
            'query': {'kernel': _dense(g('self_attn.q_proj.weight')).reshape(d, h, hd)},
            'key': {'kernel': _dense(g('self_attn.k_proj.weight')).reshape(d, kv, hd)},
            'value': {'kernel': _dense(g('self_attn.v_proj.weight')).reshape(d, kv, hd)},
            'out': {'kernel': _dense(g('self_attn.o_proj.weight')).reshape(h, hd, d)},
            'q_norm': norm(p + 'self_attn.q_norm.weight'),
            'k_norm': norm(p + 'self_attn.k_norm.weight'),
        },
        'mlp': {
            'wi_gate': {'kernel': _dense(g('mlp.gate_proj.weight'))},
            'wi_up': {'kernel': _dense(g('mlp.up_proj.weight'))},
            'wo': {'kernel': _dense(g('mlp.down_proj.weight'))},
        },
    }
  return params
