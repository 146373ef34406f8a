"""LoRA adapters (jaxlab.nn.lora): exactness at init, merge, adapters off, remat/decode, and the trainer."""

import dataclasses
import functools

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxlab.nn import lora
from jaxlab.nn.encoders.bert import BertConfig, BertEncoder
from jaxlab.nn.lm.transformer import DecoderLM, TransformerConfig, init_cache
from jaxlab.nn.vision.vit import VarcViT, vit_config
from jaxlab.train import CheckpointError, Task, Trainer, train

CFG = TransformerConfig(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, mlp_dim=48,
                        max_len=32, tie_embeddings=False)
LORA = lora.LoraConfig(rank=4, alpha=8.)


@pytest.fixture(scope='module')
def lm():
  model = DecoderLM(CFG)
  tokens = jax.random.randint(jax.random.key(1), (2, 8), 0, CFG.vocab_size)
  boxed = jax.jit(model.init)(jax.random.key(0), tokens)['params']
  return model, boxed, nn.unbox(boxed), tokens


def _nonzero(adapters, seed=3, std=0.1):
  """Adapters with B (and A) perturbed, so the low-rank term is not zero."""
  leaves, treedef = jax.tree.flatten(nn.unbox(adapters))
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(treedef, [x + std * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


@functools.partial(jax.jit, static_argnames=('model', 'config', 'train'))
def _lora_logits(model, params, adapters, tokens, config=LORA, train=False, rng=None):
  rngs = None if rng is None else {'dropout': rng}
  return lora.apply(model, {'params': params}, adapters, tokens, config=config, train=train, rngs=rngs)


@functools.partial(jax.jit, static_argnames='model')
def _base_logits(model, params, tokens):
  return model.apply({'params': params}, tokens)


def test_init_is_peft_default_and_zero_init_gives_base_logits_exactly(lm):
  model, boxed, params, tokens = lm
  adapters = lora.init_adapters(jax.random.key(2), boxed, LORA)
  q = nn.unbox(adapters)['layers_0']['attn']['query']
  assert q['lora_a'].shape == (32, 4) and q['lora_b'].shape == (4, 4, 8)       # HeadsIn [embed | heads, hd]
  o = nn.unbox(adapters)['layers_1']['attn']['out']
  assert o['lora_a'].shape == (4, 8, 4) and o['lora_b'].shape == (4, 32)       # HeadsOut [heads, hd | embed]
  assert adapters['layers_0']['attn']['query']['lora_b'].names == (None, 'heads', 'kv')
  assert sorted(nn.unbox(adapters)['layers_0']['mlp']) == ['wi_gate', 'wi_up', 'wo']
  assert 'lm_head' not in adapters
  # PEFT kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)); B zero.
  a = np.asarray(nn.unbox(adapters)['layers_0']['mlp']['wo']['lora_a'])
  assert np.abs(a).max() <= 48 ** -0.5 and np.abs(a).max() > 0.8 * 48 ** -0.5
  assert all(not np.any(np.asarray(x['lora_b'])) for x in [q, o])
  # Zero B adds exact zeros: op by op the logits are the base logits bit for bit. Under jit they are too for
  # this model; XLA may fuse a deeper model's blocks differently (SmolLM2: rel. 1.4e-6, tests/io).
  np.testing.assert_array_equal(np.asarray(lora.apply(model, {'params': params}, adapters, tokens, config=LORA)),
                                np.asarray(model.apply({'params': params}, tokens)))
  base = _base_logits(model, params, tokens)
  np.testing.assert_array_equal(np.asarray(_lora_logits(model, params, adapters, tokens)), np.asarray(base))


def test_gaussian_init_and_target_subsets(lm):
  _, boxed, _, _ = lm
  g = nn.unbox(lora.init_adapters(jax.random.key(0), boxed,
                                  lora.LoraConfig(rank=16, init='gaussian', targets=('q', 'v'))))
  assert sorted(g['layers_0']['attn']) == ['query', 'value'] and 'mlp' not in g['layers_0']
  a = np.asarray(g['layers_0']['attn']['query']['lora_a'])
  assert abs(a.std() - 1 / 16) < 0.01
  exact = nn.unbox(lora.init_adapters(jax.random.key(0), boxed, lora.LoraConfig(targets=('lm_head',))))
  assert list(exact) == ['lm_head'] and exact['lm_head']['lora_b'].shape == (8, 64)
  with pytest.raises(ValueError, match='No projection kernel matches'):
    lora.init_adapters(jax.random.key(0), boxed, lora.LoraConfig(targets=('nope',)))


def test_merged_equals_unmerged_and_adapters_off_is_base(lm):
  model, boxed, params, tokens = lm
  adapters = _nonzero(lora.init_adapters(jax.random.key(2), boxed, LORA))
  base = _base_logits(model, params, tokens)
  with_lora = _lora_logits(model, params, adapters, tokens)
  assert float(jnp.max(jnp.abs(with_lora - base))) > 0.1                     # the adapters do something
  merged = _base_logits(model, lora.merge(params, adapters, LORA), tokens)
  rel = float(jnp.max(jnp.abs(merged - with_lora)) / jnp.max(jnp.abs(with_lora)))
  assert rel < 1e-5, rel
  # Adapters off: the same base arrays, no second copy; identical to the plain model.
  off = _lora_logits(model, params, None, tokens)
  np.testing.assert_array_equal(np.asarray(off), np.asarray(base))
  again = _base_logits(model, params, tokens)  # nothing leaks out of `active`
  np.testing.assert_array_equal(np.asarray(again), np.asarray(base))
  # merge leaves the input trees alone.
  np.testing.assert_array_equal(np.asarray(params['layers_0']['attn']['query']['kernel']),
                                np.asarray(nn.unbox(boxed)['layers_0']['attn']['query']['kernel']))


def test_remat_gradients_and_kv_cache_decode(lm):
  model, boxed, params, tokens = lm
  adapters = _nonzero(lora.init_adapters(jax.random.key(2), boxed, LORA))

  def grads(mod):
    loss = lambda a: jnp.mean(lora.apply(mod, {'params': params}, a, tokens, config=LORA) ** 2)  # noqa: E731
    return jax.jit(jax.grad(loss))(adapters)

  plain, remat = grads(model), grads(DecoderLM(dataclasses.replace(CFG, remat='full')))
  for x, y in zip(jax.tree.leaves(plain), jax.tree.leaves(remat)):
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-5, atol=1e-6 * float(jnp.abs(x).max()))
  assert float(jnp.abs(plain['layers_0']['attn']['query']['lora_b']).max()) > 0

  full = _lora_logits(model, params, adapters, tokens)

  @jax.jit
  def step(a, cache, t):
    return lora.apply(model, {'params': params, 'cache': cache}, a, t, config=LORA, decode=True,
                      mutable=['cache'])

  logits, state = step(adapters, init_cache(model, 2), tokens[:, :5])
  outs = [logits]
  for i in range(5, 8):
    logits, state = step(adapters, state['cache'], tokens[:, i:i + 1])
    outs.append(logits)
  np.testing.assert_allclose(np.asarray(jnp.concatenate(outs, 1)), np.asarray(full), atol=2e-5)


def test_dropout_needs_train_and_uses_the_dropout_rng(lm):
  model, boxed, params, tokens = lm
  cfg = dataclasses.replace(LORA, dropout=0.5)
  adapters = _nonzero(lora.init_adapters(jax.random.key(2), boxed, cfg))
  run = lambda train, seed: _lora_logits(model, params, adapters, tokens, cfg, train,  # noqa: E731
                                         jax.random.key(seed))
  eval_out = run(False, 0)
  np.testing.assert_array_equal(np.asarray(eval_out), np.asarray(_lora_logits(model, params, adapters, tokens, cfg)))
  assert float(jnp.max(jnp.abs(run(True, 0) - eval_out))) > 1e-3
  np.testing.assert_array_equal(np.asarray(run(True, 0)), np.asarray(run(True, 0)))
  assert float(jnp.max(jnp.abs(run(True, 0) - run(True, 1)))) > 1e-3


def test_bert_and_vit_projections():
  bert = BertEncoder(BertConfig(vocab_size=50, num_layers=1, embed_dim=16, num_heads=2, mlp_dim=32, max_len=16))
  tok = jax.random.randint(jax.random.key(0), (2, 6), 0, 50)
  vit = VarcViT(vit_config('tiny', canvas=8, num_layers=1, num_tasks=2, embed_dim=32, mlp_dim=32))
  canvas = jax.random.randint(jax.random.key(1), (2, 8, 8), 0, 12)
  cases = [(bert, (tok,), lambda out: out[0]), (vit, (canvas, jnp.array([0, 1])), lambda out: out)]
  for model, args, pick in cases:
    boxed = model.init(jax.random.key(2), *args)['params']
    params = nn.unbox(boxed)
    adapters = lora.init_adapters(jax.random.key(3), boxed, LORA)
    adapted = set(nn.unbox(adapters)['layers_0']['attn']) | set(nn.unbox(adapters)['layers_0']['mlp'])
    assert adapted == {'query', 'key', 'value', 'out', 'wi', 'wo'}
    fwd = jax.jit(lambda p, a: pick(lora.apply(model, {'params': p}, a, *args, config=LORA)))  # noqa: B023
    plain = jax.jit(lambda p: pick(model.apply({'params': p}, *args)))  # noqa: B023
    base = plain(params)
    # Zero B adds exact zeros; XLA fuses the post-norm blocks differently around the extra add (1 ulp seen).
    np.testing.assert_allclose(np.asarray(fwd(params, adapters)), np.asarray(base), rtol=1e-6, atol=1e-6)
    nonzero = _nonzero(adapters)
    out = fwd(params, nonzero)
    assert float(jnp.max(jnp.abs(out - base))) > 1e-2
    merged = plain(lora.merge(params, nonzero, LORA))
    assert float(jnp.max(jnp.abs(merged - out)) / jnp.max(jnp.abs(out))) < 1e-5


# ------------------------------------------------------------------------------------------------------
# Through the one trainer: state = adapters only, base weights a frozen argument.
# ------------------------------------------------------------------------------------------------------

def _trainer_config(total_steps, checkpoint_every=0):
  return ml_collections.ConfigDict(dict(
      seed=0, total_steps=total_steps, batch_size=4, log_every=1, eval_every=0, checkpoint_every=checkpoint_every,
      measure_peak=False, mesh=dict(data=1, fsdp=1, tensor=1),
      optimizer=dict(name='adamw', learning_rate=1e-2, schedule='constant', weight_decay=0.01,
                     grad_clip_norm=1.0)))


def _lora_task(lm, frozen_id='tiny-lm@seed0'):
  model, boxed, _, _ = lm
  cfg = dataclasses.replace(LORA, dropout=0.1)
  rng = np.random.default_rng(0)
  records = [{'tokens': rng.integers(0, CFG.vocab_size, 9).astype(np.int32)} for _ in range(32)]
  data = iter(grain.MapDataset.source(records).shuffle(seed=0).repeat(None).batch(4, drop_remainder=True))

  def loss_fn(adapters, batch, rng, base):
    logits = lora.apply(model, {'params': base}, adapters, batch['tokens'][:, :-1], config=cfg, train=True,
                        rngs={'dropout': rng})
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, batch['tokens'][:, 1:, None], axis=-1)
    return jnp.mean(nll), {}

  return Task(init_params=lambda r: lora.init_adapters(r, boxed, cfg), loss_fn=loss_fn, train_data=data,
              frozen_params=boxed, frozen_id=frozen_id)


def test_one_step_trains_only_adapters_and_resume_n_plus_n_equals_2n_exactly(lm, tmp_path):
  _, _, params, _ = lm
  before = jax.tree.map(np.array, params)
  one = [jax.devices()[0]]
  full = train(_trainer_config(2), str(tmp_path / 'full'), _lora_task(lm), devices=one)
  work = str(tmp_path / 'resumed')
  first = Trainer(_trainer_config(1, checkpoint_every=1), work, _lora_task(lm), devices=one)
  state = first.run().state
  # One step: the state holds the adapters only; the base weights passed in are bit-identical afterwards.
  assert jax.tree.structure(state.params) == jax.tree.structure(
      nn.unbox(_lora_task(lm).init_params(jax.random.key(0))))
  for x, y in zip(jax.tree.leaves(first.frozen[0]), jax.tree.leaves(before)):
    np.testing.assert_array_equal(np.asarray(x), y)
  assert float(jnp.abs(state.params['layers_0']['attn']['query']['lora_b']).max()) > 0   # B moved off zero
  # The optimiser state scales with the adapters: Adam's mu and nu per adapter leaf plus step counters.
  adapter_n, adapter_bytes = lora.count(state.params)
  opt_n, opt_bytes = lora.count(state.opt_state)
  model_n, _ = lora.count(params)
  assert opt_n <= 2 * adapter_n + 8 and opt_bytes <= 2 * adapter_bytes + 64
  assert opt_n < 0.4 * (2 * model_n)     # a full fine-tune's Adam state would be 2 * model_n
  adapter_shapes = {x.shape for x in jax.tree.leaves(state.params)} | {()}
  assert {x.shape for x in jax.tree.leaves(state.opt_state)} <= adapter_shapes   # no base-shaped leaf
  # Resume: 1 + 1 steps equal 2 uninterrupted steps bit for bit (adapters and optimiser state).
  res = train(_trainer_config(2, checkpoint_every=1), work, _lora_task(lm), devices=one)
  assert res.start_step == 1 and int(res.state.step) == 2
  for x, y in zip(jax.tree.leaves((res.state.params, res.state.opt_state)),
                  jax.tree.leaves((full.state.params, full.state.opt_state))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # The checkpoint names its base weights: resuming on other ones is refused loudly.
  with pytest.raises(CheckpointError, match='frozen weights'):
    Trainer(_trainer_config(3, checkpoint_every=1), work, _lora_task(lm, frozen_id='other-base'),
            devices=one).init_or_restore()
