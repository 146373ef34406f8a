"""jaxlab.interp.hooks and continuous tokens: real SmolLM2-135M against transformers with torch hooks,
plus jit/remat/mesh/decode/generate properties on a small random model.

The real-model tests share one compiled hooked forward (`_hooked`): every intervention is a traced
value, so capture, patching and head ablation differ only in their masks (an all-False mask is a
no-op) and the function compiles once for all of them.
"""

import dataclasses

import numpy as np
import pytest

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlab.interp import hooks as H
from jaxlab.nn import DecoderLM, gpt2_config, init_cache, llama_config
from jaxlab.nn.lm import generate as gen
from jaxlab.train import mesh as mesh_lib

torch = pytest.importorskip('torch')

PROMPT_A = 'The capital of France is Paris, and the capital of Italy is'
PROMPT_B = 'The capital of Germany is Paris, and the capital of Italy is'
PATCH_LAYER, HEAD_LAYER, HEAD = 15, 10, 4
CAPTURED = ('embeddings', 'layers_0/resid_post', 'layers_14/resid_post', 'layers_28/resid_post',
            'final_hidden')

_run = jax.jit(H.run, static_argnums=0)


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope='module')
def real(smollm2):
  cfg, params, _, tok = smollm2
  a, b = tok.encode(PROMPT_A).ids, tok.encode(PROMPT_B).ids
  assert len(a) == len(b)
  pos = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
  assert len(pos) == 1, pos   # one token differs: the country
  return DecoderLM(cfg), jax.tree.map(jnp.asarray, params), np.asarray([a, b], np.int32), pos[0]


def _hooked(real, patch_value=None, patch_row=None, zero_head_row=None):
  """One compiled forward of [A, B]: capture CAPTURED; replace layer-15 resid_pre at the patch position
  of `patch_row` with `patch_value`; zero head HEAD of layer 10 (z) in `zero_head_row`."""
  model, params, ids, pos = real
  cfg = model.config
  b, t = ids.shape
  patch_mask = np.zeros((b, t), bool)
  if patch_row is not None:
    patch_mask[patch_row, pos] = True
  head_mask = np.zeros((b, 1, cfg.num_heads), bool)
  if zero_head_row is not None:
    head_mask[zero_head_row, 0, HEAD] = True
  value = np.zeros((b, t, cfg.embed_dim), np.float32)
  if patch_value is not None:
    value[patch_row, pos] = patch_value
  hooks = H.merge(H.capture(*CAPTURED, f'layers_{PATCH_LAYER}/resid_pre'),
                  H.replace(f'layers_{PATCH_LAYER}/resid_pre', value, where=patch_mask),
                  H.replace(f'layers_{HEAD_LAYER}/attn/z', 0., where=head_mask))
  logits, captured = _run(model, {'params': params}, jnp.asarray(ids), hooks=hooks)
  return np.asarray(logits), jax.tree.map(np.asarray, captured)


@pytest.fixture(scope='module')
def base(real):
  """The hooked forward with every mask False: (logits, captures) of the unmodified model."""
  return _hooked(real)


def _hf_forward(hf, ids, pre_hooks=()):
  handles = [module.register_forward_pre_hook(fn, with_kwargs=True) for module, fn in pre_hooks]
  try:
    with torch.no_grad():
      out = hf(torch.tensor(ids), output_hidden_states=True)
  finally:
    for h in handles:
      h.remove()
  return out.logits.numpy(), [h.numpy() for h in out.hidden_states]


def _replace_input(fn):
  """A torch forward pre-hook replacing a module's first input (positional or `hidden_states`)."""
  def hook(module, args, kwargs):
    if args:
      return (fn(args[0].clone()),) + tuple(args[1:]), kwargs
    kwargs = dict(kwargs)
    kwargs['hidden_states'] = fn(kwargs['hidden_states'].clone())
    return args, kwargs
  return hook


def test_captured_residuals_equal_transformers_hidden_states(real, base, smollm2_hf):
  logits, cap = base
  ref_logits, hs = _hf_forward(smollm2_hf, real[2])
  # hidden_states[0] = embeddings, [i + 1] = output of layer i, [-1] = final norm output.
  pairs = {'embeddings': hs[0], 'layers_0/resid_post': hs[1], 'layers_14/resid_post': hs[15],
           'layers_28/resid_post': hs[29], f'layers_{PATCH_LAYER}/resid_pre': hs[PATCH_LAYER],
           'final_hidden': hs[-1]}
  for site, ref in pairs.items():
    assert cap[site].shape == ref.shape, site
    assert _rel(cap[site], ref) <= 1e-4, (site, _rel(cap[site], ref))
  assert _rel(logits, ref_logits) <= 1e-4


def test_residual_patch_matches_transformers(real, base, smollm2_hf):
  """Row 0 (prompt A) gets prompt B's layer-15 residual at the one differing position."""
  _, _, ids, pos = real
  base, cap = base
  patched, _ = _hooked(real, patch_value=cap[f'layers_{PATCH_LAYER}/resid_pre'][1, pos], patch_row=0)
  np.testing.assert_array_equal(patched[1], base[1])                   # row B untouched
  _, hs = _hf_forward(smollm2_hf, ids[1:])
  donor = torch.from_numpy(hs[PATCH_LAYER][0, pos].copy())             # transformers' own B residual

  def patch(h):
    h[0, pos] = donor
    return h

  ref, _ = _hf_forward(smollm2_hf, ids[:1],
                       [(smollm2_hf.model.layers[PATCH_LAYER], _replace_input(patch))])
  assert _rel(patched[0], ref[0]) <= 1e-4, _rel(patched[0], ref[0])
  assert _rel(patched[0, pos:], base[0, pos:]) > 1e-2                 # the patch did something
  np.testing.assert_allclose(patched[0, :pos], base[0, :pos], atol=1e-5)   # causal: earlier unchanged


def test_zeroed_head_matches_transformers(real, base, smollm2_hf):
  model, _, ids, _ = real
  hd = model.config.resolved_head_dim
  base, _ = base
  ablated, _ = _hooked(real, zero_head_row=0)

  def zero(h):  # o_proj's input is [batch, length, heads * head_dim], head-major.
    h[..., HEAD * hd:(HEAD + 1) * hd] = 0.
    return h

  ref, _ = _hf_forward(smollm2_hf, ids[:1],
                       [(smollm2_hf.model.layers[HEAD_LAYER].self_attn.o_proj, _replace_input(zero))])
  assert _rel(ablated[0], ref[0]) <= 1e-4, _rel(ablated[0], ref[0])
  assert _rel(ablated[0], base[0]) > 1e-3
  np.testing.assert_array_equal(ablated[1], base[1])


def test_continuous_tokens_equal_to_embeddings_reproduce_logits_exactly(real, base):
  model, params, ids, _ = real
  table = np.asarray(params['embed']['embedding'])
  mask = np.zeros(ids.shape, bool)
  mask[0, 1::2] = True
  mask[1, :5] = True
  fwd = jax.jit(model.apply)
  plain = fwd({'params': params}, jnp.asarray(ids))
  np.testing.assert_array_equal(np.asarray(plain), base[0])   # and hooks that do nothing change nothing
  dummy = np.where(mask, 0, ids)                          # ids under the mask are ignored
  cont = fwd({'params': params}, jnp.asarray(dummy), inputs_embeds=jnp.asarray(table[ids]),
             embeds_mask=jnp.asarray(mask))
  np.testing.assert_array_equal(np.asarray(cont), np.asarray(plain))


# ---------------------------------------------------------------------------------------------------
# Small random models: jit, remat, mesh, decode, generation.
# ---------------------------------------------------------------------------------------------------

TINY = llama_config(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, mlp_dim=64,
                    max_len=32)
TOKENS = np.asarray([[1, 5, 9, 5, 9, 3, 7, 2], [2, 4, 6, 8, 10, 12, 14, 16]], np.int32)


def _tiny(cfg=TINY):
  model = DecoderLM(cfg)
  return model, nn.unbox(model.init(jax.random.key(0), jnp.asarray(TOKENS))['params'])


def test_new_values_do_not_recompile():
  model, params = _tiny()
  # A function of its own: jit wrappers of one Python function (e.g. `_run`) share one cache.
  f = jax.jit(lambda m, v, t, hooks: H.run(m, v, t, hooks=hooks), static_argnums=0)
  rng = np.random.default_rng(0)
  outs = []
  for _ in range(3):
    hooks = H.merge(H.replace('layers_1/resid_pre', rng.normal(size=(2, 8, 32)).astype(np.float32),
                              where=rng.random((2, 8)) < 0.5),
                    H.add('layers_0/mlp_out', rng.normal(size=(32,)).astype(np.float32)),
                    H.replace('layers_0/attn/z', 0., where=rng.random((1, 1, 4)) < 0.5),
                    H.capture('final_hidden'))
    outs.append(f(model, {'params': params}, jnp.asarray(TOKENS), hooks)[0])
  assert f._cache_size() == 1
  assert not np.allclose(outs[0], outs[1])


def test_mask_and_index_forms_agree_and_batch():
  model, params = _tiny()
  v = np.random.default_rng(1).normal(size=(2, 2, 32)).astype(np.float32)
  idx = np.asarray([[1, 6], [0, 3]])                      # per-row positions
  mask = np.zeros((2, 8), bool)
  full = np.zeros((2, 8, 32), np.float32)
  for r in range(2):
    mask[r, idx[r]] = True
    full[r, idx[r]] = v[r]
  for kind in (H.replace, H.add):
    by_mask = _run(model, {'params': params}, jnp.asarray(TOKENS), hooks=kind('layers_1/resid_mid', full, mask))
    by_idx = _run(model, {'params': params}, jnp.asarray(TOKENS),
                  hooks=kind('layers_1/resid_mid', v, idx, index=True))
    np.testing.assert_allclose(by_idx[0], by_mask[0], atol=1e-6)
    # Row-wise: a batch equals its rows run one by one.
    for r in range(2):
      one = _run(model, {'params': params}, jnp.asarray(TOKENS[r:r + 1]),
                 hooks=kind('layers_1/resid_mid', v[r:r + 1], idx[r:r + 1], index=True))
      np.testing.assert_allclose(one[0][0], by_idx[0][r], atol=1e-5)


def test_head_contributions_sum_to_attention_output():
  cfg = gpt2_config(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, mlp_dim=64, max_len=32)
  model, params = _tiny(cfg)
  bias = np.asarray(params['layers_1']['attn']['out']['bias'])
  assert np.abs(bias).sum() == 0  # zero-initialised: give it a value so the test sees it
  params = jax.tree.map(lambda x: x, params)
  params['layers_1']['attn']['out']['bias'] = jnp.linspace(-1., 1., 32)
  base = model.apply({'params': params}, jnp.asarray(TOKENS))
  logits, cap = _run(model, {'params': params}, jnp.asarray(TOKENS),
                     hooks=H.capture('layers_1/attn/z', 'layers_1/attn/head_out', 'layers_1/attn_out'))
  np.testing.assert_allclose(logits, base, atol=1e-5)     # hooking head_out does not change the model
  np.testing.assert_allclose(cap['layers_1/attn/head_out'].sum(2) + np.linspace(-1., 1., 32),
                             cap['layers_1/attn_out'], atol=1e-5)
  kernel = np.asarray(params['layers_1']['attn']['out']['kernel'])   # [heads, head_dim, embed]
  np.testing.assert_allclose(np.einsum('bthd,hde->bthe', cap['layers_1/attn/z'], kernel),
                             cap['layers_1/attn/head_out'], atol=1e-5)


def test_hooks_under_remat_match_plain():
  model, params = _tiny()
  remat = DecoderLM(dataclasses.replace(TINY, remat='full'))
  hooks = H.merge(H.capture('layers_0/resid_post', 'layers_1/attn/z'),
                  H.replace('layers_1/resid_pre', np.ones((32,), np.float32), where=np.eye(8, dtype=bool)[None, 3]))
  a = _run(model, {'params': params}, jnp.asarray(TOKENS), hooks=hooks)
  b = _run(remat, {'params': params}, jnp.asarray(TOKENS), hooks=hooks)
  np.testing.assert_allclose(b[0], a[0], atol=1e-6)
  for site in a[1]:
    np.testing.assert_allclose(b[1][site], a[1][site], atol=1e-6)
  # Gradients flow through a replaced value (e.g. optimising a steering vector).
  grad = jax.grad(lambda v: _run(remat, {'params': params}, jnp.asarray(TOKENS),
                                 hooks=H.add('layers_1/resid_pre', v))[0].sum())(jnp.zeros(32))
  assert np.abs(grad).sum() > 0


def test_hooks_under_a_mesh_match_one_device():
  model, params = _tiny()
  hooks = H.merge(H.capture('layers_1/resid_post', 'layers_0/attn/head_out'),
                  H.replace('layers_0/resid_mid', np.full((32,), 0.5, np.float32), where=(np.arange(8) % 3 == 2)[None]))
  tokens = jnp.asarray(np.concatenate([TOKENS, TOKENS[:, ::-1]]))   # batch 4 over data x fsdp
  ref = _run(model, {'params': params}, tokens, hooks=hooks)
  mesh = mesh_lib.make_mesh({'data': 2, 'fsdp': 2, 'tensor': 2})
  with jax.set_mesh(mesh), nn.logical_axis_rules(mesh_lib.DEFAULT_RULES):
    got = jax.jit(H.run, static_argnums=0)(model, {'params': params}, tokens, hooks=hooks)
  assert len(got[1]['layers_1/resid_post'].sharding.device_set) == 8
  np.testing.assert_allclose(got[0], ref[0], atol=1e-5)
  for site in ref[1]:
    np.testing.assert_allclose(got[1][site], ref[1][site], atol=1e-5)


def test_decode_with_hooks_matches_full_forward():
  """Prefill 5 tokens then decode 3 one by one, with a steering add and a capture at every call."""
  model, params = _tiny()
  steer = np.random.default_rng(2).normal(size=(32,)).astype(np.float32)
  hooks = H.merge(H.add('layers_0/resid_post', steer), H.capture('layers_1/resid_mid'))
  full, cap = _run(model, {'params': params}, jnp.asarray(TOKENS), hooks=hooks)
  step = jax.jit(H.run, static_argnums=0, static_argnames=('decode', 'mutable'))
  cache = init_cache(model, 2)
  logits, got, state = step(model, {'params': params, 'cache': cache}, jnp.asarray(TOKENS[:, :5]),
                            decode=True, hooks=hooks, mutable=('cache',))
  np.testing.assert_allclose(logits, full[:, :5], atol=1e-5)
  np.testing.assert_allclose(got['layers_1/resid_mid'], cap['layers_1/resid_mid'][:, :5], atol=1e-5)
  for t in range(5, 8):
    logits, got, state = step(model, {'params': params, 'cache': state['cache']},
                              jnp.asarray(TOKENS[:, t:t + 1]), decode=True, hooks=hooks, mutable=('cache',))
    np.testing.assert_allclose(logits[:, 0], full[:, t], atol=1e-5)
    np.testing.assert_allclose(got['layers_1/resid_mid'][:, 0], cap['layers_1/resid_mid'][:, t], atol=1e-5)
  plain = model.apply({'params': params}, jnp.asarray(TOKENS))
  assert not np.allclose(plain, full, atol=1e-3)          # the steering changed the model


def test_generate_with_continuous_prompt_and_steering():
  model, params = _tiny()
  prompts, prompt_mask = gen.left_pad([[3, 1, 4, 1, 5], [9, 2, 6]])
  table = np.asarray(params['embed']['embedding'])
  embeds_mask = np.asarray(prompt_mask) & (np.arange(5)[None] % 2 == 0)
  ids_out = gen.generate(model, params, prompts, prompt_mask, max_new_tokens=4)
  dummy = np.where(embeds_mask, 0, np.asarray(prompts))
  cont_out = gen.generate(model, params, jnp.asarray(dummy), prompt_mask, max_new_tokens=4,
                          inputs_embeds=jnp.asarray(table[np.asarray(prompts)]),
                          embeds_mask=jnp.asarray(embeds_mask))
  np.testing.assert_array_equal(cont_out.tokens, ids_out.tokens)
  np.testing.assert_allclose(cont_out.logprobs, ids_out.logprobs, atol=1e-6)
  # A steering vector applied at the prefill and every step: greedy tokens are the argmax of the
  # steered model run over prompt + generated tokens.
  steer = H.add('layers_1/resid_pre', 3. * np.random.default_rng(3).normal(size=(32,)).astype(np.float32))
  out = gen.generate(model, params, prompts, prompt_mask, max_new_tokens=4, hooks=steer)
  seq = jnp.concatenate([prompts, out.tokens], axis=1)
  logits = jax.jit(model.apply)({'params': params}, seq, padding=jnp.concatenate(
      [prompt_mask, jnp.ones_like(out.tokens, bool)], axis=1), hooks=steer)
  np.testing.assert_array_equal(np.asarray(logits[:, 4:-1].argmax(-1)), np.asarray(out.tokens))
  assert not np.array_equal(out.tokens, ids_out.tokens)


def test_inputs_embeds_are_trainable_and_only_masked_positions_read():
  model, params = _tiny()
  mask = np.zeros((2, 8), bool)
  mask[:, 2] = True
  emb = jnp.zeros((2, 8, 32))
  grad = jax.jit(jax.grad(lambda e: model.apply({'params': params}, jnp.asarray(TOKENS), inputs_embeds=e,
                                        embeds_mask=jnp.asarray(mask)).sum()))(emb)
  norms = np.abs(np.asarray(grad)).sum(-1)
  assert np.all(norms[:, 2] > 0) and np.all(norms[~mask] == 0)
  # Every position continuous: tokens may be None.
  table = np.asarray(params['embed']['embedding'])
  fwd = jax.jit(model.apply)
  np.testing.assert_array_equal(fwd({'params': params}, None, inputs_embeds=jnp.asarray(table[TOKENS])),
                                fwd({'params': params}, jnp.asarray(TOKENS)))


def test_unknown_site_and_bad_hooks_are_errors():
  model, params = _tiny()
  with pytest.raises(ValueError, match='Unknown hook sites'):
    model.apply({'params': params}, jnp.asarray(TOKENS), hooks=H.capture('layers_2/resid_pre'))
  with pytest.raises(ValueError, match='two interventions'):
    H.merge(H.add('embeddings', 1.), H.replace('embeddings', 0.))
  with pytest.raises(ValueError, match='captures'):
    gen.generate(model, params, jnp.asarray(TOKENS), max_new_tokens=2, hooks=H.capture('embeddings'))
  assert len(H.hook_sites(TINY)) == 2 + 2 * 7
