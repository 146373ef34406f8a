"""Outer (meta) objectives through the inner step, and their meta-gradients.

A task is one context c, one query q and its answer a, as arrays (right-padded, no leading axis):

    'context': [Tc] int, 'context_mask': [Tc]       c, mask 1 at predicted context tokens (jaxlab.meta.inner)
    'query':   [Tq] int                             q ⊕ a (the student sees no context)
    'prompted': [Tp] int                            c ⊕ q ⊕ a (the teacher's input)
    'q_pos', 'p_pos': [A] int                       positions in query / prompted whose logits predict a_i
    'answer': [A] int, 'answer_mask': [A]           a_i and which of the A slots are real

Objectives (per task, summed over answer tokens):
  LC  Σ_i KL(p_base(· | c ⊕ q ⊕ a_<i) ‖ p_θ'(· | q ⊕ a_<i)) — forward KL from the *frozen base* teacher
      (stop_gradient; not the moving θ) to the stepped student on q alone; no labels.
  LG  Σ_i −log p_θ'(a_i | q ⊕ a_<i) — the gold-answer oracle.

Meta-gradients of the objective at θ' = inner_update(meta) w.r.t. the meta params (`meta_grad`, mode=):
  'second_order'  jax.grad through the inner step (full second order).
  'first_order'   the inner gradient is stop-gradiented: ∂θ'/∂θ = I, so grad = ∇L_out(θ') (pulled back
                  through the rank-1 parameterisation where there is one).
  'hvp'           the exact form for SGD steps without keeping both graphs alive: with g = ∇L_out(θ'),
                  backwards over the steps v ← v − η·H_in(θ_k) v, H_in v = jvp of ∇L_in (forward-over-reverse);
                  for one step meta-grad = g − η·H_in g. Equal to 'second_order' (tested).

Tasks of a meta-batch are processed sequentially (`meta_loss`: a custom_vjp over a lax.scan whose backward
pass recomputes each task's meta-gradient and accumulates it), so memory holds one task's θ' and cotangents,
not one per task as vmap would.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.meta.inner import MetaModel

Array = jax.Array
Params = Any
OBJECTIVES = ('lc', 'lg')
MODES = ('second_order', 'first_order', 'hvp')


def _at(logits: Array, pos: Array) -> Array:
  """[T, V] logits gathered at [A] positions -> [A, V] float32 log-probs."""
  return jax.nn.log_softmax(jnp.take(logits, pos, axis=0).astype(jnp.float32), axis=-1)


def teacher_logprobs(mm: MetaModel, base: Params, task: dict[str, Array]) -> Array:
  """[A, V] log-probs of the frozen base prompted with c ⊕ q at the answer positions (stop_gradient)."""
  return _at(mm.base_logits(base, task['prompted']), task['p_pos'])


def outer_loss(mm: MetaModel, state: Params, base: Params, task: dict[str, Array], objective: str = 'lc'
               ) -> Array:
  """LC or LG of the model at `state` (θ') on the query alone; a scalar summed over answer tokens."""
  student = _at(mm.logits(state, base, task['query']), task['q_pos'])
  w = task['answer_mask'].astype(jnp.float32)
  if objective == 'lg':
    return -jnp.sum(jnp.take_along_axis(student, task['answer'][:, None], axis=-1)[:, 0] * w)
  if objective != 'lc':
    raise ValueError(f'Unknown objective {objective!r}; expected one of {OBJECTIVES}.')
  teacher = jax.lax.stop_gradient(teacher_logprobs(mm, base, task))
  kl = jnp.sum(jnp.exp(teacher) * (teacher - student), axis=-1)
  return jnp.sum(kl * w)


def context_of(task: dict[str, Array]) -> dict[str, Array]:
  return {'tokens': task['context'], 'mask': task['context_mask']}


def task_loss(mm: MetaModel, meta: Params, base: Params, task: dict[str, Array], objective: str = 'lc'
              ) -> Array:
  """Outer loss after the inner update on the task's context (differentiable to second order)."""
  return outer_loss(mm, mm.inner_update(meta, base, context_of(task)), base, task, objective)


def _hvp(f, x, v):
  """H_f(x) v by forward-over-reverse (jvp of grad)."""
  return jax.jvp(jax.grad(f), (x,), (v,))[1]


def meta_grad(mm: MetaModel, meta: Params, base: Params, task: dict[str, Array], *, objective: str = 'lc',
              mode: str = 'second_order') -> tuple[Array, Params]:
  """(outer loss, d loss / d meta) for one task, by `mode` (see the module docstring)."""
  if mode not in MODES:
    raise ValueError(f'Unknown mode {mode!r}; expected one of {MODES}.')
  if mode == 'second_order':
    return jax.value_and_grad(lambda m: task_loss(mm, m, base, task, objective))(meta)
  eta, steps, ctx = mm.config.eta, mm.config.steps, context_of(task)
  state0, pullback = jax.vjp(lambda m: mm.state(m, base), meta)
  states = [state0]
  for _ in range(steps):  # forward: keep only the k + 1 states, no graphs
    states.append(mm.inner_step(states[-1], base, ctx, eta))
  loss, v = jax.value_and_grad(lambda s: outer_loss(mm, s, base, task, objective))(states[-1])
  if mode == 'hvp':
    in_loss = lambda s: mm.context_loss(s, base, ctx)
    for s in reversed(states[:-1]):  # backward: v ← (I − η H_in(θ_k)) v
      v = jax.tree.map(lambda a, b: a - jnp.asarray(eta, a.dtype) * b, v, _hvp(in_loss, s, v))
  return loss, pullback(v)[0]


def _zero_cotangent(x):
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.inexact):
    return jnp.zeros_like(x)
  return np.zeros(x.shape, jax.dtypes.float0)


def meta_loss(mm: MetaModel, meta: Params, base: Params, tasks: dict[str, Array], *, objective: str = 'lc',
              mode: str = 'second_order') -> Array:
  """Mean outer loss over the tasks' leading axis [N, ...]; its gradient w.r.t. `meta` follows `mode`.

  Forward and backward scan over the tasks one at a time (memory of one task). `base` and `tasks` are
  treated as constants: their cotangents are zero.
  """

  def forward(meta, base, tasks):
    def body(acc, task):
      return acc + task_loss(mm, meta, base, task, objective), None
    total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), tasks)
    return total / jax.tree.leaves(tasks)[0].shape[0]

  @jax.custom_vjp
  def f(meta, base, tasks):
    return forward(meta, base, tasks)

  def fwd(meta, base, tasks):
    return forward(meta, base, tasks), (meta, base, tasks)

  def bwd(res, ct):
    meta, base, tasks = res
    n = jax.tree.leaves(tasks)[0].shape[0]

    def body(acc, task):
      _, g = meta_grad(mm, meta, base, task, objective=objective, mode=mode)
      return jax.tree.map(jnp.add, acc, g), None
    zero = jax.tree.map(jnp.zeros_like, meta)
    total, _ = jax.lax.scan(body, zero, tasks)
    g = jax.tree.map(lambda x: x * (ct / n).astype(x.dtype), total)
    return g, jax.tree.map(_zero_cotangent, base), jax.tree.map(_zero_cotangent, tasks)

  f.defvjp(fwd, bwd)
  return f(meta, base, tasks)


def make_loss_fn(mm: MetaModel, *, objective: str = 'lc', mode: str = 'second_order'):
  """A `jaxlab.train.Task.loss_fn(meta, batch, rng, base)`: batch holds [B, ...] tasks; base is frozen."""

  def loss_fn(meta, batch, rng, base):
    del rng
    loss = meta_loss(mm, meta, base, batch, objective=objective, mode=mode)
    return loss, {'meta_loss': loss}

  return loss_fn


def _answer_logprobs(mm: MetaModel, state: Params, base: Params, task: dict[str, Array], prompted: bool) -> Array:
  """Log-probs at the answer positions: `state` on q alone, or the frozen base on c ⊕ q (prompted=True)."""
  if prompted:
    return teacher_logprobs(mm, base, task)
  return _at(mm.logits(state, base, task['query']), task['q_pos'])


def answer_logprob(mm: MetaModel, state: Params, base: Params, task: dict[str, Array], *, prompted: bool = False
                   ) -> Array:
  """Σ_i log p(a_i | ...) at `state` on q alone, or of the frozen base on c ⊕ q (prompted=True)."""
  lp = _answer_logprobs(mm, state, base, task, prompted)
  w = task['answer_mask'].astype(jnp.float32)
  return jnp.sum(jnp.take_along_axis(lp, task['answer'][:, None], axis=-1)[:, 0] * w)


def answer_correct(mm: MetaModel, state: Params, base: Params, task: dict[str, Array], *, prompted: bool = False
                   ) -> Array:
  """1.0 when every real answer token is the argmax (teacher-forced) at `state` on q, or of the prompted base."""
  lp = _answer_logprobs(mm, state, base, task, prompted)
  hit = (jnp.argmax(lp, axis=-1) == task['answer']) | (task['answer_mask'] == 0)
  return jnp.all(hit).astype(jnp.float32)
