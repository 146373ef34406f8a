"""A small convolutional image classifier with one linear head per named target (the object detector and
frozen backbone of SAIA's benchmark, experiments/saia).

    images [batch, H, W, 3] in [0, 1] -> (x − 0.5) / 0.5
      -> for each width w in `widths`: Conv 3×3 stride 2 → GELU     (H / 2^len(widths) at the end)
      -> Conv 3×3 stride 1 (widths[-1]) → GELU -> global mean pool -> Dense(feature_dim) → GELU = the pooled feature [batch, feature_dim]
      -> one Dense head per target: {name: logits [batch, classes]}

`__call__(images, return_features=True)` also returns the pooled feature (what linear probes / the trained
SAIA heads read). Parameter paths: conv_i (i < len(widths)), conv_out, feature, head_<name>. Every
convolution downsamples but the last: cheap enough to train in minutes on 2 loaded CPU cores at 32 px.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class SmallCNN(nn.Module):
  heads: Mapping[str, int]             # target name -> number of classes
  widths: Sequence[int] = (32, 64, 128)  # channels of the stride-2 convolutions
  feature_dim: int = 128

  @nn.compact
  def __call__(self, images: Array, return_features: bool = False):
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f'SmallCNN expects images [batch, H, W, 3], got {images.shape}.')
    x = (images.astype(jnp.float32) - 0.5) / 0.5
    for i, w in enumerate(self.widths):
      x = nn.gelu(nn.Conv(w, (3, 3), strides=(2, 2), name=f'conv_{i}')(x))
    x = nn.gelu(nn.Conv(self.widths[-1], (3, 3), name='conv_out')(x))
    feat = nn.gelu(nn.Dense(self.feature_dim, name='feature')(x.mean(axis=(1, 2))))
    logits = {k: nn.Dense(n, name=f'head_{k}')(feat).astype(jnp.float32) for k, n in self.heads.items()}
    return (logits, feat) if return_features else logits
