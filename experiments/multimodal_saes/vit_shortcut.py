r"""The ViT's held-out-combination shape failure, measured (README "ViT shape on held-out combinations").

Trains the miniature's ViT classifier (the default config's architecture and optimiser: AdamW 1e-3, warm-up
30, cosine, weight decay 0.05, batch 64) on scenes of the training shape × colour combinations only, and
prints, every steps/6 updates, the shape accuracy on 256 held-out-combination scenes and on 256 fresh scenes
of the training combinations, then the held-out shape confusion matrix:

  python -m experiments.multimodal_saes.vit_shortcut 1200 300     # the pilot's budget
  python -m experiments.multimodal_saes.vit_shortcut 8000 3000    # more scenes, 10× the steps

A plain optax loop (no trainer, no checkpoints): a diagnostic, not a stage of the experiment.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.multimodal_saes import llava
from experiments.multimodal_saes.configs import default as default_config
from jaxlab.data import scenes as S


def main(argv):
  if len(argv) != 3 or not all(a.isdigit() and int(a) > 0 for a in argv[1:]):
    raise SystemExit("usage: python -m experiments.multimodal_saes.vit_shortcut NUM_TRAIN_SCENES STEPS")
  ntrain, steps = int(argv[1]), int(argv[2])
  c = default_config.get_config("")
  held = S.held_out_combinations(4, 0)
  kw = dict(textures=("solid",), max_count=2)
  tr = S.sample_scenes(ntrain, 0, exclude=held, **kw)
  te = S.sample_scenes(256, 1, include=held, **kw)
  iid = S.sample_scenes(256, 5, exclude=held, **kw)
  x_tr, x_te, x_iid = S.render_batch(tr, 32, 0), S.render_batch(te, 32, 1), S.render_batch(iid, 32, 5)
  lab = lambda scs: {k: np.array([S.labels(s)[k] for s in scs]) for k in S.FACTORS}  # noqa: E731
  y_tr, y_te, y_iid = lab(tr), lab(te), lab(iid)
  model = llava.vit_classifier(c)
  loss_fn = llava.vit_loss(model)
  params = model.init(jax.random.PRNGKey(0), x_tr[:1])["params"]
  opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 30, steps), weight_decay=0.05)
  state = opt.init(params)

  @jax.jit
  def step(p, s, b):
    (l, _), g = jax.value_and_grad(loss_fn, has_aux=True)(p, b, None)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, l

  pred = jax.jit(lambda p, x: {k: jnp.argmax(v, -1) for k, v in model.apply({"params": p}, x).items()})
  rng, t0 = np.random.default_rng(0), time.time()
  print("held out:", held, flush=True)
  for i in range(steps):
    idx = rng.integers(0, ntrain, 64)
    params, state, loss = step(params, state, {"images": x_tr[idx], **{k: v[idx] for k, v in y_tr.items()}})
    if (i + 1) % max(steps // 6, 1) == 0 or i + 1 == steps:
      ph, pi = pred(params, x_te), pred(params, x_iid)
      print(f"step {i + 1} loss {float(loss):.3f} | shape: held-out {np.mean(ph['shape'] == y_te['shape']):.3f}, "
            f"training combinations {np.mean(pi['shape'] == y_iid['shape']):.3f} | colour held-out "
            f"{np.mean(ph['colour'] == y_te['colour']):.3f} | {time.time() - t0:.0f} s", flush=True)
  conf = np.zeros((len(S.SHAPES),) * 2, int)
  for a, b in zip(y_te["shape"], pred(params, x_te)["shape"]):
    conf[a, b] += 1
  print("held-out shape confusion (rows truth, columns prediction):", S.SHAPES)
  print(conf)


if __name__ == "__main__":
  main(sys.argv)
