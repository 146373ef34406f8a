"""A plain-PyTorch Llama-style LM (RMSNorm, RoPE, SwiGLU, GQA, tied embeddings): the benchmark's
reference side. Idiomatic eager PyTorch: F.scaled_dot_product_attention with is_causal and enable_gqa."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rope_tables(seq: int, head_dim: int, base: float):
  inv = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
  ang = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
  ang = torch.cat([ang, ang], dim=-1)
  return ang.cos(), ang.sin()


def apply_rope(x, cos, sin):  # x [b, h, t, d]
  half = x.shape[-1] // 2
  rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
  return x * cos + rot * sin


class Block(nn.Module):
  def __init__(self, cfg):
    super().__init__()
    d, h, kv, hd = cfg.embed_dim, cfg.num_heads, cfg.resolved_kv_heads, cfg.resolved_head_dim
    self.h, self.kv, self.hd = h, kv, hd
    self.attn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
    self.q = nn.Linear(d, h * hd, bias=False)
    self.k = nn.Linear(d, kv * hd, bias=False)
    self.v = nn.Linear(d, kv * hd, bias=False)
    self.o = nn.Linear(h * hd, d, bias=False)
    self.mlp_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
    self.gate = nn.Linear(d, cfg.resolved_mlp_dim, bias=False)
    self.up = nn.Linear(d, cfg.resolved_mlp_dim, bias=False)
    self.down = nn.Linear(cfg.resolved_mlp_dim, d, bias=False)

  def forward(self, x, cos, sin):
    b, t, _ = x.shape
    y = self.attn_norm(x)
    q = self.q(y).view(b, t, self.h, self.hd).transpose(1, 2)
    k = self.k(y).view(b, t, self.kv, self.hd).transpose(1, 2)
    v = self.v(y).view(b, t, self.kv, self.hd).transpose(1, 2)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    x = x + self.o(a.transpose(1, 2).reshape(b, t, self.h * self.hd))
    y = self.mlp_norm(x)
    return x + self.down(F.silu(self.gate(y)) * self.up(y))


class LlamaLM(nn.Module):
  def __init__(self, cfg, seq_len: int):
    super().__init__()
    self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
    self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.num_layers)])
    self.norm = nn.RMSNorm(cfg.embed_dim, eps=cfg.norm_eps)
    cos, sin = rope_tables(seq_len, cfg.resolved_head_dim, cfg.rope_base)
    self.register_buffer("cos", cos, persistent=False)
    self.register_buffer("sin", sin, persistent=False)

  def forward(self, tokens):  # [b, t] -> [b, t, vocab]
    x = self.embed(tokens)
    t = tokens.shape[1]
    for layer in self.layers:
      x = layer(x, self.cos[:t], self.sin[:t])
    return self.norm(x) @ self.embed.weight.T
