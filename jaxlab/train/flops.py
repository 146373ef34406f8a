"""Analytic model FLOPs (the numerator of MFU) for the jaxlab decoder LM.

Convention (PaLM, appendix B): a matmul of [m, k] by [k, n] costs 2·m·k·n FLOPs; training costs three
forward passes (forward + backward w.r.t. activations and weights); attention's QKᵀ and AV add
2·2·T·d_attn per token per layer in the forward pass (full T×T, not halved for causality). Norms,
softmax and elementwise work are not counted. XLA's cost analysis counts more (it sees everything);
use this for MFU so numbers compare across frameworks.
"""

from __future__ import annotations

from jaxlab.nn.lm.transformer import TransformerConfig


def lm_matmul_params(cfg: TransformerConfig) -> int:
  """Parameters that take part in a matmul per token (layers + output head; not the input lookup)."""
  d, hd, h, kv = cfg.embed_dim, cfg.resolved_head_dim, cfg.num_heads, cfg.resolved_kv_heads
  attn = d * h * hd + 2 * d * kv * hd + h * hd * d
  mlp = (3 if cfg.mlp == "swiglu" else 2) * d * cfg.resolved_mlp_dim
  head = d * cfg.vocab_size
  return cfg.num_layers * (attn + mlp) + head


def lm_forward_flops_per_token(cfg: TransformerConfig, seq_len: int) -> float:
  attn_scores = 2 * 2 * seq_len * cfg.num_heads * cfg.resolved_head_dim * cfg.num_layers
  return 2.0 * lm_matmul_params(cfg) + attn_scores


def lm_train_flops_per_token(cfg: TransformerConfig, seq_len: int) -> float:
  """Model FLOPs of one training token (forward + backward)."""
  return 3.0 * lm_forward_flops_per_token(cfg, seq_len)
