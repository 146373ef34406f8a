"""transformers (PyTorch) reference models built from a jaxlab config and a Hugging Face-layout state dict.

`transformers_llama` (LlamaForCausalLM, e.g. SmolLM2) and `transformers_gemma3` (Gemma3ForCausalLM, text
only, eager attention) serve the cross-check tests and the decode benchmark.

For cross-checks and benchmarks only: imports torch and transformers when called (the `test` / `bench`
extras), never at import time.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from jaxlab.nn.lm.transformer import TransformerConfig


def transformers_llama(cfg: TransformerConfig, state_dict: Mapping[str, np.ndarray]):
  """transformers' LlamaForCausalLM (fp32, eval mode) holding `state_dict` (e.g.
  `jaxlab.io.gguf.llama_state_dict_from_gguf`); a tied head may be absent from the dict."""
  import transformers  # pylint: disable=import-outside-toplevel
  from transformers.initialization import no_init_weights  # pylint: disable=import-outside-toplevel
  hf_cfg = transformers.LlamaConfig(
      vocab_size=cfg.vocab_size, hidden_size=cfg.embed_dim, intermediate_size=cfg.mlp_dim,
      num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.resolved_head_dim,
      rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_base, tie_word_embeddings=cfg.tie_embeddings,
      max_position_embeddings=cfg.max_len, attention_bias=False, mlp_bias=False)
  hf_cfg.rope_parameters = {'rope_type': 'default', 'rope_theta': cfg.rope_base}
  with no_init_weights():  # every weight is loaded below; skip the random init of all parameters.
    model = transformers.LlamaForCausalLM(hf_cfg).eval().float()
  return _load(model, state_dict)


def transformers_gemma3(cfg: TransformerConfig, state_dict: Mapping[str, np.ndarray] | None = None):
  """transformers' Gemma3ForCausalLM (text only, eager attention, fp32, eval mode) with cfg's shape.

  `state_dict` in Hugging Face layout (e.g. `jaxlab.io.gguf.gemma3_state_dict_from_gguf`; the tied head
  may be absent); None gives transformers' own random init under torch seed 0 (small test models).
  """
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel
  from transformers.initialization import no_init_weights  # pylint: disable=import-outside-toplevel
  layer_types = ['sliding_attention' if cfg.is_local_layer(i) else 'full_attention'
                 for i in range(cfg.num_layers)]
  hf_cfg = transformers.Gemma3TextConfig(
      vocab_size=cfg.vocab_size, hidden_size=cfg.embed_dim, intermediate_size=cfg.mlp_dim,
      num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
      num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.resolved_head_dim, rms_norm_eps=cfg.norm_eps,
      sliding_window=cfg.sliding_window, layer_types=layer_types,
      query_pre_attn_scalar=round(cfg.query_scale ** -2), max_position_embeddings=32768,
      final_logit_softcapping=None, attn_logit_softcapping=None, tie_word_embeddings=True,
      hidden_activation='gelu_pytorch_tanh', attn_implementation='eager',
      rope_parameters={'full_attention': {'rope_type': 'default', 'rope_theta': cfg.rope_base},
                       'sliding_attention': {'rope_type': 'default', 'rope_theta': cfg.rope_local_base}})
  if state_dict is None:
    torch.manual_seed(0)
    return transformers.Gemma3ForCausalLM(hf_cfg).eval().float()
  with no_init_weights():  # skip the random init of every parameter; all are loaded below.
    model = transformers.Gemma3ForCausalLM(hf_cfg).eval().float()
  return _load(model, state_dict)


def _load(model, state_dict: Mapping[str, np.ndarray]):
  """Loads a Hugging Face layout state dict (the tied head may be absent) into `model` and ties the head."""
  import torch  # pylint: disable=import-outside-toplevel
  missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()},
                                              strict=False)
  if unexpected or set(missing) - {'lm_head.weight'}:
    raise ValueError(f'state dict does not fit {type(model).__name__}: missing {missing}, unexpected {unexpected}')
  model.tie_weights()
  return model
