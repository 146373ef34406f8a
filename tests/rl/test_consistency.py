"""jaxlab.rl.consistency (Self-CTRL): parser, φ, anchors, advantages, and λ = 0 / 1 touching only their side."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.nn.lm import transformer
from jaxlab.rl import consistency as C
from jaxlab.rl import rollout


def test_parse_program_bias_hand_cases():
  assert C.parse_program_bias('def flip_Coin_S(): return {"H": 0.37, "T": 1 - 0.37}') == 0.37
  assert C.parse_program_bias("{ H : 0 . 3 7 , T : 1 - H }") == 0.37
  assert C.parse_program_bias("{'H': 0.12345}") == 0.123      # 3 decimals
  assert C.parse_program_bias('{"H": 1}') == 1.0 and C.parse_program_bias('{"H": .5}') == 0.5
  assert C.parse_program_bias('{"H": 1.2}') is None           # outside [0, 1]
  assert C.parse_program_bias('{"H": -0.1}') is None
  assert C.parse_program_bias("{ H : , T }") is None and C.parse_program_bias("H T H") is None


def test_count_flips_and_phi_hand_cases():
  assert C.count_flips("H T H H") == (3, 1)
  assert C.count_flips("H T x") is None and C.count_flips("") is None
  assert C.coin_phi((3, 1), 0.75) == pytest.approx((3 * math.log(0.75) + math.log(0.25)) / 4)
  assert C.coin_phi((3, 1), None) == -15.0                     # unparseable explanation: kept, -15
  assert C.coin_phi(None, 0.5) is None                         # no behaviour: invalid pair
  assert C.coin_phi((2, 0), 0.0) == pytest.approx(math.log(1e-6))  # clamped p̂
  assert C.coin_phi((0, 2), 0.0) == pytest.approx(math.log(1 - 1e-6))


def test_select_anchor():
  nll = np.array([0.9, 0.2, 0.2, 0.5])
  assert C.select_anchor(nll) == 1                             # lowest; ties: the first
  assert C.select_anchor(nll, np.array([1, 0, 0, 1], bool)) == 3  # only valid samples
  assert C.select_anchor(nll, np.zeros(4, bool)) is None
  rng = np.random.default_rng(0)
  picks = {C.select_anchor(nll, np.array([1, 0, 1, 0], bool), rule="random", rng=rng) for _ in range(50)}
  assert picks == {0, 2}
  with pytest.raises(ValueError, match="anchor rule"):
    C.select_anchor(nll, rule="best")
  np.testing.assert_allclose(C.mean_nll(np.array([[-1.0, -3.0], [-2.0, 0.0]]), np.array([[1, 1], [1, 0]])), [2.0, 2.0])


def test_advantage_edge_cases():
  adv, valid = C.consistency_advantages([None, None, None])
  assert not valid.any() and (adv == 0).all()                 # all invalid
  adv, valid = C.consistency_advantages([None, -0.7, None])
  np.testing.assert_allclose(adv, [0, -0.7, 0], rtol=1e-6)     # one valid: A = r
  adv, _ = C.consistency_advantages([-0.3, -0.3, -0.3])
  assert (adv == 0).all()                                      # ties: zero advantages (std floored)
  r = np.array([-1.0, -0.5, 0.0, 0.5])
  adv, _ = C.consistency_advantages(list(r) + [None])
  np.testing.assert_allclose(adv[:4], (r - r.mean()) / r.std(), rtol=1e-5)  # population std
  assert adv[4] == 0
  adv, _ = C.consistency_advantages([0.0, 0.02])               # std 0.01 < floor 0.05
  np.testing.assert_allclose(adv, [-0.2, 0.2], rtol=1e-5)


def _engine(lam, untouched=0.0):
  vocab = ["<pad>", "<bos>", "<eos>", "flip", "program", "c0", "c1", "H", "T", "{", ":", "0", "1", "2", "3", "4",
           "5", "6", "7", "8", "9", ".", "}", "x"]
  ids = {w: i for i, w in enumerate(vocab)}
  decode = lambda t: " ".join(vocab[int(i)] for i in t if int(i) > 2)  # noqa: E731
  model = transformer.DecoderLM(transformer.llama_config(vocab_size=len(vocab), num_layers=1, embed_dim=16,
                                                         num_heads=2, num_kv_heads=2, mlp_dim=32, max_len=16))
  dom = C.Domain(lambda e: [ids["flip"], ids[e["coin"]]], lambda e: [ids["program"], ids[e["coin"]]],
                 C.count_flips, C.parse_program_bias, C.coin_phi)
  cfg = C.ConsistencyConfig(group_size=4, prompts_per_step=2, lam=lam, behaviour_tokens=6, explanation_tokens=8,
                            untouched_coef=untouched)
  examples = [{"coin": "c0"}, {"coin": "c1"}]
  recs = C.prompt_records(dom, examples, 3)
  params = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))["params"]
  eng = C.SelfCTRL(model, cfg, dom, rollout.SamplingConfig(max_new_tokens=1, eos_id=2), decode, iter(()),
                   init_params=lambda rng: params)
  item = {k: np.stack([r[k] for r in recs]) for k in recs[0]}
  return eng, params, item, model, ids


@pytest.mark.parametrize("lam", [pytest.param(0.0, marks=pytest.mark.slow), 1.0])
def test_lambda_touches_only_its_side(lam):
  eng, params, item, model, ids = _engine(lam)
  batch, metrics = eng.build_batch(params, item, jax.random.key(1))
  n = 8  # K·P rows per side
  assert batch["advantages"].shape == (eng.cfg.batch_rows(False),) == (24,)
  side, other = (slice(0, n), slice(n, 2 * n)) if lam == 0 else (slice(n, 2 * n), slice(0, n))
  assert (batch["policy_weight"][other] == 0).all() and (batch["policy_weight"][2 * n:] == 0).all()
  assert "ctrl/expl_parse_rate" in metrics and metrics["rollout/seconds"] > 0
  # force a spread of rewards on the updated side, so its gradient is not zero
  batch["advantages"][side] = np.linspace(-1, 1, n)
  batch["policy_weight"][side] = 1.0 / n
  loss_fn = C.make_loss_fn(model)
  grad = lambda b: jax.grad(lambda p: loss_fn(p, b, None)[0])(params)  # noqa: E731
  g0 = grad(batch)
  changed = dict(batch)
  changed["completion"] = batch["completion"].copy()
  changed["completion"][other] = ids["x"]   # other side's tokens rewritten: same gradient
  g1 = grad(changed)
  assert all(np.allclose(a, b, atol=1e-7) for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)))
  mine = dict(batch)
  mine["completion"] = batch["completion"].copy()
  mine["completion"][side] = ids["x"]       # own side's tokens rewritten: the gradient changes
  g2 = grad(mine)
  assert not all(np.allclose(a, b, atol=1e-7) for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g2)))


def test_untouched_regulariser_rows_and_validation():
  eng, params, item, _, ids = _engine(0.0, untouched=0.3)
  with pytest.raises(ValueError, match="untouched_coef > 0"):
    eng.build_batch(params, item, jax.random.key(1))
  comp = np.full((2, 6), ids["H"], np.int32)
  item.update(untouched_prompt=item["beh_prompt"], untouched_prompt_mask=item["beh_prompt_mask"],
              untouched_completion=comp, untouched_mask=np.ones((2, 6), np.float32))
  batch, _ = eng.build_batch(params, item, jax.random.key(1))
  np.testing.assert_allclose(batch["reg_weight"][16:18], [0.15, 0.15])
  assert (batch["completion"][16:18, :6] == ids["H"]).all() and batch["completion_mask"][16:18, 6:].sum() == 0
  with pytest.raises(ValueError, match="lam"):
    C.ConsistencyConfig(lam=1.5).validate()
  with pytest.raises(ValueError, match="anchor"):
    C.ConsistencyConfig(anchor="best").validate()


def test_domain_context_fields_and_behaviour_phi():
  seen = []
  phi = lambda b, e, ctx: seen.append(("expl", int(ctx["sev"]))) or 1.0  # noqa: E731
  bphi = lambda b, e, ctx: seen.append(("beh", int(ctx["sev"]))) or 0.5  # noqa: E731
  dom = C.Domain(lambda e: [3], lambda e: [4], str, str, phi, behaviour_phi=bphi, context_fields=("sev",))
  assert dom.reward("expl", "b", "e", {"sev": 3}) == 1.0 and dom.reward("beh", "b", "e", {"sev": 7}) == 0.5
  assert seen == [("expl", 3), ("beh", 7)]
  plain = C.Domain(lambda e: [3], lambda e: [4], str, str, lambda b, e: 2.0)
  assert plain.reward("beh", "b", "e", {}) == 2.0           # no context fields, no behaviour_phi: phi(b, e)
  # through build_batch: each prompt's own context reaches φ of both sides (λ = 0.5)
  eng, params, item, _, _ = _engine(0.5)
  seen.clear()
  eng.domain = dataclasses.replace(eng.domain, phi=lambda b, e, ctx: seen.append(("expl", int(ctx["sev"]))) or 0.0,
                                   behaviour_phi=lambda b, e, ctx: seen.append(("beh", int(ctx["sev"]))) or 0.0,
                                   context_fields=("sev",), parse_explanation=lambda t: 0.5)
  item["sev"] = np.array([3, 7])
  eng.build_batch(params, item, jax.random.key(2))
  assert sorted(set(seen)) == [("beh", 3), ("beh", 7), ("expl", 3), ("expl", 7)]
  assert seen.count(("expl", 3)) == 4 and seen.count(("beh", 7)) == 4   # K = 4 per prompt and side


def test_lora_engine_trains_adapters_on_a_frozen_base():
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  from jaxlab.nn import lora  # pylint: disable=import-outside-toplevel
  eng, params, item, model, _ = _engine(0.0)
  lcfg = lora.LoraConfig(rank=2, alpha=4.0, targets=("q", "v"))
  adapters = lora.init_adapters(jax.random.key(3), params, lcfg)
  leng = C.SelfCTRL(model, eng.cfg, eng.domain, eng.sampling, eng.decode, iter(()), init_params=lambda r: adapters,
                    lora=lcfg, base_params=params, frozen_id="tiny")
  task = leng.task()
  assert task.frozen_params is params and task.frozen_id == "tiny"
  merged = leng.policy_params(adapters)                       # B = 0: the merged policy is the base
  assert all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(params)))
  batch, _ = leng.build_batch(merged, item, jax.random.key(1))
  batch["advantages"][:8] = np.linspace(-1, 1, 8)
  batch["policy_weight"][:8] = 1 / 8
  lossp = C.make_loss_fn(model)(params, batch, None)[0]
  lossl, g = jax.value_and_grad(lambda a: task.loss_fn(a, batch, None, params)[0])(adapters)
  np.testing.assert_allclose(lossl, lossp, rtol=1e-5)         # fresh adapters: the base model's loss
  g = nn.unbox(g)
  assert float(jnp.abs(g["layers_0"]["attn"]["query"]["lora_b"]).sum()) > 0   # B gets a gradient
  with pytest.raises(ValueError, match="go together"):
    C.SelfCTRL(model, eng.cfg, eng.domain, eng.sampling, eng.decode, iter(()), init_params=lambda r: params,
               lora=lcfg)
