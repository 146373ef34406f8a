"""The LLaVA-style miniature: an RGB ViT pretrained on rendered scenes, a 2-layer MLP projector into frozen
SmolLM2-135M through continuous tokens, trained on captioning (LLaVA stage 1: only the projector learns).

Sequence layout (one fixed length, so one compilation serves every batch):

    "Image:" <img_1> ... <img_N> "\\nCaption:" " a small red circle on a black background, at the top." <eos> <pad>...
     prefix   image positions      middle      caption tokens (the loss / the NLL)

At the N image positions the input embedding is the projector's output for the ViT's N patch tokens (the CLS
token is not passed, as LLaVA passes patch features only); the ids there are ignored. A caption-only
sequence is the caption tokens alone (the multimodal-saes "caption-only pass").
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlab.data import scenes as scenes_lib
from jaxlab.nn.vision import rgb_vit

Array = jax.Array
FACTOR_HEADS = {k: len(v) for k, v in scenes_lib.FACTORS.items()}


class Projector(nn.Module):
  """LLaVA-1.5's projector: Linear → GELU → Linear, ViT width → LM width."""
  out_dim: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = nn.gelu(nn.Dense(self.out_dim, name='fc1')(x), approximate=False)
    return nn.Dense(self.out_dim, name='fc2')(x)


@dataclasses.dataclass(frozen=True)
class Layout:
  """Token layout of image+caption and caption-only sequences."""
  prefix: tuple[int, ...]
  middle: tuple[int, ...]
  num_image: int
  caption_len: int            # caption tokens incl. eos, padded
  eos: int

  @property
  def image_start(self) -> int:
    return len(self.prefix)

  @property
  def caption_start(self) -> int:
    return len(self.prefix) + self.num_image + len(self.middle)

  @property
  def length(self) -> int:
    return self.caption_start + self.caption_len

  def image_mask(self, batch: int) -> np.ndarray:
    m = np.zeros((batch, self.length), bool)
    m[:, self.image_start:self.image_start + self.num_image] = True
    return m


def make_layout(tok, num_image: int, caption_len: int, eos: int) -> Layout:
  return Layout(tuple(tok.encode('Image:').ids), tuple(tok.encode('\nCaption:').ids), num_image, caption_len, eos)


def encode_captions(tok, layout: Layout, captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """Caption ids [n, caption_len] (eos appended, eos-padded) and their mask [n, caption_len] (eos counted)."""
  ids = np.full((len(captions), layout.caption_len), layout.eos, np.int32)
  mask = np.zeros((len(captions), layout.caption_len), np.float32)
  for i, c in enumerate(captions):
    t = tok.encode(' ' + c).ids + [layout.eos]
    if len(t) > layout.caption_len:
      raise ValueError(f'caption {c!r} has {len(t)} tokens with eos; config.caption_len={layout.caption_len}.')
    ids[i, :len(t)], mask[i, :len(t)] = t, 1.0
  return ids, mask


def image_sequences(layout: Layout, caption_ids: np.ndarray, caption_mask: np.ndarray) -> dict[str, np.ndarray]:
  """tokens [n, L], targets [n, L] (next token), loss_mask [n, L] (1 where the target is a caption token)."""
  n = len(caption_ids)
  head = np.asarray(layout.prefix + (0,) * layout.num_image + layout.middle, np.int32)
  tokens = np.concatenate([np.broadcast_to(head, (n, len(head))), caption_ids], 1)
  targets = np.concatenate([tokens[:, 1:], np.full((n, 1), layout.eos, np.int32)], 1)
  loss_mask = np.zeros(tokens.shape, np.float32)
  loss_mask[:, layout.caption_start - 1:layout.length - 1] = caption_mask   # predict caption token j at j − 1
  return {'tokens': tokens, 'targets': targets, 'loss_mask': loss_mask}


def vit_config(config) -> rgb_vit.RgbViTConfig:
  v = config.vit
  return rgb_vit.RgbViTConfig(image_size=int(config.image_size), patch=int(v.patch), embed_dim=int(v.embed_dim),
                              num_layers=int(v.num_layers), num_heads=int(v.num_heads), mlp_dim=int(v.mlp_dim))


def vit_classifier(config) -> rgb_vit.RgbViTClassifier:
  return rgb_vit.RgbViTClassifier(vit_config(config), heads=FACTOR_HEADS)


def vit_loss(model: rgb_vit.RgbViTClassifier):
  """(params, batch, rng) -> (Σ over factors of the mean CE, accuracies): supervised ViT pretraining."""
  def loss_fn(params, batch, rng):
    del rng
    logits = model.apply({'params': params}, batch['images'])
    total, aux = 0.0, {}
    for k, lg in logits.items():
      total = total + optax.softmax_cross_entropy_with_integer_labels(lg, batch[k]).mean()
      aux[f'acc_{k}'] = jnp.mean(jnp.argmax(lg, -1) == batch[k])
    return total, aux
  return loss_fn


def image_embeds(vit_cfg: rgb_vit.RgbViTConfig, vit_params, proj: Projector, proj_params, images: Array) -> Array:
  """[batch, H, W, 3] -> projected patch tokens [batch, num_patches, lm_embed]."""
  tokens = rgb_vit.RgbViT(vit_cfg).apply({'params': vit_params}, images)
  return proj.apply({'params': proj_params}, tokens[:, int(vit_cfg.cls_token):])


def full_embeds(layout: Layout, img: Array, batch: int, d: int) -> tuple[Array, Array]:
  """inputs_embeds [batch, L, d] (image embeds at the image positions) and embeds_mask [batch, L]."""
  pad_l = jnp.zeros((batch, layout.image_start, d), img.dtype)
  pad_r = jnp.zeros((batch, layout.length - layout.image_start - layout.num_image, d), img.dtype)
  return jnp.concatenate([pad_l, img, pad_r], 1), jnp.asarray(layout.image_mask(batch))


def caption_nll(logits: Array, targets: Array, loss_mask: Array) -> tuple[Array, Array]:
  """(Σ masked NLL, Σ mask) of next-token targets."""
  nll = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), targets[..., None], -1)[..., 0]
  return jnp.sum(nll * loss_mask), jnp.sum(loss_mask)


def attribute_accuracy(generated: list[str], truth: list[scenes_lib.Scene]) -> dict[str, float]:
  """Per factor: fraction of greedy captions whose first mention of a value of that factor is the right one
  (whole words; shape plurals parsed; count = the first word: a/an, two, three; a caption that names no value
  of a factor counts as wrong)."""
  tables = {'shape': {s: (s, s + ('es' if s.endswith('s') else 's')) for s in scenes_lib.SHAPES},
            'colour': {c: (c,) for c in scenes_lib.COLOURS}, 'size': {s: (s,) for s in scenes_lib.SIZES},
            'background': {b: (b,) for b in scenes_lib.BACKGROUNDS}}
  counts = {'a': 1, 'an': 1, 'two': 2, 'three': 3}
  right = {k: 0 for k in list(tables) + ['count']}
  for text, sc in zip(generated, truth):
    toks = [w.strip('.,;:!?') for w in text.lower().split()]
    for factor, table in tables.items():
      lookup = {form: value for value, forms in table.items() for form in forms}
      first = next((lookup[w] for w in toks if w in lookup), None)
      right[factor] += first == getattr(sc, factor)
    right['count'] += bool(toks) and counts.get(toks[0]) == sc.count
  return {k: v / max(len(truth), 1) for k, v in right.items()}
