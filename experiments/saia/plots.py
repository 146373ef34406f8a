"""experiments/saia figures: accuracy / predictiveness vs rounds, and one model's exemplars, HIGH and LOW sets."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def _plt():
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  return plt


def rounds(path: str, summary: dict, num_rounds: int) -> None:
  """Exact accuracy and predictiveness vs rounds, wired and trained panels, both agents."""
  plt = _plt()
  fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
  r = np.arange(1, num_rounds + 1)
  for j, kind in enumerate(('wired', 'trained')):
    s = summary.get(kind, {})
    for name, style in (('non_reflective', 's--'), ('reflective', 'o-')):
      if name not in s:
        continue
      axes[2 * j].plot(r, s[name]['exact_accuracy'], style, label=name.replace('_', '-'))
      axes[2 * j + 1].plot(r, s[name]['predictiveness'], style, label=name.replace('_', '-'))
    if 'truth_predictiveness' in s:
      axes[2 * j + 1].axhline(s['truth_predictiveness'], color='gray', lw=0.8, label='true label')
    axes[2 * j].set_title(f'{kind} ({s.get("num_models", 0)} models): exact accuracy', fontsize=9)
    axes[2 * j + 1].set_title(f'{kind}: predictiveness (HIGH − LOW)', fontsize=9)
    axes[2 * j].set_ylim(0, 1)
  for ax in axes:
    ax.set_xlabel('round')
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def grid(path: str, title: str, exemplars, ex_scores, self_eval, scale: int = 3) -> None:
  """Three rows: exemplars, the final self-evaluation's HIGH set and its LOW set, each image with its score."""
  rows = [('exemplars', exemplars.pixels, ex_scores)]
  if self_eval is not None:
    rows += [('HIGH: ' + self_eval.high_prompts[0], self_eval.high_images.pixels, self_eval.high_scores),
             ('LOW', self_eval.low_images.pixels, self_eval.low_scores)]
  n = max(len(r[1]) for r in rows)
  s = exemplars.pixels.shape[1] * scale
  head, label = 16, 12
  canvas = Image.new('RGB', (n * (s + 4) + 4, head + len(rows) * (s + label + 16)), (255, 255, 255))
  d = ImageDraw.Draw(canvas)
  d.text((4, 2), title, fill=(0, 0, 0))
  for i, (name, px, sc) in enumerate(rows):
    y = head + i * (s + label + 16)
    d.text((4, y), name, fill=(0, 0, 0))
    for j, (im, v) in enumerate(zip(px, sc)):
      tile = Image.fromarray((np.asarray(im) * 255).astype(np.uint8)).resize((s, s), Image.Resampling.NEAREST)
      canvas.paste(tile, (4 + j * (s + 4), y + label))
      d.text((4 + j * (s + 4), y + label + s + 1), f'{v:.2f}', fill=(0, 0, 0))
  canvas.save(path)
