"""Policy-gradient loss = hand REINFORCE; PPO ratio 1 on-policy; advantages; log-probs match the sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn import DecoderLM, llama_config
from jaxlab.nn.lm.generate import generate
from jaxlab.rl import grpo, rollout

V, T, TAU = 5, 3, 0.7


def tabular_logp(theta, prev, actions):
  """A bigram policy: π(a_t | a_{t-1}) = softmax(θ[a_{t-1}] / τ). prev, actions: [rows, T]."""
  logz = jax.nn.log_softmax(theta[prev] / TAU, axis=-1)
  return jnp.take_along_axis(logz, actions[..., None], axis=-1)[..., 0]


def reinforce_by_hand(theta, prev, actions, mask, adv, norm):
  """-Σ_i A_i Σ_t m_it ∇ log π(a_it) / normaliser, with ∇_θ[p] log softmax(θ[p]/τ)_a = (e_a - π(·|p))/τ."""
  theta = np.asarray(theta, np.float64)
  grad = np.zeros_like(theta)
  for i in range(actions.shape[0]):
    row_w = 1.0 / mask[i].sum() / actions.shape[0] if norm == "sequence" else 1.0 / mask.sum()
    for t in range(T):
      if mask[i, t]:
        z = theta[prev[i, t]] / TAU
        pi = np.exp(z - z.max())
        pi /= pi.sum()
        grad[prev[i, t]] -= row_w * adv[i] * (np.eye(V)[actions[i, t]] - pi) / TAU
  return grad


@pytest.mark.parametrize("norm", ["token", "sequence"])
def test_pg_gradient_equals_reinforce(norm):
  rng = np.random.default_rng(0)
  theta = jnp.asarray(rng.normal(size=(V, V)), jnp.float32)
  rows = 6
  actions = rng.integers(0, V, size=(rows, T))
  prev = np.concatenate([np.zeros((rows, 1), int), actions[:, :-1]], axis=1)
  mask = np.ones((rows, T), np.float32)
  mask[1, 2:] = 0
  mask[4, 1:] = 0
  rewards = rng.random(rows)
  adv = grpo.group_advantages(rewards, group_size=3)
  batch = {"completion_mask": jnp.asarray(mask), "advantages": jnp.asarray(adv),
           "tokens_per_row": jnp.full((rows,), mask.sum() / rows)}
  cfg = grpo.GRPOConfig(group_size=3, prompts_per_step=2, max_new_tokens=T, loss_norm=norm)
  grad = jax.jit(jax.grad(lambda th: grpo.policy_gradient_loss(tabular_logp(th, prev, actions), batch, cfg)[0]))(
      theta)
  np.testing.assert_allclose(np.asarray(grad), reinforce_by_hand(theta, prev, actions, mask, adv, norm),
                             rtol=1e-5, atol=1e-6)


def test_group_advantages():
  r = np.array([1.0, 0.0, 0.5, 0.5, 2.0, 2.0, 2.0, 2.0])
  np.testing.assert_allclose(grpo.group_advantages(r, 4), [0.5, -0.5, 0, 0, 0, 0, 0, 0])
  scaled = grpo.group_advantages(r, 4, scale=True, std_eps=0.0)
  std = np.std([1.0, 0.0, 0.5, 0.5], ddof=1)
  np.testing.assert_allclose(scaled[:2], [0.5 / std, -0.5 / std], rtol=1e-6)
  assert np.all(scaled[4:] == 0)  # a zero-variance group gives zero advantages, even with eps = floor = 0
  floored = grpo.group_advantages(r, 4, scale=True, std_floor=1.0, std_eps=0.0)
  np.testing.assert_allclose(floored[:2], [0.5, -0.5])
  with pytest.raises(ValueError, match="group_size=1 must be ≥ 2"):
    grpo.group_advantages(r, 1)
  with pytest.raises(ValueError, match="config.rl.group_size=1 must be ≥ 2"):
    grpo.GRPOConfig(group_size=1).validate()
  with pytest.raises(ValueError, match=r"config.batch_size=12 must equal"):
    grpo.GRPOConfig(group_size=4, prompts_per_step=2).validate(batch_size=12)


def tiny_model():
  cfg = llama_config(vocab_size=11, num_layers=1, embed_dim=16, num_heads=2, num_kv_heads=1, mlp_dim=32,
                     max_len=32)
  model = DecoderLM(cfg)
  init = jax.jit(lambda k: jax.tree.map(lambda x: x * 3 if x.ndim > 1 else x,
                                        model.init(k, jnp.zeros((1, 4), jnp.int32))["params"]))
  return model, init(jax.random.key(0))


logprobs = jax.jit(rollout.sequence_logprobs, static_argnums=0)


def value_and_grad(model, cfg):
  return jax.jit(jax.value_and_grad(grpo.make_loss_fn(model, cfg), has_aux=True))


def test_logprobs_match_sampler_and_ppo_ratio_is_one():
  model, params = tiny_model()
  prompt = np.array([[0, 3, 4], [5, 6, 7]], np.int32)
  pmask = np.array([[False, True, True], [True, True, True]])
  out = generate(model, params, prompt, pmask, max_new_tokens=5, rng=jax.random.key(1), temperature=1.0)
  logp, _ = logprobs(model, params, jnp.asarray(prompt), jnp.asarray(pmask), out.tokens)
  m = np.asarray(out.mask)
  np.testing.assert_allclose(np.asarray(logp)[m], np.asarray(out.logprobs)[m], atol=1e-5)

  batch = {"prompt": jnp.asarray(prompt), "prompt_mask": jnp.asarray(pmask), "completion": out.tokens,
           "completion_mask": jnp.asarray(m, jnp.float32), "advantages": jnp.asarray([0.7, -0.7]),
           "tokens_per_row": jnp.full((2,), m.sum() / 2)}
  on_policy = grpo.GRPOConfig(group_size=2, prompts_per_step=1, max_new_tokens=5, temperature=1.0)
  old = {**batch, "old_logprobs": logp}
  (l_stop, aux), g_stop = value_and_grad(model, on_policy)(params, batch, None)
  tight = grpo.GRPOConfig(group_size=2, prompts_per_step=1, max_new_tokens=5, temperature=1.0, clip_eps=1e-6)
  (l_old, aux_old), g_old = value_and_grad(model, tight)(params, old, None)
  assert float(aux_old["ratio_mean"]) == pytest.approx(1.0, abs=1e-6)
  assert float(aux_old["clip_fraction"]) == 0.0
  np.testing.assert_allclose(float(l_old), float(l_stop), atol=1e-6)
  for a, b in zip(jax.tree.leaves(g_old), jax.tree.leaves(g_stop)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  assert float(aux["entropy"]) > 0


def test_kl_to_reference():
  model, params = tiny_model()
  prompt, pmask = np.array([[1, 2, 3]], np.int32), np.ones((1, 3), bool)
  comp = jnp.asarray([[4, 5, 6]])
  ref_params = jax.tree.map(lambda x: x * 0.5, params)
  logp, _ = logprobs(model, params, jnp.asarray(prompt), jnp.asarray(pmask), comp)
  ref, _ = logprobs(model, ref_params, jnp.asarray(prompt), jnp.asarray(pmask), comp)
  batch = {"prompt": prompt, "prompt_mask": pmask, "completion": comp, "completion_mask": jnp.ones((1, 3)),
           "advantages": jnp.zeros((1,)), "tokens_per_row": jnp.full((1,), 3.0), "ref_logprobs": ref}
  cfg = grpo.GRPOConfig(group_size=2, prompts_per_step=1, max_new_tokens=3, temperature=1.0, kl_coef=0.1)
  (loss, aux), _ = value_and_grad(model, cfg)(params, batch, None)
  d = np.asarray(ref - logp)
  expected = float(np.mean(np.exp(d) - d - 1))
  assert float(aux["kl"]) == pytest.approx(expected, rel=1e-5) and float(loss) == pytest.approx(0.1 * expected,
                                                                                               rel=1e-5)
