"""GGUF reading: dequantisation of every supported small type, metadata, tokenizer."""

import numpy as np
import pytest

gguf_pkg = pytest.importorskip('gguf')

from jaxlab.io import gguf


@pytest.mark.parametrize('kind', ['F32', 'F16', 'Q8_0', 'Q4_0', 'Q4_1'])
def test_dequantise_roundtrip(tmp_path, kind):
  rng = np.random.default_rng(0)
  w = rng.normal(size=(8, 64)).astype(np.float32)
  qtype = gguf_pkg.GGMLQuantizationType[kind]
  writer = gguf_pkg.GGUFWriter(str(tmp_path / 'm.gguf'), 'llama')
  data = w.astype(np.float16) if kind == 'F16' else w
  if kind not in ('F32', 'F16'):
    data = gguf_pkg.quants.quantize(w, qtype)
  writer.add_tensor('t', data, raw_dtype=qtype if kind not in ('F32', 'F16') else None)
  writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file()
  writer.close()
  got = gguf.read_gguf(tmp_path / 'm.gguf').tensor('t')
  assert got.shape == w.shape and got.dtype == np.float32
  tol = {'F32': 0, 'F16': 1e-3, 'Q8_0': 0.03, 'Q4_0': 0.4, 'Q4_1': 0.3}[kind]
  assert np.max(np.abs(got - w)) <= tol * max(1., np.abs(w).max())


def test_smollm2_metadata_and_types(smollm2):
  cfg, _, f, _ = smollm2
  assert (cfg.num_layers, cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.rope_base) == (30, 576, 9, 3, 1e5)
  assert cfg.tie_embeddings and cfg.vocab_size == 49152
  types = f.tensor_types()
  assert types['token_embd.weight'] == 'Q8_0' and types['blk.0.attn_q.weight'] == 'Q4_1'
  assert 'im_start' in gguf.chat_template(f)
  assert gguf.special_token_ids(f)['eos'] == 2


def test_gguf_tokenizer_roundtrip_and_specials(smollm2):
  *_, tok = smollm2
  text = 'Hello, wörld! 2024 naïve café\n<|im_start|>user'
  ids = tok.encode(text).ids
  assert tok.decode(ids, skip_special_tokens=False) == text
  assert ids[-2] == 1  # <|im_start|> is one special token.
  assert tok.encode('12345').ids == [tok.token_to_id(c) for c in '12345']  # smollm splits digits.
