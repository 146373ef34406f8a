"""ELF's training objective and sampler: pure functions of the `jaxlab.nn.diffusion.elf.Elf` parameters.

Objective (one draw per training step, as the official train_step):

* x = (encoder latents - latent_mean) / latent_std (latent_std 0.2), or the learned table's rows / latent_std;
* with probability `decoder_prob` (0.2) the whole step is a **decode-mode** step: the network, in decode
  mode at t = 1 with a zero self-conditioning input, reads z̃ = p·x + (1 - p)·5ε (per-token
  p = sigmoid(N(0.8, 0.8²))) and is trained with token cross-entropy;
* otherwise a **denoise** step: t = sigmoid(N(-1.5, 0.8²)) per sequence, z = t·x + (1 - t)·2ε,
  self-conditioning with probability 0.5 per sequence on x̂' of a no-gradient pass with zero
  self-conditioning, and the velocity loss ‖v_θ - v_tgt‖² (mean over tokens and features) with the
  training-time guidance target v_tgt = v* + (1 - 1/w)(v_sc - v_nosc) (stop-gradient), w drawn
  log-uniformly on 1 + w ∈ [1.5, 6] and fed to the network as a conditioning input.

Passes per denoise step: the official code runs four (self-cond draft, main, and the two guidance passes
v_nosc and v_sc). Without dropout the draft pass *is* v_nosc (same input, same parameters) and, for the
examples that use self-conditioning, the v_sc pass *is* the main pass (its input is the same
[z, x̂'_nosc]); we reuse them, so a step costs one no-gradient forward and one forward + backward. The
guidance term is zero where self-conditioning is off, as in the official code.

Sampler (`generate`): z_0 = 2ε, the official time grid and SDE/ODE steps of `jaxlab.nn.diffusion.flow`, the
previous x̂ as the self-conditioning input (zeros first), w as input (one pass per step), then one
decode-mode pass at t = 1 with zero self-conditioning, argmax, and padding after the first EOS.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax

from jaxlab.nn.diffusion import flow
from jaxlab.nn.diffusion.elf import Elf

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ElfObjective:
  """Hyper-parameters of the ELF objective (defaults: the paper's unconditional setting)."""
  latent_mean: float = 0.0        # Subtracted from encoder latents.
  latent_std: float = 0.2         # Latents are divided by this.
  noise_scale: float = 2.0        # s in z_t = t·x + (1 - t)·s·ε.
  t_schedule: str = 'logit_normal'  # Training-time distribution: 'logit_normal' | 'uniform'.
  t_mean: float = -1.5            # Logit-normal mean of t.
  t_std: float = 0.8              # Logit-normal std of t.
  t_eps: float = 0.05             # v = (x̂ - z) / max(1 - t, t_eps).
  prediction: str = 'x'           # Network output: 'x' | 'v' | 'eps'.
  decoder_prob: float = 0.2       # Probability that a step is a decode-mode (cross-entropy) step.
  decoder_p_mean: float = 0.8     # Per-token p = sigmoid(N(mean, std²)) in p·x + (1 - p)·s_dec·ε.
  decoder_p_std: float = 0.8
  decoder_noise_scale: float = 5.0  # s_dec (5 unconditional, 1 conditional in the paper).
  self_cond_prob: float = 0.5     # Probability of self-conditioning per sequence.
  guidance_min: float = 0.5       # Training guidance scales: log(1 + w) uniform on
  guidance_max: float = 5.0       #   [log(1 + min), log(1 + max)].
  guidance_training: bool = True  # False: plain target, w fixed to 1.

  def __post_init__(self):
    if self.latent_std <= 0 or self.noise_scale <= 0 or self.t_eps <= 0:
      raise ValueError('ElfObjective: latent_std, noise_scale and t_eps must be positive')
    for name in ('decoder_prob', 'self_cond_prob'):
      if not 0. <= getattr(self, name) <= 1.:
        raise ValueError(f'ElfObjective.{name}={getattr(self, name)} must be in [0, 1]')
    if self.prediction not in flow.PREDICTIONS:
      raise ValueError(f'ElfObjective.prediction={self.prediction!r} is not one of {flow.PREDICTIONS}')
    if self.t_schedule not in flow.SCHEDULES:
      raise ValueError(f'ElfObjective.t_schedule={self.t_schedule!r} is not one of {flow.SCHEDULES}')
    if not 0. < self.guidance_min <= self.guidance_max:
      raise ValueError(f'ElfObjective: guidance range [{self.guidance_min}, {self.guidance_max}] must be '
                       'positive and ordered')


def clean_latents(model: Elf, params, batch: dict, obj: ElfObjective) -> Array:
  """Normalised clean latents x [batch, length, latent_dim] from batch['latents'] or the learned table."""
  if model.config.embedding == 'learned':
    raw = model.apply({'params': params}, batch['tokens'], method=Elf.embed_tokens)
  else:
    raw = batch['latents'].astype(jnp.float32)
  return (raw - obj.latent_mean) / obj.latent_std


def elf_loss(model: Elf, obj: ElfObjective, params, batch: dict, rng: Array) -> tuple[Array, dict]:
  """One ELF training loss (a decode-mode or a denoise step, chosen by one coin per call).

  Args:
    batch: 'tokens' [batch, length] int32 decoder targets, and 'latents' [batch, length, latent_dim]
      (raw encoder output) unless the model learns its own table.

  Returns:
    (scalar loss, metrics): l2 and ce are each rescaled by their branch probability, so their means
    over many steps are the per-branch means; token_acc is the decode accuracy on decode steps (else 0).
  """
  tokens = batch['tokens']
  x = clean_latents(model, params, batch, obj)
  b = x.shape[0]
  k = jax.random.split(rng, 7)
  t = flow.sample_time(k[0], b, obj.t_schedule, obj.t_mean, obj.t_std)
  z = flow.interpolate(x, jax.random.normal(k[1], x.shape), t, obj.noise_scale)
  v_star = flow.velocity(x, z, t, obj.t_eps)
  if obj.guidance_training:
    w = flow.sample_guidance(k[2], b, obj.guidance_min, obj.guidance_max)
  else:
    w = jnp.ones((b,))
  use_sc = jax.random.uniform(k[3], (b,)) < obj.self_cond_prob
  is_decode = jax.random.bernoulli(k[4], obj.decoder_prob)

  def net(p, z_in, t_in, sc, decode):
    return model.apply({'params': p}, z_in, t_in, w, sc, decode=decode)

  def decode_branch(_):
    z_dec = flow.decode_noising(k[5], x, obj.decoder_p_mean, obj.decoder_p_std, obj.decoder_noise_scale)
    logits = net(params, z_dec, jnp.ones((b,)), None, True)
    ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, tokens))
    acc = jnp.mean(jnp.argmax(logits, -1) == tokens)
    return ce, jnp.zeros(()), ce, acc

  def denoise_branch(_):
    z_sg = jax.lax.stop_gradient(z)
    v_nosc, x_nosc = jax.lax.stop_gradient(flow.to_velocity(
        net(params, z_sg, t, None, False), z_sg, t, obj.prediction, obj.t_eps, obj.noise_scale))
    sc = x_nosc * use_sc[:, None, None].astype(x.dtype)
    v, _ = flow.to_velocity(net(params, z, t, sc, False), z, t, obj.prediction, obj.t_eps, obj.noise_scale)
    target = v_star
    if obj.guidance_training:
      target = flow.guided_target(v_star, jax.lax.stop_gradient(v), v_nosc, w, use_sc)
    l2 = jnp.mean(jnp.square(v - target))
    return l2, l2, jnp.zeros(()), jnp.zeros(())

  if obj.decoder_prob >= 1.:
    loss, l2, ce, acc = decode_branch(None)
  elif obj.decoder_prob <= 0.:
    loss, l2, ce, acc = denoise_branch(None)
  else:
    loss, l2, ce, acc = jax.lax.cond(is_decode, decode_branch, denoise_branch, None)
  p_dec = obj.decoder_prob
  metrics = {'l2': l2 / max(1. - p_dec, 1e-9), 'ce': ce / max(p_dec, 1e-9),
             'token_acc': acc / max(p_dec, 1e-9), 'decode_step': is_decode.astype(jnp.float32)}
  return loss, metrics


def check_sampling_args(num_steps: int, guidance: float) -> None:
  """ValueError for zero/negative steps or a guidance scale <= 0."""
  flow.check_steps(num_steps)
  if not float(guidance) > 0.:
    raise ValueError(f'guidance scale w must be > 0, got {guidance}')


@functools.partial(jax.jit, static_argnames=('model', 'obj', 'num_samples', 'length', 'num_steps', 'method',
                                             'schedule', 'eos_id', 'pad_id'))
def _generate(model, obj, params, rng, guidance, gamma, *, num_samples, length, num_steps, method, schedule,
              eos_id, pad_id):
  c = model.config.latent_dim
  k_noise, k_grid, k_sde = jax.random.split(rng, 3)
  w = jnp.full((num_samples,), guidance, jnp.float32)

  def denoise(z, t, x_prev):
    out = model.apply({'params': params}, z, t, w, x_prev)
    return flow.to_velocity(out, z, t, obj.prediction, obj.t_eps, obj.noise_scale)

  z0 = obj.noise_scale * jax.random.normal(k_noise, (num_samples, length, c))
  grid = flow.time_grid(num_steps, schedule, k_grid, obj.t_mean, obj.t_std)
  z1, _ = flow.integrate(denoise, z0, grid, method=method, gamma=gamma, rng=k_sde, noise_scale=obj.noise_scale)
  logits = model.apply({'params': params}, z1, jnp.ones((num_samples,)), w, None, decode=True)
  tokens = jnp.argmax(logits, -1).astype(jnp.int32)
  if eos_id is not None:
    tokens = flow.mask_after_eos(tokens, eos_id, pad_id)
  return tokens, z1


def generate(model: Elf, obj: ElfObjective, params, rng: Array, *, num_samples: int, length: int,
             num_steps: int, method: str = 'sde', schedule: str = 'logit_normal', guidance: float = 1.0,
             gamma: float = 1.5, eos_id: int | None = None, pad_id: int = 0) -> tuple[Array, Array]:
  """Samples token sequences (one jitted call).

  Args:
    num_steps: N ≥ 1 network evaluations on the time grid (plus one decode pass).
    method: 'sde' (churn rate `gamma`; last step ODE) or 'ode'.
    schedule: time grid, 'logit_normal' (random per call) or 'uniform'.
    guidance: w > 0, the self-conditioning guidance scale given to the network (1 = no guidance).
    eos_id: if set, tokens after the first eos_id become pad_id.

  Returns:
    (tokens [num_samples, length] int32, final latents [num_samples, length, latent_dim]).
  """
  check_sampling_args(num_steps, guidance)
  if method not in flow.METHODS:
    raise ValueError(f'sampling method {method!r} is not one of {flow.METHODS}')
  if schedule not in flow.SCHEDULES:
    raise ValueError(f'time grid schedule {schedule!r} is not one of {flow.SCHEDULES}')
  if num_samples <= 0 or length <= 0:
    raise ValueError(f'num_samples ({num_samples}) and length ({length}) must be positive')
  return _generate(model, obj, params, rng, jnp.float32(guidance), jnp.float32(gamma), num_samples=num_samples,
                   length=length, num_steps=int(num_steps), method=method, schedule=schedule, eos_id=eos_id,
                   pad_id=pad_id)
