"""Difference-of-means steering vectors and the hooks that add them (multimodal-saes steering/).

    v = normalise(mean(acts of the target class) − mean(acts of the source class))   at layer L
    hooks = steer_hooks('layers_{L}/resid_pre', v, k, where=image_mask)            # add k·v there
    logits, _ = hooks_lib.run(model, variables, tokens, hooks=hooks, inputs_embeds=...)

The reference adds k·v to the output of layer L − 1 (= the input of layer L, 'layers_{L}/resid_pre' here) at
the image positions, k in linspace(0, 30, 20), and measures efficacy (probability of the target answer) and
damage (the increase of caption NLL); those measurements belong to the experiment, the vector and the hook
live here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.interp import hooks as hooks_lib

Array = jax.Array


def diff_means(source: np.ndarray, target: np.ndarray, normalise: bool = True) -> np.ndarray:
  """Unit (or raw) direction [d] from the source-class mean to the target-class mean.

  Args:
    source: [n_source, d] activations of the source class (e.g. mean-pooled over image positions).
    target: [n_target, d] activations of the target class.
    normalise: divide by the norm (the reference's v̂).
  """
  source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
  if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
    raise ValueError(f'diff_means needs [n, d] arrays of one d, got {source.shape} and {target.shape}.')
  if not len(source) or not len(target):
    raise ValueError('diff_means needs at least one example of each class.')
  v = target.mean(0) - source.mean(0)
  n = np.linalg.norm(v)
  if normalise:
    if n < 1e-12:
      raise ValueError('the class means coincide: no steering direction.')
    v = v / n
  return v.astype(np.float32)


def steer_hooks(site: str, vector: Array, k: float | Array, where: Array | None = None) -> dict:
  """An 'add' hook of k·vector at `site` where `where` ([batch, length] bool) selects (None: everywhere)."""
  return hooks_lib.add(site, jnp.asarray(k, jnp.float32) * jnp.asarray(vector, jnp.float32), where=where)
