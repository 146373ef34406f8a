"""Per-layer analyses of the miniature: the cross-modal shared-feature fraction (jaxlab's definition), probes
and steering efficacy/damage, and the two plots."""

from __future__ import annotations

import numpy as np

from jaxlab.interp import probes as probes_lib


def shared_fraction(img_acts: np.ndarray, txt_acts: np.ndarray, lo: float = 0.1, hi: float = 0.9) -> dict:
  """jaxlab's cross-modal sharing metric (multimodal-saes has none; the paper says "quite disjoint, more
  shared in deeper layers").

  For each live feature i (firing on at least one image or text token):
    s_i = mean activation on image tokens / (that + mean activation on caption-only text tokens);
  shared when lo ≤ s_i ≤ hi. Returns the fraction of live features shared, the image-only (s > hi) and
  text-only (s < lo) fractions, and the number of live features.

  Args:
    img_acts: [n_img_tokens, F] SAE codes at image positions.
    txt_acts: [n_txt_tokens, F] SAE codes at the tokens of caption-only sequences.
  """
  a, t = np.asarray(img_acts, np.float64).mean(0), np.asarray(txt_acts, np.float64).mean(0)
  live = (a + t) > 0
  s = np.where(live, a / np.where(live, a + t, 1.0), np.nan)[live]
  n = int(live.sum())
  if not n:
    return {'shared': 0.0, 'image_only': 0.0, 'text_only': 0.0, 'live': 0}
  return {'shared': float(np.mean((s >= lo) & (s <= hi))), 'image_only': float(np.mean(s > hi)),
          'text_only': float(np.mean(s < lo)), 'live': n}


def probe_layer(train_x, train_y, test_x, test_y, num_classes, cfg) -> dict:
  """Dense logistic probe: held-out accuracy and a label-shuffled control."""
  probe = probes_lib.fit_logistic(train_x, train_y, num_classes, cfg)
  shuffled = probes_lib.fit_logistic(train_x, np.random.default_rng(0).permutation(train_y), num_classes, cfg)
  return {'acc': probes_lib.accuracy(probe, test_x, test_y), 'train_acc': probes_lib.accuracy(probe, train_x, train_y),
          'shuffled_control_acc': probes_lib.accuracy(shuffled, test_x, test_y)}


def sparse_probe_layer(train_f, train_y, test_f, test_y, num_classes, cfg) -> dict:
  probe = probes_lib.fit_sparse(train_f, train_y, num_classes, cfg)
  return {'acc': probes_lib.accuracy(probe, test_f, test_y), 'num_open_gates': probe['num_open']}


def plot_sharing(path: str, layers, shared, image_only, text_only, title: str, shared_corpus=None) -> None:
  """Fractions of live features vs depth; `shared_corpus` (optional): the shared fraction against corpus text."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(5, 3.4))
  ax.plot(layers, shared, 'o-', label='shared (0.1 ≤ s ≤ 0.9)')
  ax.plot(layers, image_only, 's--', label='image-only (s > 0.9)')
  ax.plot(layers, text_only, '^--', label='text-only (s < 0.1)')
  if shared_corpus is not None:
    ax.plot(layers, shared_corpus, 'D-', label='shared, text = corpus (fortunes)')
  ax.set_xlabel('SmolLM2 layer (SAE on resid_pre)')
  ax.set_ylabel('fraction of live SAE features')
  ax.set_ylim(0, 1)
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_steering(path: str, ks, efficacy, damage, title: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(5, 3.4))
  ax.plot(ks, efficacy, 'o-', color='C0', label='efficacy P(target)')
  ax.set_xlabel('k (multiples of ‖μ_target − μ_source‖)')
  ax.set_ylabel('P(target word)', color='C0')
  ax.set_ylim(0, 1)
  ax2 = ax.twinx()
  ax2.plot(ks, damage, 's--', color='C3', label='damage ΔNLL')
  ax2.set_ylabel('caption NLL increase (nats/token)', color='C3')
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
