"""Training LMs to explain their own computations (B. Li et al., arXiv 2511.08579): the pieces two systems share.

* **Labels by activation patching** (`chunk_patch`): the paper's activation-patching task, as its code
  (dataloaders/act_patch.py) builds it: v = the counterfactual prompt's hidden state at one position, averaged
  over a chunk of layers; v REPLACES the output of every layer of the chunk at the original position (the
  prompt says "added"; the code replaces); the label is the argmax next token of the patched run against the
  unpatched one (`label_text`: "The output would remain unchanged from <<<x>>>." / "The most likely output
  would change to <<<y>>>.").
* **Continuous tokens** (`encode_example`, `place_vectors`): the explainer prompt holds ``{begin}{rep}{end}``
  and the input embedding at ``rep`` is replaced by the (projected) target vector through
  ``DecoderLM(inputs_embeds=, embeds_mask=)``. The loss covers the answer tokens only: ``rep`` (the paper's
  label -100), ``begin``/``end`` and the rest of the prompt carry none (`explainer_loss` reads `loss_mask`).
* **Metrics** (`normalise`, `predicted_class`, `score`): the paper's evaluator (causal_exact_match_eval.py):
  exact match after normalisation (strip, squeeze spaces, drop a final '.'), changed/unchanged macro-F1 from
  the two phrases, and exact match per class.

A row is a dict of numpy arrays: tokens [T] int32, targets [T] int32 (tokens shifted left), loss_mask [T]
float32, rep_pos [] int32 and vector [d_target] float32; batches stack them.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Callable, Sequence

import numpy as np

import jax
import jax.numpy as jnp

from jaxlab.interp import hooks as H
from jaxlab.nn import lora
from jaxlab.nn.lm.transformer import DecoderLM

Array = jax.Array

UNCHANGED = 'The output would remain unchanged from <<<{}>>>.'
CHANGED = 'The most likely output would change to <<<{}>>>.'
_UNCHANGED_RE = re.compile(r'remain unchanged from <<<')
_CHANGED_RE = re.compile(r'change to <<<')

__all__ = ['ContinuousIds', 'chunk_patch', 'label_text', 'encode_example', 'stack', 'place_vectors',
           'explainer_loss', 'normalise', 'predicted_class', 'score', 'random_orthogonal']


@dataclasses.dataclass(frozen=True)
class ContinuousIds:
  """Token ids of the three continuous-token markers (reserved ids the tokenizer never emits for text)."""
  begin: int
  rep: int
  end: int


# --------------------------------------------------------------------------------------------- labels

@functools.partial(jax.jit, static_argnames=('model', 'chunks'))
def _chunk_patch(model: DecoderLM, params, orig, cf, orig_pos, cf_pos, chunks: tuple[tuple[int, ...], ...]):
  sites = lambda layers: tuple(f'layers_{l}/resid_post' for l in layers)  # noqa: E731
  every = tuple(sorted({l for c in chunks for l in c}))
  rows = jnp.arange(orig.shape[0])
  top = lambda lg: jnp.argmax(lg[:, -1], axis=-1).astype(jnp.int32)  # noqa: E731
  logits_cf, cap = H.run(model, {'params': params}, cf, hooks=H.capture(*sites(every)), last_only=True)
  logits_o = model.apply({'params': params}, orig, last_only=True)
  vs, tops = [], []
  for layers in chunks:
    v = jnp.mean(jnp.stack([cap[s][rows, cf_pos] for s in sites(layers)]), axis=0)           # [b, embed]
    patch = H.merge(*[H.replace(s, v[:, None], orig_pos[:, None], index=True) for s in sites(layers)])
    logits_p, _ = H.run(model, {'params': params}, orig, hooks=patch, last_only=True)
    vs.append(v)
    tops.append(top(logits_p))
  return jnp.stack(vs), top(logits_o), jnp.stack(tops), top(logits_cf)


def chunk_patch(model: DecoderLM, params, orig_tokens, cf_tokens, orig_pos, cf_pos,
                chunks: Sequence[Sequence[int]]):
  """For each chunk, patches the chunk-mean counterfactual state into every layer of the chunk; returns numpy
  (v [n_chunks, b, embed], original argmax [b], patched argmax [n_chunks, b], counterfactual argmax [b]).

  Args:
    orig_tokens, cf_tokens: [b, t] int32 (same length; left-pad or align them yourself).
    orig_pos, cf_pos: [b] int32 positions (the subject token in each).
    chunks: layer lists, e.g. [range(0, 8), range(8, 16)]: 'layers_{l}/resid_post' of each layer is captured
      on the counterfactual run (one forward for all chunks) and, chunk by chunk, replaced at orig_pos on the
      original run by the mean over the chunk's layers.
  """
  out = _chunk_patch(model, params, jnp.asarray(orig_tokens, jnp.int32), jnp.asarray(cf_tokens, jnp.int32),
                     jnp.asarray(orig_pos, jnp.int32), jnp.asarray(cf_pos, jnp.int32),
                     tuple(tuple(int(l) for l in c) for c in chunks))
  return tuple(np.asarray(x) for x in out)


def label_text(original: str, patched: str) -> str:
  """The paper's two answer sentences: unchanged (same argmax) or changed (to the patched argmax)."""
  return UNCHANGED.format(original) if original == patched else CHANGED.format(patched)


# ----------------------------------------------------------------------------------- continuous tokens

def encode_example(prefix: Sequence[int], suffix: Sequence[int], answer: Sequence[int], vector: np.ndarray,
                   ids: ContinuousIds, length: int, pad_id: int) -> dict[str, np.ndarray] | None:
  """prefix + [begin, rep, end] + suffix + answer, right-padded to `length`; None if it does not fit.

  The loss mask is 1 exactly where the next token is an answer token (targets = tokens shifted left),
  so the continuous token, its markers and the prompt carry no loss.
  """
  prompt = list(prefix) + [ids.begin, ids.rep, ids.end] + list(suffix)
  seq = prompt + list(answer)
  if len(seq) > length:
    return None
  tokens = np.full((length,), pad_id, np.int32)
  tokens[:len(seq)] = seq
  targets = np.full((length,), pad_id, np.int32)
  targets[:len(seq) - 1] = seq[1:]
  mask = np.zeros((length,), np.float32)
  mask[len(prompt) - 1:len(seq) - 1] = 1.
  return {'tokens': tokens, 'targets': targets, 'loss_mask': mask, 'rep_pos': np.int32(len(prefix) + 1),
          'prompt_len': np.int32(len(prompt)), 'vector': np.asarray(vector, np.float32)}


def stack(rows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def place_vectors(vectors: Array, rep_pos: Array, length: int) -> tuple[Array, Array]:
  """(inputs_embeds [b, length, d], embeds_mask [b, length]) with vectors [b, d] at rep_pos [b]."""
  b, d = vectors.shape
  mask = jnp.arange(length)[None, :] == rep_pos[:, None]
  return jnp.where(mask[..., None], vectors[:, None, :], jnp.zeros((b, length, d), vectors.dtype)), mask


def explainer_loss(model: DecoderLM, lcfg: lora.LoraConfig,
                   project: Callable[[Any, dict[str, Array]], Array] | None = None):
  """Trainer loss ``(trainable, batch, rng, base) -> (loss, metrics)``.

  trainable = {'lora': adapters[, 'proj': projector params]}; the vector is ``project(proj, batch)`` when
  `project` is given (cross-model explainer), else used raw (widths match: the paper's no-projector case).
  Per-sample CE averaged over its answer tokens, then over the batch (the paper's per-sample mean).
  """
  def loss_fn(trainable, batch, rng, base):
    vec = batch['vector']
    if project is not None:
      vec = project(trainable['proj'], batch)
    emb, emask = place_vectors(vec.astype(jnp.float32), batch['rep_pos'], batch['tokens'].shape[1])
    logits = lora.apply(model, {'params': base}, trainable['lora'], batch['tokens'], config=lcfg,
                        train=True, rngs={'dropout': rng}, inputs_embeds=emb, embeds_mask=emask)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, batch['targets'][..., None], axis=-1)[..., 0]
    m = batch['loss_mask']
    per = jnp.sum(nll * m, -1) / jnp.maximum(jnp.sum(m, -1), 1.)
    acc = jnp.sum((jnp.argmax(logits, -1) == batch['targets']) * m) / jnp.maximum(jnp.sum(m), 1.)
    return jnp.mean(per), {'token_acc': acc}
  return loss_fn


def random_orthogonal(d: int, seed: int) -> np.ndarray:
  """A fixed Haar-random orthogonal [d, d] matrix (QR of a Gaussian with the sign fix)."""
  g = np.random.default_rng(seed).standard_normal((d, d))
  q, r = np.linalg.qr(g)
  return (q * np.sign(np.diag(r))[None, :]).astype(np.float32)


# ------------------------------------------------------------------------------------------ metrics

def normalise(text: str) -> str:
  """The paper's normalisation: strip, squeeze whitespace, drop one final '.'."""
  t = re.sub(r'\s+', ' ', text.strip())
  return t[:-1] if t.endswith('.') else t


def predicted_class(text: str) -> str:
  """'unchanged', 'changed' or 'other' from the answer sentence."""
  if _UNCHANGED_RE.search(text):
    return 'unchanged'
  if _CHANGED_RE.search(text):
    return 'changed'
  return 'other'


def score(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
  """Exact match (normalised), changed/unchanged macro-F1 (sklearn; 'other' counts as wrong for both) and
  exact match per reference class."""
  from sklearn.metrics import f1_score  # pylint: disable=import-outside-toplevel
  em = np.array([normalise(p) == normalise(r) for p, r in zip(predictions, references)], np.float64)
  pc = [predicted_class(p) for p in predictions]
  rc = [predicted_class(r) for r in references]
  out = {'exact_match': float(em.mean()) if len(em) else float('nan'),
         'macro_f1': float(f1_score(rc, pc, labels=['changed', 'unchanged'], average='macro', zero_division=0)),
         'n': len(em)}
  for c in ('changed', 'unchanged'):
    sel = np.array([r == c for r in rc])
    out[f'exact_match_{c}'] = float(em[sel].mean()) if sel.any() else float('nan')
    out[f'class_acc_{c}'] = float(np.mean([p == c for p, s in zip(pc, sel) if s])) if sel.any() else float('nan')
    out[f'n_{c}'] = int(sel.sum())
  return out
