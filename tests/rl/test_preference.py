"""Preference losses (KTO, APO-zero, DPO variants): hand-computed values, TRL 1.16's own loss code on identical
log-probs (loss and gradient), the mismatched-pair z0, prompt tokens without gradient, the LoRA-off reference
and a few steps through the one trainer."""

import importlib
import collections
import json
import types

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxlab.nn import lora
from jaxlab.nn.lm.transformer import DecoderLM, TransformerConfig
from jaxlab.rl import preference as pref
from jaxlab.train import Task, train

B = 6
RNG = np.random.default_rng(0)
LOGPS = (-RNG.uniform(2, 30, B)).astype(np.float32)
REF = (LOGPS + RNG.normal(0, 3, B)).astype(np.float32)
KL_LOGPS = (-RNG.uniform(10, 40, B)).astype(np.float32)
REF_KL = (KL_LOGPS + RNG.normal(-1, 2, B)).astype(np.float32)
LABEL = np.array([1, 0, 1, 1, 0, 0], bool)
LENS = RNG.integers(1, 9, B).astype(np.float32)


def _sig(x):
  return 1 / (1 + np.exp(-x))


def _logsig(x):
  return -np.log1p(np.exp(-x))


def test_kto_hand_computed():
  cfg = pref.PreferenceConfig('kto', beta=0.1, desirable_weight=1.3, undesirable_weight=0.7)
  loss, m = pref.kto_loss(LOGPS, REF, LABEL, cfg, KL_LOGPS, REF_KL)
  z0 = max(0.0, float(np.mean(KL_LOGPS.astype(np.float64) - REF_KL)))
  r = LOGPS.astype(np.float64) - REF
  want = np.where(LABEL, 1.3 * (1 - _sig(0.1 * (r - z0))), 0.7 * (1 - _sig(0.1 * (z0 - r)))).mean()
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_allclose(m['kl'], z0, rtol=1e-6)
  np.testing.assert_allclose(m['rewards/chosen'], 0.1 * r[LABEL].mean(), rtol=1e-5)
  np.testing.assert_allclose(m['rewards/margins'], 0.1 * (r[LABEL].mean() - r[~LABEL].mean()), rtol=1e-5)
  # z0 is clamped at zero: a negative mismatched-pair estimate gives the plain sigmoid of beta r.
  loss0, m0 = pref.kto_loss(LOGPS, REF, LABEL, cfg, KL_LOGPS, KL_LOGPS + 5.)
  assert float(m0['kl']) == 0.0
  np.testing.assert_allclose(loss0, np.where(LABEL, 1.3 * (1 - _sig(0.1 * r)), 0.7 * (1 - _sig(-0.1 * r))).mean(),
                             rtol=1e-6)


def test_apo_zero_unpaired_hand_computed():
  cfg = pref.PreferenceConfig('apo_zero_unpaired', beta=0.2)
  loss, m = pref.kto_loss(LOGPS, REF, LABEL, cfg)
  r = LOGPS.astype(np.float64) - REF
  np.testing.assert_allclose(loss, np.where(LABEL, 1 - _sig(0.2 * r), _sig(0.2 * r)).mean(), rtol=1e-6)
  assert float(m['kl']) == 0.0


@pytest.mark.parametrize('loss_type', ['sigmoid', 'hinge', 'ipo', 'robust', 'rpo'])
def test_dpo_hand_computed(loss_type):
  c, r, rc, rr = LOGPS, KL_LOGPS, REF, REF_KL
  cfg = pref.PreferenceConfig(loss_type, beta=0.3, label_smoothing=0.2, rpo_alpha=0.5)
  loss, m = pref.dpo_loss(c, r, rc, rr, cfg, LENS, LENS[::-1])
  d = (c.astype(np.float64) - rc) - (r - rr)
  want = {'sigmoid': -_logsig(0.3 * d), 'hinge': np.maximum(0, 1 - 0.3 * d),
          'ipo': ((c - rc) / LENS - (r - rr) / LENS[::-1] - 1 / 0.6) ** 2,
          'robust': (-(0.8) * _logsig(0.3 * d) + 0.2 * _logsig(-0.3 * d)) / 0.6,
          'rpo': -_logsig(0.3 * d)}[loss_type].mean()
  if loss_type == 'rpo':
    want += 0.5 * (-c.sum() / LENS.sum())
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  np.testing.assert_allclose(m['rewards/margins'], 0.3 * d.mean(), rtol=1e-5)
  np.testing.assert_allclose(m['rewards/accuracies'], np.mean((c - rc) > (r - rr)))


# --------------------------------------------------------------------------- TRL's own loss code, stubbed model

class _Accel:
  device = 'cpu'
  gather_for_metrics = staticmethod(lambda x: x)
  gather = staticmethod(lambda x: x)
  unwrap_model = staticmethod(lambda m: m)


def _stub_trainer(**kw):
  return types.SimpleNamespace(model=types.SimpleNamespace(training=True), accelerator=_Accel(),
                               aux_loss_enabled=False, precompute_ref_logps=True, _total_train_tokens=0, _tp_size=1,
                               _metrics=collections.defaultdict(lambda: collections.defaultdict(list)), **kw)


def _stub_model(table, p_len):
  """A 'model' whose per-token log-probs are given: the row's sequence log-prob sits at the first completion
  position (so sums, token means and the gradient w.r.t. the sequence log-prob are exact)."""
  torch = importlib.import_module('torch')

  def model(input_ids, labels=None, **_):
    leaf = table[id(input_ids)]
    t = input_ids.shape[1]
    lp = torch.zeros((input_ids.shape[0], t - 1), dtype=torch.float64)
    lp = lp.index_put((torch.arange(lp.shape[0]), torch.full((lp.shape[0],), p_len - 1)), leaf)
    z = torch.zeros_like(lp)
    return types.SimpleNamespace(log_probs=lp, entropy=z, mean_logits=z, is_top1=z.bool(), log_sum_sq_probs=z)

  return model


@pytest.mark.parametrize('loss_type', ['kto', 'apo_zero_unpaired'])
def test_kto_matches_trl_loss_and_gradient(loss_type):
  torch = importlib.import_module('torch')
  kto_trainer = importlib.import_module('trl.trainer.kto_trainer')  # in the test extra: a missing trl fails
  p_len, c_len = 3, 4
  ids, kl_ids = torch.ones((B, p_len + c_len), dtype=torch.long), torch.ones((B, p_len + c_len), dtype=torch.long)
  cmask = torch.zeros((B, p_len + c_len), dtype=torch.long)
  cmask[:, p_len:] = 1
  logps = torch.tensor(LOGPS, dtype=torch.float64, requires_grad=True)
  table = {id(ids): logps, id(kl_ids): torch.tensor(KL_LOGPS, dtype=torch.float64)}
  inputs = {'input_ids': ids, 'attention_mask': torch.ones_like(ids), 'completion_mask': cmask,
            'KL_input_ids': kl_ids, 'KL_attention_mask': torch.ones_like(ids), 'KL_completion_mask': cmask,
            'label': torch.tensor(LABEL), 'ref_logps': torch.tensor(REF, dtype=torch.float64),
            'ref_KL_logps': torch.tensor(REF_KL, dtype=torch.float64)}
  stub = _stub_trainer(calculate_KL=loss_type == 'kto', loss_type=loss_type, beta=0.1, desirable_weight=1.3,
                       undesirable_weight=0.7)
  stub._compute_kl_logps = types.MethodType(kto_trainer.KTOTrainer._compute_kl_logps, stub)
  trl_loss = kto_trainer.KTOTrainer._compute_loss(stub, _stub_model(table, p_len), inputs, False)
  trl_loss.backward()
  cfg = pref.PreferenceConfig(loss_type, beta=0.1, desirable_weight=1.3, undesirable_weight=0.7)
  f = lambda lp: pref.kto_loss(lp, REF, LABEL, cfg, KL_LOGPS, REF_KL)  # noqa: E731
  (loss, m), grad = jax.value_and_grad(f, has_aux=True)(jnp.asarray(LOGPS))
  np.testing.assert_allclose(loss, trl_loss.item(), atol=1e-6)
  np.testing.assert_allclose(grad, logps.grad.numpy(), atol=1e-6)
  got = stub._metrics['train']
  for name in ('kl', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'logps/chosen', 'logps/rejected'):
    np.testing.assert_allclose(m[name], got[name][-1], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize('loss_type', ['sigmoid', 'hinge', 'ipo', 'robust', 'rpo'])
def test_dpo_matches_trl_loss_and_gradient(loss_type):
  torch = importlib.import_module('torch')
  dpo_trainer = importlib.import_module('trl.trainer.dpo_trainer')
  p_len, c_len = 3, 9
  ids = torch.ones((2 * B, p_len + c_len), dtype=torch.long)
  lens = np.concatenate([LENS, LENS[::-1]]).astype(int)
  cmask = torch.zeros_like(ids)
  for i, n in enumerate(lens):
    cmask[i, p_len:p_len + n] = 1
  both = torch.tensor(np.concatenate([LOGPS, KL_LOGPS]), dtype=torch.float64, requires_grad=True)
  inputs = {'input_ids': ids, 'attention_mask': torch.ones_like(ids), 'completion_mask': cmask,
            'ref_chosen_logps': torch.tensor(REF, dtype=torch.float64),
            'ref_rejected_logps': torch.tensor(REF_KL, dtype=torch.float64)}
  types_, weights = (['sigmoid', 'sft'], [1.0, 0.5]) if loss_type == 'rpo' else ([loss_type], [1.0])
  stub = _stub_trainer(loss_types=types_, loss_weights=weights, beta=0.3, label_smoothing=0.2,
                       f_divergence_type='reverse_kl', ld_alpha=None, use_weighting=False)
  trl_loss = dpo_trainer.DPOTrainer._compute_loss(stub, _stub_model({id(ids): both}, p_len), inputs, False)
  trl_loss.backward()
  cfg = pref.PreferenceConfig(loss_type, beta=0.3, label_smoothing=0.2, rpo_alpha=0.5)
  f = lambda c, r: pref.dpo_loss(c, r, REF, REF_KL, cfg, LENS, LENS[::-1])  # noqa: E731
  (loss, m), (gc, gr) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(jnp.asarray(LOGPS),
                                                                             jnp.asarray(KL_LOGPS))
  np.testing.assert_allclose(loss, trl_loss.item(), atol=1e-6)
  np.testing.assert_allclose(np.concatenate([gc, gr]), both.grad.numpy(), atol=1e-6)
  got = stub._metrics['train']
  for name in ('rewards/chosen', 'rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen'):
    np.testing.assert_allclose(m[name], got[name][-1], rtol=1e-5, atol=1e-6, err_msg=name)


# --------------------------------------------------------------------------- model side (tiny LM + LoRA)

CFG = TransformerConfig(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, mlp_dim=48,
                        max_len=32, tie_embeddings=False)
LORA = lora.LoraConfig(rank=4, alpha=8.)
P_LEN, C_LEN = 5, 4


@pytest.fixture(scope='module')
def lm():
  model = DecoderLM(CFG)
  boxed = jax.jit(model.init)(jax.random.key(0), jnp.zeros((2, P_LEN + C_LEN), jnp.int32))['params']
  adapters = nn.unbox(lora.init_adapters(jax.random.key(1), boxed, LORA))
  leaves, tdef = jax.tree.flatten(adapters)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  adapters = jax.tree.unflatten(tdef, [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
  return model, boxed, nn.unbox(boxed), adapters


def _kto_batch(n=4, seed=0):
  rng = np.random.default_rng(seed)
  prompts = [list(rng.integers(1, 64, rng.integers(2, P_LEN + 1))) for _ in range(n)]
  comps = [list(rng.integers(1, 64, rng.integers(1, C_LEN + 1))) for _ in range(n)]
  recs = pref.kto_records(prompts, comps, [i % 2 == 0 for i in range(n)], P_LEN, C_LEN)
  return {k: jnp.stack([r[k] for r in recs]) for k in recs[0]}


def test_z0_uses_mismatched_pairs_and_reference_is_adapters_off(lm):
  model, _, base, adapters = lm
  batch = _kto_batch()
  cfg = pref.PreferenceConfig('kto', beta=0.1)
  _, m = pref.make_kto_loss(model, LORA, cfg)(adapters, batch, jax.random.key(0), base)
  logp = lambda a, c, cm: pref.completion_logps(model, base, a, LORA, batch['prompt'], batch['prompt_mask'], c, cm)  # noqa: E731
  kl_c, kl_m = jnp.roll(batch['completion'], 1, 0), jnp.roll(batch['completion_mask'], 1, 0)
  mismatched = max(0., float(jnp.mean(logp(adapters, kl_c, kl_m) - logp(None, kl_c, kl_m))))
  matched = max(0., float(jnp.mean(logp(adapters, batch['completion'], batch['completion_mask'])
                                    - logp(None, batch['completion'], batch['completion_mask']))))
  assert abs(mismatched - matched) > 1e-3  # the two estimates differ on this batch, so the check below bites
  np.testing.assert_allclose(m['kl'], mismatched, rtol=1e-5)
  # Row 0 is paired with the last row's completion, row j with row j-1's (TRL's rotation).
  np.testing.assert_array_equal(pref.mismatched(batch)[0][1], batch['completion'][0])
  np.testing.assert_array_equal(pref.mismatched(batch)[0][0], batch['completion'][-1])
  # The reference is the base model: zero adapters give r = 0 on every row.
  zero = jax.tree.map(jnp.zeros_like, adapters)
  _, m0 = pref.make_kto_loss(model, LORA, cfg)(zero, batch, jax.random.key(0), base)
  assert abs(float(m0['rewards/chosen'])) < 1e-5 and abs(float(m0['kl'])) < 1e-5


def test_prompt_tokens_carry_no_gradient():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(2, P_LEN + C_LEN, 11)), jnp.float32)
  comp = jnp.asarray(rng.integers(0, 11, (2, C_LEN)))
  cmask = jnp.asarray([[1, 1, 1, 0], [1, 1, 0, 0]], jnp.float32)
  g = jax.grad(lambda lg: jnp.sum(pref.logits_to_completion_logps(lg, comp, cmask)))(logits)
  norms = np.abs(np.asarray(g)).sum(-1)
  assert np.all(norms[:, :P_LEN - 1] == 0)        # positions predicting prompt tokens
  assert np.all(norms[0, P_LEN - 1:P_LEN + 2] > 0) and np.all(norms[1, P_LEN - 1:P_LEN + 1] > 0)
  assert np.all(norms[0, P_LEN + 2:] == 0) and np.all(norms[1, P_LEN + 1:] == 0)  # padding and the last position


def test_precomputed_reference_equals_adapters_off(lm):
  model, _, base, adapters = lm
  batch = _kto_batch()
  cfg = pref.PreferenceConfig('kto')
  kl_c, kl_m = pref.mismatched(batch)
  ref = pref.completion_logps(model, base, None, LORA, batch['prompt'], batch['prompt_mask'], batch['completion'],
                              batch['completion_mask'])
  ref_kl = pref.completion_logps(model, base, None, LORA, batch['prompt'], batch['prompt_mask'], kl_c, kl_m)
  fn = pref.make_kto_loss(model, LORA, cfg)
  a = fn(adapters, batch, jax.random.key(0), base)[0]
  b = fn(adapters, {**batch, 'ref_logps': ref, 'ref_kl_logps': ref_kl}, jax.random.key(0), base)[0]
  np.testing.assert_allclose(a, b, rtol=1e-6)


def test_batch_of_one_is_a_config_error(lm):
  model, _, base, adapters = lm
  with pytest.raises(ValueError, match='mismatched pairs'):
    pref.PreferenceConfig('kto').validate(1)
  with pytest.raises(ValueError, match='mismatched pairs'):
    pref.make_kto_loss(model, LORA, pref.PreferenceConfig('kto'))(adapters, _kto_batch(1), None, base)
  pref.PreferenceConfig('apo_zero_unpaired').validate(1)  # no KL term: fine
  with pytest.raises(ValueError, match='loss_type'):
    pref.PreferenceConfig('dpo')


def test_trl_jsonl_formats(tmp_path):
  rows = [{'prompt': 'Q: a?', 'completion': ' b', 'label': True}, {'prompt': 'Q: c?', 'chosen': ' d', 'rejected': ' e'}]
  pref.write_jsonl(tmp_path / 'p.jsonl', rows)
  assert pref.read_jsonl(tmp_path / 'p.jsonl') == rows
  (tmp_path / 'bad.jsonl').write_text(json.dumps({'prompt': 'x', 'completion': 'y', 'label': 1}) + '\n')
  with pytest.raises(ValueError, match='bad.jsonl:1: label must be true or false'):
    pref.read_jsonl(tmp_path / 'bad.jsonl')


def test_dpo_through_trainer_trains_only_adapters_and_raises_margin(lm, tmp_path):
  model, boxed, base, _ = lm
  rng = np.random.default_rng(0)
  prompts = [list(rng.integers(1, 64, 3)) for _ in range(8)]
  recs = pref.dpo_records(prompts, [[5, 6]] * 8, [[7, 8, 9]] * 8, P_LEN, C_LEN)
  data = iter(grain.MapDataset.source(recs).shuffle(seed=0).repeat(None).batch(4, drop_remainder=True))
  cfg = pref.PreferenceConfig('sigmoid', beta=0.5)
  task = Task(init_params=lambda r: lora.init_adapters(r, boxed, LORA), loss_fn=pref.make_dpo_loss(model, LORA, cfg),
              train_data=data, frozen_params=boxed, frozen_id='tiny')
  config = ml_collections.ConfigDict(dict(
      seed=0, total_steps=8, batch_size=4, log_every=1, eval_every=0, checkpoint_every=0, measure_peak=False,
      mesh=dict(data=1, fsdp=1, tensor=1),
      optimizer=dict(name='adamw', learning_rate=3e-2, schedule='constant', weight_decay=0.0, grad_clip_norm=1.0)))
  res = train(config, str(tmp_path / 'w'), task, devices=[jax.devices()[0]])
  rows = [json.loads(x) for x in open(tmp_path / 'w' / 'metrics.jsonl') if '"train/loss"' in x or 'loss' in x]
  margins = [r[k] for r in rows for k in r if k.endswith('rewards/margins')]
  assert margins and margins[-1] > margins[0] + 0.1, margins
  assert set(jax.tree.leaves(jax.tree.map(lambda x: x.shape[-1] == 4 or x.shape[0] == 4, nn.unbox(res.state.params))))
