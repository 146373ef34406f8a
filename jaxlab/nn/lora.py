"""LoRA: low-rank adapters on the linear projections of any jaxlab model, kept apart from the base weights.

    y = base(x) + (dropout(x) @ A) @ B · alpha / rank        A [fan_in, rank] random, B [rank, fan_out] zero

Design (functional, by interception). The adapters are their own pytree, shaped like the module tree of the
model: ``adapters['layers_0']['attn']['query'] = {'lora_a': A, 'lora_b': B}``. `active(adapters, config)` is
a context manager that installs a flax `nn.intercept_methods` interceptor; while it is active, every call of
a projection module (`nn.Dense` and its `FlatDense` subclass, `HeadsIn`, `HeadsOut`) whose module path has an
entry in `adapters` returns its base output plus the low-rank term. Nothing in the models changes, so

* the base weights are never copied, reshaped or re-keyed: ``model.apply({'params': base}, ...)`` without the
  context is the base model, which is the reference policy of preference tuning (`apply(..., adapters=None)`
  says the same); the same arrays serve policy and reference;
* the trainer's state holds only the adapters (``Task.frozen_params`` carries the base weights as a separate,
  non-donated argument of the jitted step), so the optimiser state and the checkpoints scale with the adapters;
* it works wherever the projections run: under jit (the adapters are arguments of the jitted function and
  enter the context inside it), with the per-block `nn.remat` of `TransformerConfig.remat` (module paths are
  unchanged by the lifted transform), on the KV-cache decode path, and for `BertEncoder` and `VarcViT`, whose
  projections are the same modules.

A param-level design (adapters stored next to each kernel inside the params tree) was rejected: flax would
carry them silently through every existing caller, and a jit cache keyed on the params structure cannot tell
whether an interceptor was active when it traced. Here the adapters are explicit arguments, and
`merge(params, adapters, config)` folds them into the kernels for export and for fast decoding with the
unchanged `jaxlab.nn.lm.generate`.

Use (a LoRA fine-tune through the one trainer; the reference policy is the same call with adapters=None):

    config = lora.LoraConfig(rank=8, alpha=16., dropout=0.05, targets=('q', 'k', 'v', 'o'))
    def loss_fn(adapters, batch, rng, base):            # base = Task.frozen_params, never trained
      logits = lora.apply(model, {'params': base}, adapters, batch['tokens'], config=config, train=True,
                          rngs={'dropout': rng})
      ...
    Task(init_params=lambda rng: lora.init_adapters(rng, boxed_base, config), loss_fn=loss_fn, ...,
         frozen_params=boxed_base, frozen_id='smollm2-135m-instruct')
    merged = lora.merge(base, state.params, config)     # export / jaxlab.nn.lm.generate at full speed

Kernel layouts (x contracts its last ``n_in`` axes with the first ``n_in`` kernel axes):
  Dense / FlatDense  kernel [in, out]                 A [in, r]              B [r, out]
  HeadsIn            kernel [embed, heads, head_dim]  A [embed, r]           B [r, heads, head_dim]
  HeadsOut ('out')   kernel [heads, head_dim, embed]  A [heads, head_dim, r] B [r, embed]
so ``n_in = A.ndim - 1`` and the merged kernel is ``kernel + scale · tensordot(A, B, 1)``.

Initialisation follows Hugging Face PEFT's default (``init_lora_weights=True``): A is Kaiming-uniform with
``a = sqrt(5)`` over its fan-in, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as torch's nn.Linear default and
the reference microsoft/LoRA code; ``init='gaussian'`` is PEFT's alternative N(0, (1/rank)²). B is zero, so a
fresh adapter leaves the model's outputs exactly unchanged. Dropout (PEFT's ``lora_dropout``) acts on the
adapter's input only, with the 'dropout' rng of the apply call, when ``active(..., train=True)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn.attention import HeadsIn, HeadsOut

Array = jax.Array

# Short names of the projections -> module names in jaxlab's models (DecoderLM, BertEncoder, VarcViT).
PROJECTIONS: dict[str, tuple[str, ...]] = {
    'q': ('query',), 'k': ('key',), 'v': ('value',), 'o': ('out',),
    'gate': ('wi_gate',), 'up': ('wi_up', 'wi'), 'down': ('wo',),
}
ALL_PROJECTIONS = tuple(PROJECTIONS)
_MODULE_TYPES = (nn.Dense, HeadsIn, HeadsOut)
_INITS = ('kaiming', 'gaussian')


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Which projections get adapters and how they are shaped and scaled."""
  rank: int = 8                               # r: inner width of every adapter.
  alpha: float = 16.                          # Scaling numerator: the update is (x A B) · alpha / rank.
  dropout: float = 0.                         # Dropout on the adapter input when training (PEFT lora_dropout).
  targets: tuple[str, ...] = ALL_PROJECTIONS  # Short names (PROJECTIONS) or exact module names ('lm_head').
  init: str = 'kaiming'                       # A's init: 'kaiming' (PEFT default) or 'gaussian'.

  def __post_init__(self):
    if self.rank <= 0:
      raise ValueError(f'rank must be positive, got {self.rank}.')
    if not 0. <= self.dropout < 1.:
      raise ValueError(f'dropout must be in [0, 1), got {self.dropout}.')
    if self.init not in _INITS:
      raise ValueError(f'Unknown init {self.init!r}; expected one of {_INITS}.')
    if not self.targets:
      raise ValueError('targets is empty: name at least one projection.')

  @property
  def scale(self) -> float:
    return self.alpha / self.rank

  @property
  def module_names(self) -> frozenset[str]:
    return frozenset(n for t in self.targets for n in PROJECTIONS.get(t, (t,)))


def _key_str(k) -> str:
  return str(getattr(k, 'key', getattr(k, 'name', k)))


def _input_axes(module_name: str, kernel_shape: tuple[int, ...]) -> int:
  """How many leading kernel axes x contracts with: 2 for HeadsOut ('out', rank 3), else 1."""
  return 2 if module_name == 'out' and len(kernel_shape) == 3 else 1


def init_adapters(rng: Array, params: Any, config: LoraConfig) -> dict[str, Any]:
  """Fresh adapters for every targeted projection kernel of `params`.

  Args:
    rng: PRNG key; adapter i (in the params tree's flattening order) uses fold_in(rng, i).
    params: the model's 'params' collection (plain arrays, ShapeDtypeStructs or nn.Partitioned boxes; boxed
      kernels give boxed adapters whose logical axes are the kernel's, with None for the rank axis).
    config: the adapter config.

  Returns:
    Nested dict {module path...: {'lora_a': A, 'lora_b': B}} (float32, the kernel's dtype).

  Raises:
    ValueError when no kernel matches `config.targets`.
  """
  names, out, i = config.module_names, {}, 0
  leaves = jax.tree_util.tree_flatten_with_path(params, is_leaf=lambda x: isinstance(x, nn.Partitioned))[0]
  for path, leaf in leaves:
    keys = [_key_str(k) for k in path]
    if len(keys) < 2 or keys[-1] != 'kernel' or keys[-2] not in names:
      continue
    boxed = isinstance(leaf, nn.Partitioned)
    value = leaf.value if boxed else leaf
    shape, dtype = tuple(value.shape), value.dtype
    n_in = _input_axes(keys[-2], shape)
    fan_in = int(np.prod(shape[:n_in]))
    ka = jax.random.fold_in(rng, i)
    a_shape, b_shape = shape[:n_in] + (config.rank,), (config.rank,) + shape[n_in:]
    if config.init == 'kaiming':   # torch kaiming_uniform_(a=sqrt(5)) over fan_in: bound 1/sqrt(fan_in)
      bound = 1. / math.sqrt(fan_in)
      a = jax.random.uniform(ka, a_shape, dtype, -bound, bound)
    else:                          # PEFT 'gaussian': std 1/rank
      a = jax.random.normal(ka, a_shape, dtype) / config.rank
    b = jnp.zeros(b_shape, dtype)
    if boxed:  # same box class (LogicallyPartitioned keeps its rules), names with None for the rank axis
      axes = tuple(leaf.names)
      a = leaf.replace(value=a, names=axes[:n_in] + (None,))
      b = leaf.replace(value=b, names=(None,) + axes[n_in:])
    node = out
    for k in keys[:-2]:
      node = node.setdefault(k, {})
    node[keys[-2]] = {'lora_a': a, 'lora_b': b}
    i += 1
  if not i:
    raise ValueError(f'No projection kernel matches targets {config.targets} (module names '
                     f'{sorted(names)}).')
  return out


def _lookup(adapters: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Array] | None:
  node = adapters
  for k in path:
    if not isinstance(node, Mapping) or k not in node:
      return None
    node = node[k]
  return node if isinstance(node, Mapping) and 'lora_a' in node else None


def low_rank_term(x: Array, a: Array, b: Array, scale: float) -> Array:
  """(x @ A) @ B · scale with x's last A.ndim - 1 axes contracted, as rank-2 GEMMs.

  Args:
    x: [..., *in_dims]; a: [*in_dims, rank]; b: [rank, *out_dims].

  Returns:
    [..., *out_dims] in x's dtype.
  """
  n_in = a.ndim - 1
  lead, fan_in, rank = x.shape[:x.ndim - n_in], int(np.prod(a.shape[:-1])), a.shape[-1]
  h = x.reshape(-1, fan_in) @ a.reshape(fan_in, rank).astype(x.dtype)
  d = (h @ b.reshape(rank, -1).astype(x.dtype)) * jnp.asarray(scale, x.dtype)
  return d.reshape(lead + b.shape[1:])


@contextlib.contextmanager
def active(adapters: Mapping[str, Any] | None, config: LoraConfig, *, train: bool = False) -> Iterator[None]:
  """Context in which the projections of any flax model apply `adapters` (None: no-op, the base model).

  Enter it inside the jitted function that receives the adapters as an argument. With ``train=True`` and
  ``config.dropout > 0`` the adapter inputs are dropped out with the apply call's 'dropout' rng.
  """
  if adapters is None:
    yield
    return
  adapters = nn.unbox(adapters)
  busy: set[int] = set()  # FlatDense.__call__ calls Dense.__call__ on the same module: apply once

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if (context.method_name != '__call__' or not isinstance(module, _MODULE_TYPES) or id(module) in busy
        or module.scope is None):
      return next_fun(*args, **kwargs)
    entry = _lookup(adapters, tuple(module.path))
    if entry is None:
      return next_fun(*args, **kwargs)
    busy.add(id(module))
    try:
      y = next_fun(*args, **kwargs)
    finally:
      busy.discard(id(module))
    x = args[0] if args else kwargs['inputs' if 'inputs' in kwargs else 'x']
    x = x.astype(y.dtype)
    if train and config.dropout > 0:
      keep = 1. - config.dropout
      mask = jax.random.bernoulli(module.make_rng('dropout'), keep, x.shape)
      x = jnp.where(mask, x / keep, 0.).astype(x.dtype)
    return y + low_rank_term(x, entry['lora_a'], entry['lora_b'], config.scale).astype(y.dtype)

  with nn.intercept_methods(interceptor):
    yield


def apply(model: nn.Module, variables: Mapping[str, Any], adapters: Mapping[str, Any] | None, *args,
          config: LoraConfig, train: bool = False, **kwargs):
  """``model.apply(variables, *args, **kwargs)`` with the adapters active; adapters=None is the base model."""
  with active(adapters, config, train=train):
    return model.apply(variables, *args, **kwargs)


def merge(params: Any, adapters: Mapping[str, Any], config: LoraConfig) -> Any:
  """Base params with each adapted kernel replaced by kernel + scale · A B (float32 product).

  The result is a plain (unboxed) params tree for `model.apply` without any adapter: export, or fast
  decoding through `jaxlab.nn.lm.generate`. The input trees are not modified.
  """
  params, adapters = nn.unbox(params), nn.unbox(adapters)

  def walk(p, a):
    if not isinstance(a, Mapping):
      return p
    if 'lora_a' in a:
      kernel = p['kernel']
      la, lb = a['lora_a'], a['lora_b']
      fan_in, rank = int(np.prod(la.shape[:-1])), la.shape[-1]
      delta = (la.reshape(fan_in, rank).astype(jnp.float32) @ lb.reshape(rank, -1).astype(jnp.float32))
      return {**p, 'kernel': (kernel.astype(jnp.float32) + config.scale * delta.reshape(kernel.shape)
                              ).astype(kernel.dtype)}
    missing = set(a) - set(p)
    if missing:
      raise ValueError(f'adapters name modules that params lack: {sorted(missing)}')
    return {**p, **{k: walk(p[k], v) for k, v in a.items()}}

  return walk(params, adapters)


def count(tree: Any) -> tuple[int, int]:
  """(number of array elements, bytes) in a pytree, e.g. adapters vs base params vs optimiser state."""
  leaves = [x for x in jax.tree.leaves(nn.unbox(tree)) if hasattr(x, 'shape')]
  return (sum(int(np.prod(x.shape)) for x in leaves),
          sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in leaves))
