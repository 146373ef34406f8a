r"""Trains ELF (or the MDLM baseline) on MiniLM WordPiece windows of a corpus, samples and scores the samples.

  python -m experiments.elf.main --config=experiments/elf/configs/default.py --workdir=workdirs/elf_x
  python -m experiments.elf.main --config=experiments/elf/configs/default.py:mdlm --workdir=workdirs/mdlm

Steps: data (windows, compact vocabulary, cached frozen-MiniLM latents: experiments/elf/data.py) → model
and loss (jaxlab.nn.diffusion.elf / elf_flow, or jaxlab.nn.diffusion.mdlm) → the jaxlab trainer (Muon, EMA, checkpoints with
exact resume; rerunning the same command resumes; a finished run is recorded in workdir/run.json and
not run again) → `config.sample.num_samples` samples from the EMA
weights → generative perplexity and entropy under the evaluator LMs of `config.eval`
(experiments/elf/evaluators.py). Writes workdir/results.json and workdir/samples.txt.
Sampling sweeps on a trained run: experiments/elf/sweep.py.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import json
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, logging

from experiments.elf import data as data_lib
from experiments.elf import evaluators
from jaxlab.nn.diffusion import elf, elf_flow, flow, mdlm
from jaxlab.train import runrecord, runtime, trainer

app_flags.define()

KINDS = ('elf', 'mdlm')


def build_model(cfg: ml_collections.ConfigDict, vocab_size: int):
  """(model, objective or None) from config.model / config.objective."""
  m = cfg.model
  if m.kind == 'elf':
    model = elf.Elf(elf.ElfConfig(
        latent_dim=384, vocab_size=vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim,
        num_heads=m.num_heads, mlp_dim=m.mlp_dim, bottleneck_dim=m.bottleneck_dim,
        num_time_tokens=m.num_time_tokens, num_guidance_tokens=m.num_guidance_tokens,
        num_mode_tokens=m.num_mode_tokens, decoder_dim=m.decoder_dim, embedding=m.embedding))
    return model, elf_flow.ElfObjective(**cfg.objective.to_dict())
  if m.kind == 'mdlm':
    return mdlm.Mdlm(mdlm.MdlmConfig(vocab_size=vocab_size, num_layers=m.num_layers, embed_dim=m.embed_dim,
                                     num_heads=m.num_heads, mlp_dim=m.mlp_dim, decoder_dim=m.decoder_dim)), None
  raise ValueError(f'config.model.kind={m.kind!r} is not one of {KINDS}')


def forward_flops_per_token(model, seq_len: int, head: bool) -> float:
  """Matmul FLOPs of one forward token (PaLM convention), with or without the vocabulary head."""
  cfg = model.config
  d, blocks = cfg.embed_dim, cfg.block_config()
  t = seq_len + (cfg.num_prefix_tokens if isinstance(model, elf.Elf) else 0)
  per_layer = 4 * d * d + 3 * d * blocks.resolved_mlp_dim
  f = 2. * cfg.num_layers * per_layer * t / seq_len + 4. * cfg.num_layers * t * d * t / seq_len
  if isinstance(model, elf.Elf):
    c = cfg.latent_dim
    f += 2. * (2 * c * c + c * cfg.bottleneck_dim + cfg.bottleneck_dim * d)  # input path
    f += 0. if head else 2. * d * c                                          # output projection
  if head:
    f += 2. * (d * cfg.decoder_dim + cfg.decoder_dim * cfg.vocab_size)
  return f


def train_flops_per_example(model, obj, seq_len: int) -> float:
  """Expected training FLOPs per window: ELF mixes denoise steps (one no-grad forward + forward/backward)
  and decode steps (forward/backward with the head); MDLM is one forward/backward with the head."""
  if isinstance(model, elf.Elf):
    den = 4. * forward_flops_per_token(model, seq_len, head=False)
    dec = 3. * forward_flops_per_token(model, seq_len, head=True)
    return seq_len * ((1. - obj.decoder_prob) * den + obj.decoder_prob * dec)
  return seq_len * 3. * forward_flops_per_token(model, seq_len, head=True)


def make_task(cfg: ml_collections.ConfigDict, model, obj, data: data_lib.ElfData) -> trainer.Task:
  """Loss, validation metrics and data of an ELF or MDLM run."""
  is_elf = isinstance(model, elf.Elf)
  with_latents = is_elf and model.config.embedding == 'frozen'
  seq_len = int(cfg.data.seq_len)
  train_iter = data_lib.train_pipeline(data, int(cfg.batch_size), int(cfg.seed), with_latents)
  val = data_lib.eval_batches(data, int(cfg.data.eval_batch_size), int(cfg.data.max_eval_batches),
                              data.val_latents if with_latents else None)

  if is_elf:
    def init(rng):
      return elf.init_params(model, rng, seq_len)

    def loss_fn(params, batch, rng):
      return elf_flow.elf_loss(model, obj, params, batch, rng)

    def eval_step(params, batch):
      rows = batch['mask']
      x = elf_flow.clean_latents(model, params, batch, obj)
      b = x.shape[0]
      ones = jnp.ones((b,))
      logits = model.apply({'params': params}, x, ones, ones, None, decode=True)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['tokens']).mean(-1)
      acc = (jnp.argmax(logits, -1) == batch['tokens']).mean(-1)
      k_t, k_e = jax.random.split(jax.random.key(0))
      t = flow.sample_time(k_t, b, obj.t_schedule, obj.t_mean, obj.t_std)
      z = flow.interpolate(x, jax.random.normal(k_e, x.shape), t, obj.noise_scale)
      v, _ = flow.to_velocity(model.apply({'params': params}, z, t, ones), z, t, obj.prediction, obj.t_eps,
                              obj.noise_scale)
      l2 = jnp.mean(jnp.square(v - flow.velocity(x, z, t, obj.t_eps)), axis=(1, 2))
      return {'decode_ce_clean': jnp.sum(ce * rows), 'decode_acc_clean': jnp.sum(acc * rows),
              'l2_nosc_w1': jnp.sum(l2 * rows), 'weight': jnp.sum(rows)}
    finalize = None
  else:
    def init(rng):
      return model.init(rng, jnp.zeros((1, seq_len), jnp.int32))['params']

    def loss_fn(params, batch, rng):
      return mdlm.mdlm_loss(model, params, batch, rng)

    def eval_step(params, batch):
      rows, tokens = batch['mask'], batch['tokens']
      k_t, k_m = jax.random.split(jax.random.key(0))
      t = mdlm.low_discrepancy_times(k_t, tokens.shape[0])
      masked = jax.random.uniform(k_m, tokens.shape) < t[:, None]
      logits = model.apply({'params': params}, jnp.where(masked, model.config.mask_id, tokens))
      return {'nelbo': jnp.sum(mdlm.nelbo_terms(logits, tokens, masked, t) * rows), 'weight': jnp.sum(rows)}
    finalize = lambda m: {'perplexity_bound': float(np.exp(m['nelbo']))}  # noqa: E731

  return trainer.Task(init_params=init, loss_fn=loss_fn, train_data=train_iter, eval_step=eval_step,
                      eval_data=lambda: val, tokens_per_example=seq_len,
                      flops_per_example=train_flops_per_example(model, obj, seq_len), eval_finalize=finalize)


def sample_tokens(model, obj, params, data: data_lib.ElfData, s: ml_collections.ConfigDict, seq_len: int,
                  *, num_steps: int | None = None, method: str | None = None, guidance: float | None = None,
                  schedule: str | None = None, seed: int | None = None) -> np.ndarray:
  """[num_samples, seq_len] compact ids from ELF or MDLM, padding after the first [SEP]."""
  num_steps = int(s.num_steps if num_steps is None else num_steps)
  rng = jax.random.key(int(s.seed if seed is None else seed))
  eos = pad = data.special('[SEP]')  # padding after the end is [SEP] too: decode() drops it
  out = []
  for i, start in enumerate(range(0, int(s.num_samples), int(s.batch))):
    n = min(int(s.batch), int(s.num_samples) - start)
    key = jax.random.fold_in(rng, i)
    if isinstance(model, elf.Elf):
      toks, _ = elf_flow.generate(model, obj, params, key, num_samples=int(s.batch), length=seq_len,
                                  num_steps=num_steps, method=method or s.method, schedule=schedule or s.schedule,
                                  guidance=float(s.guidance if guidance is None else guidance),
                                  gamma=float(s.gamma), eos_id=eos, pad_id=pad)
    else:
      toks = mdlm.generate(model, params, key, num_samples=int(s.batch), length=seq_len, num_steps=num_steps,
                           eos_id=eos, pad_id=pad)
    out.append(np.asarray(toks)[:n])
  return np.concatenate(out)


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks the sampling and model choices before any data or training work; errors name the key."""
  if config.model.kind not in KINDS:
    raise ValueError(f'config.model.kind={config.model.kind!r} is not one of {KINDS}')
  s = config.sample
  if int(s.num_steps) < 1:
    raise ValueError(f'config.sample.num_steps={s.num_steps} must be >= 1')
  if config.model.kind == 'elf':
    if not float(s.guidance) > 0:
      raise ValueError(f'config.sample.guidance={s.guidance}: the guidance scale w must be > 0')
    if s.method not in flow.METHODS:
      raise ValueError(f'config.sample.method={s.method!r} is not one of {flow.METHODS}')
    if s.schedule not in flow.SCHEDULES:
      raise ValueError(f'config.sample.schedule={s.schedule!r} is not one of {flow.SCHEDULES}')
  if int(s.num_samples) < 1 or int(s.batch) < 1:
    raise ValueError(f'config.sample.num_samples={s.num_samples} and config.sample.batch={s.batch} must be >= 1')


@runrecord.recorded(continuable=('total_steps',))
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  runtime.initialize()
  os.makedirs(workdir, exist_ok=True)
  logging.info('Config:\n%s', config)
  validate(config)
  t0 = time.time()
  needs_latents = config.model.kind == 'elf' and config.model.embedding == 'frozen'
  data = data_lib.prepare(config.data, workdir, need_latents=needs_latents)
  model, obj = build_model(config, data.vocab_size)
  task = make_task(config, model, obj, data)
  t_data = time.time() - t0
  result = trainer.train(config, workdir, task)
  t_train = time.time() - t0 - t_data
  params = result.state.ema_params if result.state.ema_params is not None else result.state.params
  seq_len = int(config.data.seq_len)
  t1 = time.time()
  toks = sample_tokens(model, obj, params, data, config.sample, seq_len)
  texts = data.decode(toks)
  t_sample = time.time() - t1
  scores = evaluators.score(evaluators.from_config(config), texts)
  results = {'kind': config.model.kind, 'step': int(result.state.step), 'train': result.train_metrics,
             'eval': result.eval_metrics, 'sample': config.sample.to_dict(), 'scores': scores,
             'train_flops_per_example': train_flops_per_example(model, obj, seq_len),
             'seconds': {'data': t_data, 'train': t_train, 'sample': t_sample,
                         'score': time.time() - t1 - t_sample, 'total': time.time() - t0},
             'num_params': int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))}
  runrecord.write_json(os.path.join(workdir, 'results.json'), results)
  if jax.process_index() == 0:
    runrecord.atomic_write_bytes(os.path.join(workdir, 'samples.txt'), ('\n'.join(texts) + '\n').encode())
  logging.info('Results: %s', json.dumps({k: results[k] for k in ('step', 'eval', 'scores', 'seconds')}))
  return results


main = app_flags.main_for(run)


if __name__ == '__main__':
  app_flags.run(main)
