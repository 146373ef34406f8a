"""A plain-PyTorch GLA language model: the reference side of the GLA training-throughput benchmark.

It is jaxlab's `DecoderLM(llama_config(mixer='gla'))` written in eager PyTorch, layer for layer (pre-norm
RMSNorm blocks, SwiGLU MLP, tied embeddings, no positions: the mixer is causal by construction), with
the GLA mixer of jaxlab.nn.psm.mixers.GLA and the same chunkwise algorithm as
jaxlab.nn.psm.scans.gated_linear_attention(form='chunkwise'): inside a chunk of c tokens, log-space
cumulative gates B and decays exp(B_i - B_j) for i >= j only ([b, h, c, c, dk]), between chunks a
[dk, dv] state per head carried by a Python loop. `load_jax_params` copies a jaxlab parameter tree in,
so the two implementations can be checked against each other (tests/psm/test_psm_torch_gla.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def gla_chunkwise(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_g: torch.Tensor,
                  chunk_size: int) -> torch.Tensor:
  """q, k, log_g [b, t, h, dk], v [b, t, h, dv] -> o [b, t, h, dv] (zero initial state)."""
  b, t, h, dk = q.shape
  dv = v.shape[-1]
  c = min(chunk_size, t)
  n = -(-t // c)
  pad = n * c - t
  if pad:  # Zero q, k, v and log-gate 0: the padding leaves the state unchanged.
    q, k, v, log_g = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v, log_g))
  chunk = lambda x: x.reshape(b, n, c, h, x.shape[-1]).permute(1, 0, 3, 2, 4)  # [n, b, h, c, .]
  qc, kc, vc = chunk(q), chunk(k), chunk(v)
  cum = chunk(log_g).cumsum(dim=3)
  causal = torch.tril(torch.ones(c, c, dtype=torch.bool))[None, None, :, :, None]
  s = q.new_zeros(b, h, dk, dv)
  outs = []
  for i in range(n):
    qk, kk, vk, bk = qc[i], kc[i], vc[i], cum[i]
    diff = (bk[:, :, :, None, :] - bk[:, :, None, :, :]).masked_fill(~causal, float('-inf'))
    scores = torch.einsum('bhik,bhjk,bhijk->bhij', qk, kk, diff.exp())
    inter = (qk * bk.exp()) @ s
    last = bk[:, :, -1:, :]
    s = last[:, :, 0, :].exp()[..., None] * s + (kk * (last - bk).exp()).transpose(-1, -2) @ vk
    outs.append(scores @ vk + inter)
  o = torch.stack(outs)                                              # [n, b, h, c, dv]
  return o.permute(1, 0, 3, 2, 4).reshape(b, n * c, h, dv)[:, :t]


class GLA(nn.Module):
  """jaxlab.nn.psm.mixers.GLA: q, k, v, low-rank gate g = σ(W2 W1 x + b)^(1/16), per-head RMSNorm, out."""

  def __init__(self, d: int, heads: int, head_dim: int, chunk_size: int, gate_rank: int = 16):
    super().__init__()
    self.h, self.hd, self.chunk_size = heads, head_dim, chunk_size
    self.query = nn.Linear(d, heads * head_dim, bias=False)
    self.key = nn.Linear(d, heads * head_dim, bias=False)
    self.value = nn.Linear(d, heads * head_dim, bias=False)
    self.gate_low = nn.Linear(d, gate_rank, bias=False)
    self.gate = nn.Linear(gate_rank, heads * head_dim, bias=True)
    self.head_norm = nn.RMSNorm(head_dim, eps=1e-6)
    self.out = nn.Linear(heads * head_dim, d, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:  # [b, t, d] -> [b, t, d]
    b, t, _ = x.shape
    split = lambda y: y.view(b, t, self.h, self.hd)
    q, k, v = split(self.query(x)), split(self.key(x)) * self.hd ** -0.5, split(self.value(x))
    log_g = split(F.logsigmoid(self.gate(self.gate_low(x))) / 16.)
    o = self.head_norm(gla_chunkwise(q, k, v, log_g, self.chunk_size))
    return self.out(o.reshape(b, t, self.h * self.hd))


class Block(nn.Module):
  def __init__(self, cfg: Any):
    super().__init__()
    d = cfg.embed_dim
    self.attn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
    self.attn = GLA(d, cfg.num_heads, cfg.resolved_head_dim, cfg.scan_chunk_size)
    self.mlp_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
    self.wi_gate = nn.Linear(d, cfg.resolved_mlp_dim, bias=False)
    self.wi_up = nn.Linear(d, cfg.resolved_mlp_dim, bias=False)
    self.wo = nn.Linear(cfg.resolved_mlp_dim, d, bias=False)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = x + self.attn(self.attn_norm(x))
    y = self.mlp_norm(x)
    return x + self.wo(F.silu(self.wi_gate(y)) * self.wi_up(y))


class GLALM(nn.Module):
  """Tied-embedding GLA LM; `cfg` is the jaxlab TransformerConfig (mixer='gla', norm 'rms', swiglu)."""

  def __init__(self, cfg: Any):
    super().__init__()
    if cfg.mixer != 'gla' or cfg.norm != 'rms' or cfg.mlp != 'swiglu' or not cfg.tie_embeddings:
      raise ValueError('torch_gla.GLALM mirrors llama_config(mixer="gla") with tied embeddings only.')
    self.embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
    self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.num_layers)])
    self.final_norm = nn.RMSNorm(cfg.embed_dim, eps=cfg.norm_eps)

  def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # [b, t] -> [b, t, vocab]
    x = self.embed(tokens)
    for layer in self.layers:
      x = layer(x)
    return self.final_norm(x) @ self.embed.weight.T


def load_jax_params(model: GLALM, params: Any) -> None:
  """Copies a jaxlab DecoderLM(mixer='gla') parameter tree (Dense kernels [in, out]) into `model`."""
  arr = lambda x: torch.from_numpy(np.array(x, np.float32))
  lin = lambda layer, p: (layer.weight.copy_(arr(p['kernel']).T),
                          layer.bias.copy_(arr(p['bias'])) if layer.bias is not None else None)
  with torch.no_grad():
    model.embed.weight.copy_(arr(params['embed']['embedding']))
    model.final_norm.weight.copy_(arr(params['final_norm']['scale']))
    for i, layer in enumerate(model.layers):
      p = params[f'layers_{i}']
      layer.attn_norm.weight.copy_(arr(p['attn_norm']['scale']))
      layer.mlp_norm.weight.copy_(arr(p['mlp_norm']['scale']))
      for name in ('query', 'key', 'value', 'gate_low', 'gate', 'out'):
        lin(getattr(layer.attn, name), p['attn'][name])
      layer.attn.head_norm.weight.copy_(arr(p['attn']['head_norm']['scale']))
      for name in ('wi_gate', 'wi_up', 'wo'):
        lin(getattr(layer, name), p['mlp'][name])
