"""generate(): cached greedy decoding equals uncached argmax; left padding is invisible; eos stops."""

import numpy as np

import jax
import jax.numpy as jnp

from jaxlab.nn import DecoderLM, llama_config
from jaxlab.nn.lm.generate import (_greedy, _next_token, _token_logprob, cache_buckets, generate, left_pad,
                                   nucleus_threshold, nucleus_threshold_sort, sample_logits)

CFG = llama_config(vocab_size=37, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2,
                   mlp_dim=64, max_len=64)


def _setup():
  model = DecoderLM(CFG)
  params = model.init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))['params']
  return model, jax.tree.map(lambda x: x * 4 if x.ndim > 1 else x, params)  # sharper logits


def _greedy_uncached(model, params, ids, n):
  """Full forward passes without a cache over a right-padded buffer (causal: padding is harmless)."""
  ids = list(ids)
  apply = jax.jit(model.apply)
  buf = np.zeros((1, 16), np.int32)
  for _ in range(n):
    buf[0, :len(ids)] = ids
    logits = apply({'params': params}, jnp.asarray(buf))
    ids.append(int(jnp.argmax(logits[0, len(ids) - 1])))
  return ids[-n:]


def test_greedy_matches_uncached_and_padding_is_invisible():
  model, params = _setup()
  prompts = [[3, 5, 7, 9, 11], [4, 2]]
  toks, mask = left_pad(prompts)
  out = generate(model, params, toks, mask, max_new_tokens=4)
  for p, row in zip(prompts, np.asarray(out.tokens)):
    assert row.tolist() == _greedy_uncached(model, params, p, 4)
  assert np.asarray(out.mask).all() and out.lengths.tolist() == [4, 4]


def test_eos_stops_each_sequence():
  model, params = _setup()
  toks, mask = left_pad([[3, 5, 7], [1, 2, 3, 4]])
  free = generate(model, params, toks, mask, max_new_tokens=5)
  eos = int(free.tokens[0, 1])
  out = generate(model, params, toks, mask, max_new_tokens=5, eos_id=eos, pad_id=0)
  t, m = np.asarray(out.tokens), np.asarray(out.mask)
  assert m[0].tolist() == [True, True, False, False, False] and t[0, 1] == eos
  first = np.flatnonzero(np.asarray(free.tokens[1]) == eos)
  stop = first[0] + 1 if len(first) else 5
  assert m[1].sum() == stop


def test_top_p_and_temperature():
  logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
  keys = jax.random.split(jax.random.key(1), 200)
  draws = np.asarray(jax.vmap(lambda k: sample_logits(logits, k, 1.0, 0.7)[0])(keys))
  assert set(draws) <= {0, 1} and len(set(draws)) == 2   # top-p 0.7 keeps {0.5, 0.3}
  assert int(sample_logits(logits, keys[0], 0., 1.)[0]) == 0  # temperature 0 = greedy


def test_stop_sequences_and_inactive_rows():
  model, params = _setup()
  toks, mask = left_pad([[3, 5, 7], [1, 2, 3, 4], [6, 6]])
  free = np.asarray(generate(model, params, toks, mask, max_new_tokens=6).tokens)
  stop = free[0, 1:3].tolist()  # row 0 emits this pair at steps 1-2: it must stop after step 2
  out = generate(model, params, toks, mask, max_new_tokens=6, stop_sequences=[stop, [99]],
                 active=jnp.asarray([True, True, False]))
  t, m = np.asarray(out.tokens), np.asarray(out.mask)
  assert m[0].tolist() == [True] * 3 + [False] * 3 and t[0, :3].tolist() == free[0, :3].tolist()
  # Row 1 stops at the first occurrence of the pair in its own free-running output (or never).
  row = free[1].tolist()
  hits = [i + 2 for i in range(5) if row[i:i + 2] == stop]
  assert m[1].sum() == (hits[0] if hits else 6) and t[1, :m[1].sum()].tolist() == row[:m[1].sum()]
  assert not m[2].any() and int(out.lengths[2]) == 0  # an inactive row generates nothing


def test_nucleus_bisection_equals_sort():
  """The fast nucleus threshold (bisection over the float order) is the sort-based one, ties included."""
  for seed, scale in ((0, 1.), (1, 4.), (2, 0.1)):
    x = jax.random.normal(jax.random.key(seed), (3, 500)) * scale
    x = x.at[0, :7].set(x[0, 0]).at[1, 100:].set(-3.)  # tied logits, a long flat tail
    for p in (0.01, 0.3, 0.7, 0.95):
      np.testing.assert_array_equal(np.asarray(nucleus_threshold(x, p)), np.asarray(nucleus_threshold_sort(x, p)))


def test_sampler_paths():
  """Trace-time samplers agree with sample_logits; a vanishing nucleus samples the greedy tokens."""
  logits = jax.random.normal(jax.random.key(3), (4, 50)) * 3
  key = jax.random.key(4)
  t, p = jnp.float32(0.8), jnp.float32(0.6)
  assert np.array_equal(_next_token(logits, key, t, p, 'nucleus'), sample_logits(logits, key, t, p))
  assert np.array_equal(_next_token(logits, key, t, p, 'greedy'), jnp.argmax(logits, -1))
  model, params = _setup()
  toks, mask = left_pad([[3, 5, 7], [1, 2, 3, 4]])
  greedy = generate(model, params, toks, mask, max_new_tokens=4)
  tiny = generate(model, params, toks, mask, max_new_tokens=4, temperature=1., top_p=1e-6, rng=key)
  np.testing.assert_array_equal(np.asarray(tiny.tokens), np.asarray(greedy.tokens))
  np.testing.assert_allclose(np.asarray(tiny.logprobs), np.asarray(greedy.logprobs), rtol=1e-6)


def test_last_only_logits():
  """DecoderLM(last_only=True), used by generate's prefill, is the last row of the full logits."""
  model, params = _setup()
  toks, mask = left_pad([[3, 5, 7, 9], [4, 2]])
  full, hidden = model.apply({'params': params}, toks, padding=mask, return_hidden=True)
  last, last_hidden = model.apply({'params': params}, toks, padding=mask, return_hidden=True, last_only=True)
  assert last.shape == (2, 1, CFG.vocab_size)
  np.testing.assert_array_equal(np.asarray(last_hidden), np.asarray(hidden[:, -1:]))
  np.testing.assert_allclose(np.asarray(last), np.asarray(full[:, -1:]), rtol=1e-6, atol=1e-6)


def test_cache_buckets_and_segmented_decode_equal_one_segment():
  """Decoding in segments over growing caches gives the tokens and log-probs of one segment over the whole
  cache, with padding, eos and stop sequences; the sizes double from `first` and end at the slots needed."""
  assert cache_buckets(18, 32) == (49,)
  assert cache_buckets(18, 512, 128) == (128, 256, 529)
  assert cache_buckets(300, 1000, 128) == (512, 1299) and cache_buckets(5, 1) == (5,)
  assert cache_buckets(18, 512, 0) == (529,)
  model, params = _setup()
  toks, mask = left_pad([[3, 5, 7, 9, 11], [4, 2], [6]])
  free = generate(model, params, toks, mask, max_new_tokens=28, cache_bucket=0)
  kw = dict(max_new_tokens=28, eos_id=int(free.tokens[1, 5]), stop_sequences=[free.tokens[2, 6:8].tolist()])
  one = generate(model, params, toks, mask, cache_bucket=0, **kw)
  for first in (4,):  # cache sizes (8, 16, 32): 32 slots needed
    seg = generate(model, params, toks, mask, cache_bucket=first, **kw)
    np.testing.assert_array_equal(np.asarray(seg.tokens), np.asarray(one.tokens))
    np.testing.assert_array_equal(np.asarray(seg.mask), np.asarray(one.mask))
    np.testing.assert_allclose(np.asarray(seg.logprobs), np.asarray(one.logprobs), rtol=1e-5, atol=1e-6)
  assert np.asarray(one.mask).sum(-1).tolist()[1:] == [6, 8]  # eos and the stop sequence did fire


def test_greedy_and_logprob_helpers():
  """_greedy is jnp.argmax (first maximum on ties); _token_logprob is log_softmax at the token."""
  x = jax.random.normal(jax.random.key(5), (4, 300)) * 3
  x = x.at[1, 7].set(10.).at[1, 200].set(10.).at[2].set(0.)  # a tie between two ids; an all-equal row
  np.testing.assert_array_equal(np.asarray(_greedy(x)), np.asarray(jnp.argmax(x, -1)))
  tok = jnp.asarray([0, 7, 299, 42])
  np.testing.assert_allclose(np.asarray(_token_logprob(x, tok)),
                             np.asarray(jnp.take_along_axis(jax.nn.log_softmax(x, -1), tok[:, None], -1)[:, 0]),
                             rtol=1e-6, atol=1e-6)
