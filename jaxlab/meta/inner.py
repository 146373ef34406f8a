"""The inner step of "Can gradient descent simulate prompting?" (Zhang, Choshen, Andreas; arXiv 2506.20989).

One (or a few) plain SGD steps on the next-token NLL of a context c, summed over its tokens:

    θ' = θ − η ∇θ L(c; θ)          L(c; θ) = Σ_t mask_t · −log p_θ(c_t | c_<t)

`MetaModel` says which parameters the outer (meta) loop trains and which the inner step moves:

  subset='all'    meta params = the full params θ (initialised as a copy of the base); the inner step moves θ.
  subset='rank1'  meta params = one rank-1 factor pair per matrix, θ = θ0 + u vᵀ over the frozen base θ0 (the
                  paper's rank-1 variant: the meta-learned change is rank 1 per matrix); the inner step is
                  full rank on θ (every kernel and embedding moves; norms too).
  subset='lora'   meta params = LoRA adapters (jaxlab.nn.lora) over the frozen base; the inner step moves the
                  adapters only ("LoRA inner and outer").

`state(meta, base)` is what the inner step moves (θ for 'all' / 'rank1', the adapters for 'lora'),
`logits(state, base, tokens)` runs the model on it, and `inner_update(meta, base, context)` returns the moved
state. Every function is pure and differentiable (second order: jax.grad through `inner_update`).

Shapes: a context is ``{'tokens': [Tc] int32, 'mask': [Tc]}`` (right-padded; mask 1 at tokens that are
predicted, i.e. real tokens after the first); a leading batch axis is allowed and summed over.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.nn import lora as lora_lib

Array = jax.Array
Params = Any
SUBSETS = ('all', 'rank1', 'lora')


@dataclasses.dataclass(frozen=True)
class InnerConfig:
  """The inner SGD step and the parameter subset it moves."""
  eta: float = 1e-3                     # Inner SGD learning rate (the paper: 1e-3 on a summed NLL).
  steps: int = 1                        # Number of sequential inner SGD steps on the same context.
  subset: str = 'all'                   # 'all' | 'rank1' | 'lora' (see the module docstring).
  lora: lora_lib.LoraConfig = dataclasses.field(default_factory=lora_lib.LoraConfig)  # subset='lora' only.
  rank1_init_std: float = 1e-2          # subset='rank1': std of u (v starts at zero, so θ = θ0 at init).
  first_order: bool = False             # Stop the gradient through the inner gradient (first-order meta).

  def __post_init__(self):
    if self.subset not in SUBSETS:
      raise ValueError(f'Unknown subset {self.subset!r}; expected one of {SUBSETS}.')
    if self.steps < 0:
      raise ValueError(f'steps must be >= 0, got {self.steps}.')
    if self.eta < 0:
      raise ValueError(f'eta must be >= 0, got {self.eta}.')


def sequence_nll(logits: Array, tokens: Array, mask: Array) -> Array:
  """Σ_t mask_t · −log p(tokens_t | tokens_<t); logits [..., T, V] predict the next token.

  Args:
    logits: [..., T, V] float32.
    tokens: [..., T] int.
    mask: [..., T]; mask[..., 0] is ignored (nothing predicts the first token).

  Returns:
    scalar: the sum over every axis.
  """
  logp = jax.nn.log_softmax(logits[..., :-1, :].astype(jnp.float32), axis=-1)
  tgt = jnp.take_along_axis(logp, tokens[..., 1:, None], axis=-1)[..., 0]
  return -jnp.sum(tgt * mask[..., 1:].astype(jnp.float32))


def _matrix_split(path_keys: list[str], shape: tuple[int, ...]) -> int:
  """Number of leading axes forming the matrix's input side (HeadsOut 'out' kernels: 2)."""
  return 2 if len(path_keys) >= 2 and path_keys[-2] == 'out' and len(shape) == 3 else 1


def _is_matrix(keys: list[str], leaf) -> bool:
  return keys[-1] in ('kernel', 'embedding') and leaf.ndim >= 2


def _keys(path) -> list[str]:
  return [str(getattr(k, 'key', getattr(k, 'name', k))) for k in path]


@dataclasses.dataclass(frozen=True)
class MetaModel:
  """A DecoderLM-like flax model (``apply({'params': p}, tokens) -> logits``) with a meta-parameterisation."""
  model: nn.Module
  config: InnerConfig = InnerConfig()

  # ---- meta parameters --------------------------------------------------------------------------------
  def init_meta(self, rng: Array, base: Params) -> Params:
    """Fresh meta params: a copy of base ('all'), rank-1 factors ('rank1') or LoRA adapters ('lora')."""
    base = nn.unbox(base)
    if self.config.subset == 'all':
      return jax.tree.map(jnp.array, base)
    if self.config.subset == 'lora':
      return nn.unbox(lora_lib.init_adapters(rng, base, self.config.lora))
    flat = jax.tree_util.tree_flatten_with_path(base)[0]
    out = {}
    for i, (path, leaf) in enumerate(flat):
      keys = _keys(path)
      if not _is_matrix(keys, leaf):
        continue
      n_in = _matrix_split(keys, leaf.shape)
      node = out
      for k in keys[:-1]:
        node = node.setdefault(k, {})
      node[keys[-1]] = {
          'u': self.config.rank1_init_std * jax.random.normal(jax.random.fold_in(rng, i), leaf.shape[:n_in],
                                                              leaf.dtype),
          'v': jnp.zeros(leaf.shape[n_in:], leaf.dtype)}
    return out

  def state(self, meta: Params, base: Params) -> Params:
    """What the inner step moves: θ ('all': meta; 'rank1': θ0 + u vᵀ) or the adapters ('lora': meta)."""
    if self.config.subset != 'rank1':
      return meta
    base = nn.unbox(base)

    def add(path, leaf):
      node = meta
      for k in _keys(path):
        if not isinstance(node, dict) or k not in node:
          return leaf
        node = node[k]
      u, v = node['u'], node['v']
      return leaf + jnp.tensordot(u, v, axes=0).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(add, base)

  # ---- forward ------------------------------------------------------------------------------------------
  def logits(self, state: Params, base: Params, tokens: Array) -> Array:
    """[..., T] tokens -> [..., T, V] logits of the model at `state` (leading axes flattened into batch)."""
    lead = tokens.shape[:-1]
    flat = tokens.reshape((-1, tokens.shape[-1]))
    if self.config.subset == 'lora':
      out = lora_lib.apply(self.model, {'params': nn.unbox(base)}, state, flat, config=self.config.lora)
    else:
      out = self.model.apply({'params': state}, flat)
    return out.reshape(lead + out.shape[-2:])

  def base_logits(self, base: Params, tokens: Array) -> Array:
    """The frozen base model's logits (the LC teacher), with stop_gradient."""
    lead = tokens.shape[:-1]
    flat = tokens.reshape((-1, tokens.shape[-1]))
    out = self.model.apply({'params': jax.lax.stop_gradient(nn.unbox(base))}, flat)
    return jax.lax.stop_gradient(out.reshape(lead + out.shape[-2:]))

  def context_loss(self, state: Params, base: Params, context: dict[str, Array]) -> Array:
    """L(c; state): summed next-token NLL of the context."""
    return sequence_nll(self.logits(state, base, context['tokens']), context['tokens'], context['mask'])

  # ---- the inner step -----------------------------------------------------------------------------------
  def inner_step(self, state: Params, base: Params, context: dict[str, Array], eta: float | Array) -> Params:
    """One SGD step state − η ∇ L(c; state) (gradient stopped when config.first_order)."""
    g = jax.grad(self.context_loss)(state, base, context)
    if self.config.first_order:
      g = jax.lax.stop_gradient(g)
    return jax.tree.map(lambda p, d: p - jnp.asarray(eta, p.dtype) * d.astype(p.dtype), state, g)

  def inner_update(self, meta: Params, base: Params, context: dict[str, Array], *,
                   eta: float | Array | None = None, steps: int | None = None) -> Params:
    """θ' after `steps` (default config.steps) SGD steps of size `eta` (default config.eta) on the context."""
    eta = self.config.eta if eta is None else eta
    steps = self.config.steps if steps is None else steps
    state = self.state(meta, base)
    for _ in range(steps):
      state = self.inner_step(state, base, context, eta)
    return state


def inner_update(params: Params, context: dict[str, Array], *, model: nn.Module, eta: float = 1e-3,
                 steps: int = 1) -> Params:
  """θ' = θ − η ∇θ L(c; θ), `steps` times, for plain params of `model` (subset='all', second order)."""
  return MetaModel(model, InnerConfig(eta=eta, steps=steps)).inner_update(params, params, context)
