"""Tests for jaxlab.nn.lm.transformer: decoding, padding, causality, pinned parameter tree, axis names."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import flax.linen as nn

from jaxlab.nn import (DecoderLM, TransformerConfig, gpt2_config, init_cache, llama_config,
                       positions_from_padding)

P = jax.sharding.PartitionSpec
TINY = dict(vocab_size=61, num_layers=2, embed_dim=32, num_heads=4, mlp_dim=64, max_len=16)
CONFIGS = {
    'llama': llama_config(num_kv_heads=2, **TINY),
    'gpt2': gpt2_config(**TINY),
}
LENGTH = 8


@functools.lru_cache(maxsize=None)
def _model(name):
  """(model, params, jitted forward, jitted decode step) for a tiny config, built once per session."""
  model = DecoderLM(CONFIGS[name])
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((2, LENGTH), jnp.int32))['params']
  params = jax.tree.map(lambda a: a + 0.02, params)  # make biases / norm offsets non-trivial

  @jax.jit
  def forward(tokens, padding=None, overrides=None):
    return model.apply({'params': params}, tokens, padding=padding, attention_overrides=overrides)

  @jax.jit
  def step(cache, tokens, padding=None, positions=None):
    return model.apply({'params': params, 'cache': cache}, tokens, decode=True, padding=padding,
                       positions=positions, mutable=['cache'])
  return model, params, forward, step


def _tokens(batch=2, length=LENGTH, seed=1):
  return jax.random.randint(jax.random.key(seed), (batch, length), 0, 61, dtype=jnp.int32)


@pytest.mark.parametrize('name', ['llama', 'gpt2'])
def test_kv_cache_decoding_matches_full_forward(name):
  model, _, forward, step = _model(name)
  tokens = _tokens()
  full = forward(tokens)
  assert full.shape == (2, LENGTH, 61) and full.dtype == jnp.float32
  for prefill in (1, 3):  # 1 = pure token-by-token decoding
    cache = init_cache(model, 2)
    logits, state = step(cache, tokens[:, :prefill])
    outs = [logits]
    for i in range(prefill, LENGTH):
      logits, state = step(state['cache'], tokens[:, i:i + 1])
      outs.append(logits)
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, atol=1e-5)
    np.testing.assert_array_equal(state['cache']['position_index'], [LENGTH, LENGTH])
    assert int(state['cache']['layers_1']['attn']['cache_index']) == LENGTH


@pytest.mark.parametrize('name', ['llama', 'gpt2'])
def test_init_with_decode_creates_zero_cache(name):
  model = DecoderLM(CONFIGS[name])
  cache = jax.eval_shape(lambda: model.init(jax.random.key(0), _tokens(), decode=True))['cache']
  kv = CONFIGS[name].resolved_kv_heads
  assert cache['layers_0']['attn']['cached_key'].shape == (2, 16, kv, 8)
  zeros = init_cache(model, 2)
  assert jax.tree.structure(zeros) == jax.tree.structure(cache)
  assert not any(np.asarray(a).any() for a in jax.tree.leaves(zeros))


@pytest.mark.parametrize('name', ['llama', 'gpt2'])
@pytest.mark.parametrize('explicit_positions', [False, True])
def test_left_padded_batched_decode_matches_unpadded(name, explicit_positions):
  model, _, forward, step = _model(name)
  tokens = _tokens(length=LENGTH)
  # Row 0: 5-token prompt; row 1: 3-token prompt left-padded by 2. Then 3 decoded tokens each.
  pad = 2
  prompt_padding = jnp.array([[True] * 5, [False] * pad + [True] * 3])
  prompt = tokens[:, :5]
  positions = positions_from_padding(prompt_padding) if explicit_positions else None
  logits, state = step(init_cache(model, 2), prompt, prompt_padding, positions)
  outs = [logits]
  for i in range(5, LENGTH):
    pos = (jnp.array([[i], [i - pad]]) if explicit_positions else None)
    logits, state = step(state['cache'], tokens[:, i:i + 1], None, pos)
    outs.append(logits)
  decoded = jnp.concatenate(outs, axis=1)
  np.testing.assert_array_equal(state['cache']['position_index'], [LENGTH, LENGTH - pad])
  np.testing.assert_allclose(decoded[0], forward(tokens[:1])[0], atol=1e-5)
  unpadded_row1 = tokens[1:, pad:]
  np.testing.assert_allclose(decoded[1, pad:], forward(unpadded_row1)[0], atol=1e-5)
  # The same padding in a training-mode forward pass.
  padded = forward(tokens, jnp.concatenate([prompt_padding, jnp.ones((2, 3), bool)], 1))
  np.testing.assert_allclose(padded[1, pad:], forward(unpadded_row1)[0], atol=1e-5)


@pytest.mark.parametrize('name', ['llama', 'gpt2'])
def test_causality(name):
  _, _, forward, _ = _model(name)
  tokens = _tokens()
  changed = tokens.at[:, 5].set((tokens[:, 5] + 1) % 61)
  a, b = forward(tokens), forward(changed)
  np.testing.assert_array_equal(a[:, :5], b[:, :5])
  assert not np.allclose(a[:, 5:], b[:, 5:])


PINNED = {
    'llama': [
        ('embed/embedding', (61, 32)),
        ('final_norm/scale', (32,)),
        ('layers_0/attn/key/kernel', (32, 2, 8)),
        ('layers_0/attn/out/kernel', (4, 8, 32)),
        ('layers_0/attn/query/kernel', (32, 4, 8)),
        ('layers_0/attn/value/kernel', (32, 2, 8)),
        ('layers_0/attn_norm/scale', (32,)),
        ('layers_0/mlp/wi_gate/kernel', (32, 64)),
        ('layers_0/mlp/wi_up/kernel', (32, 64)),
        ('layers_0/mlp/wo/kernel', (64, 32)),
        ('layers_0/mlp_norm/scale', (32,)),
        ('layers_1/attn/key/kernel', (32, 2, 8)),
        ('layers_1/attn/out/kernel', (4, 8, 32)),
        ('layers_1/attn/query/kernel', (32, 4, 8)),
        ('layers_1/attn/value/kernel', (32, 2, 8)),
        ('layers_1/attn_norm/scale', (32,)),
        ('layers_1/mlp/wi_gate/kernel', (32, 64)),
        ('layers_1/mlp/wi_up/kernel', (32, 64)),
        ('layers_1/mlp/wo/kernel', (64, 32)),
        ('layers_1/mlp_norm/scale', (32,)),
    ],
    'gpt2': [
        ('embed/embedding', (61, 32)),
        ('final_norm/bias', (32,)),
        ('final_norm/scale', (32,)),
        ('layers_0/attn/key/bias', (4, 8)),
        ('layers_0/attn/key/kernel', (32, 4, 8)),
        ('layers_0/attn/out/bias', (32,)),
        ('layers_0/attn/out/kernel', (4, 8, 32)),
        ('layers_0/attn/query/bias', (4, 8)),
        ('layers_0/attn/query/kernel', (32, 4, 8)),
        ('layers_0/attn/value/bias', (4, 8)),
        ('layers_0/attn/value/kernel', (32, 4, 8)),
        ('layers_0/attn_norm/bias', (32,)),
        ('layers_0/attn_norm/scale', (32,)),
        ('layers_0/mlp/wi/bias', (64,)),
        ('layers_0/mlp/wi/kernel', (32, 64)),
        ('layers_0/mlp/wo/bias', (32,)),
        ('layers_0/mlp/wo/kernel', (64, 32)),
        ('layers_0/mlp_norm/bias', (32,)),
        ('layers_0/mlp_norm/scale', (32,)),
        ('layers_1/attn/key/bias', (4, 8)),
        ('layers_1/attn/key/kernel', (32, 4, 8)),
        ('layers_1/attn/out/bias', (32,)),
        ('layers_1/attn/out/kernel', (4, 8, 32)),
        ('layers_1/attn/query/bias', (4, 8)),
        ('layers_1/attn/query/kernel', (32, 4, 8)),
        ('layers_1/attn/value/bias', (4, 8)),
        ('layers_1/attn/value/kernel', (32, 4, 8)),
        ('layers_1/attn_norm/bias', (32,)),
        ('layers_1/attn_norm/scale', (32,)),
        ('layers_1/mlp/wi/bias', (64,)),
        ('layers_1/mlp/wi/kernel', (32, 64)),
        ('layers_1/mlp/wo/bias', (32,)),
        ('layers_1/mlp/wo/kernel', (64, 32)),
        ('layers_1/mlp_norm/bias', (32,)),
        ('layers_1/mlp_norm/scale', (32,)),
        ('pos_embed/embedding', (16, 32)),
    ],
}


def _param_table(config):
  abstract = jax.eval_shape(DecoderLM(config).init, jax.random.key(0), _tokens())['params']
  leaves = jax.tree_util.tree_flatten_with_path(nn.unbox(abstract))[0]
  return sorted(('/'.join(k.key for k in path), tuple(x.shape)) for path, x in leaves)


@pytest.mark.parametrize('name', ['llama', 'gpt2'])
def test_pinned_parameter_tree(name):
  table = _param_table(CONFIGS[name])
  assert table == PINNED[name]
  assert sum(int(np.prod(s)) for _, s in table) == CONFIGS[name].num_params()


def test_tied_vs_untied_embeddings():
  tied = dict(_param_table(CONFIGS['llama']))
  untied_config = llama_config(num_kv_heads=2, tie_embeddings=False, **TINY)
  untied = dict(_param_table(untied_config))
  assert set(untied) - set(tied) == {'lm_head/kernel'} and set(tied) <= set(untied)
  assert untied['lm_head/kernel'] == (32, 61)
  assert sum(int(np.prod(s)) for s in untied.values()) == untied_config.num_params()
  logits = DecoderLM(untied_config).apply(
      DecoderLM(untied_config).init(jax.random.key(0), _tokens()), _tokens())
  assert logits.shape == (2, LENGTH, 61)


@pytest.mark.parametrize('name', ['llama', 'gpt2'])
def test_logical_axis_names(name):
  config = dataclasses.replace(CONFIGS[name], tie_embeddings=False)
  abstract = jax.eval_shape(DecoderLM(config).init, jax.random.key(0), _tokens())['params']
  spec = nn.get_partition_spec(abstract)
  layer = spec['layers_0']
  assert spec['embed']['embedding'] == P('vocab', 'embed')
  assert spec['lm_head']['kernel'] == P('embed', 'vocab')
  assert spec['final_norm']['scale'] == P('embed')
  assert layer['attn']['query']['kernel'] == P('embed', 'heads', 'kv')
  assert layer['attn']['key']['kernel'] == P('embed', 'heads', 'kv')
  assert layer['attn']['out']['kernel'] == P('heads', 'kv', 'embed')
  wi = 'wi_gate' if name == 'llama' else 'wi'
  assert layer['mlp'][wi]['kernel'] == P('embed', 'mlp')
  assert layer['mlp']['wo']['kernel'] == P('mlp', 'embed')
  if name == 'gpt2':
    assert spec['pos_embed']['embedding'] == P('vocab', 'embed')
    assert layer['attn']['query']['bias'] == P('heads', 'kv')
    assert layer['mlp']['wi']['bias'] == P('mlp')


@pytest.mark.parametrize('name', ['llama', 'gpt2'])
def test_attention_overrides(name):
  model, params, forward, _ = _model(name)
  tokens = _tokens()
  logits, state = model.apply({'params': params}, tokens, mutable=['intermediates'])
  weights = [state['intermediates'][f'layers_{i}']['attn']['attention_weights'][0] for i in range(2)]
  assert weights[0].shape == (2, 4, LENGTH, LENGTH)
  np.testing.assert_allclose(weights[1].sum(-1), 1., rtol=1e-5)
  all_heads = jnp.ones(4, bool)
  same = forward(tokens, overrides=[(w, all_heads) for w in weights])
  np.testing.assert_allclose(same, logits, atol=1e-5)
  # Overriding one head of layer 1 with uniform causal attention changes the logits.
  uniform = jnp.tril(jnp.ones((LENGTH, LENGTH))) / jnp.arange(1, LENGTH + 1)[:, None]
  one_head = jnp.arange(4) == 2
  changed = forward(tokens, overrides=[None, (jnp.broadcast_to(uniform, weights[1].shape), one_head)])
  assert not np.allclose(changed, logits, atol=1e-4)
  with pytest.raises(ValueError, match='attention_overrides'):
    model.apply({'params': params}, tokens, attention_overrides=[None])


@pytest.mark.parametrize('overrides, field', [
    (dict(norm='batch'), 'norm'),
    (dict(mixer='hyena'), 'mixer'),
    (dict(mlp='relu'), 'mlp'),
    (dict(pos='alibi'), 'pos'),
    (dict(num_heads=4, num_kv_heads=3), 'num_kv_heads'),
    (dict(embed_dim=30, num_heads=4), 'embed_dim'),
    (dict(num_layers=0), 'num_layers'),
    (dict(dropout_rate=1.5), 'dropout_rate'),
    (dict(dtype='float33'), 'dtype'),
])
def test_config_validation(overrides, field):
  with pytest.raises(ValueError, match=field):
    llama_config(**{**TINY, 'num_kv_heads': 2, **overrides})


def test_config_resolution_and_factories():
  c = TransformerConfig(vocab_size=10, num_layers=1, embed_dim=16, num_heads=4)
  assert (c.resolved_head_dim, c.resolved_kv_heads, c.resolved_mlp_dim) == (4, 4, 64)
  g = gpt2_config()
  assert (g.norm, g.mlp, g.pos, g.use_bias, g.tie_embeddings) == ('layer', 'gelu', 'learned', True, True)
  assert g.num_params() == 124_439_808  # GPT-2 small, tied.


def test_dropout_and_bfloat16_run():
  config = llama_config(num_kv_heads=2, dropout_rate=0.1, dtype='bfloat16', **TINY)
  model = DecoderLM(config)
  variables = jax.jit(model.init)(jax.random.key(0), _tokens())
  assert all(a.dtype == jnp.float32 for a in jax.tree.leaves(nn.unbox(variables['params'])))
  apply = jax.jit(lambda v, t, r: model.apply(v, t, deterministic=False, return_hidden=True,
                                              rngs={'dropout': r}))
  logits, hidden = apply(variables, _tokens(), jax.random.key(2))
  assert not np.allclose(logits, apply(variables, _tokens(), jax.random.key(3))[0])
  assert logits.dtype == jnp.float32 and hidden.shape == (2, LENGTH, 32)
  assert np.all(np.isfinite(logits))
