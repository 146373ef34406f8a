"""A damaged or wrong-format model file is a GGUFError naming the file and what is wrong with it."""

import numpy as np
import pytest

gguf_pkg = pytest.importorskip('gguf')

from jaxlab.io import gguf


def _write(path, tensors, arch='llama'):
  writer = gguf_pkg.GGUFWriter(str(path), arch)
  for name, data, kw in tensors:
    writer.add_tensor(name, data, **kw)
  writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file()
  writer.close()


def test_missing_empty_and_wrong_format(tmp_path):
  with pytest.raises(gguf.GGUFError, match='no_such.gguf: no such file'):
    gguf.read_gguf(tmp_path / 'no_such.gguf')
  (tmp_path / 'empty.gguf').write_bytes(b'')
  with pytest.raises(gguf.GGUFError, match='empty.gguf: empty file'):
    gguf.read_gguf(tmp_path / 'empty.gguf')
  (tmp_path / 'model.safetensors').write_bytes(b'\x08\x00\x00\x00\x00\x00\x00\x00{}      ')
  with pytest.raises(gguf.GGUFError, match=r"model.safetensors: not a GGUF file \(it starts with"):
    gguf.load_llama_gguf(tmp_path / 'model.safetensors')


def test_truncated_tensor_data_and_header(tmp_path):
  path = tmp_path / 'm.gguf'
  _write(path, [('t', np.ones((64, 64), np.float32), {})])
  data = path.read_bytes()
  path.write_bytes(data[:-4000])
  with pytest.raises(gguf.GGUFError, match=r'm.gguf: truncated: the tensor data ends early'):
    gguf.read_gguf(path)
  path.write_bytes(data[:40])
  with pytest.raises(gguf.GGUFError, match=r'm.gguf: truncated or damaged GGUF header'):
    gguf.read_gguf(path)


def test_unsupported_tensor_type_and_architecture(tmp_path):
  path = tmp_path / 'q2k.gguf'
  q2k = gguf_pkg.GGMLQuantizationType.Q2_K
  block, size = gguf_pkg.GGML_QUANT_SIZES[q2k]
  _write(path, [('t', np.zeros((4, 256 // block * size), np.uint8), {'raw_dtype': q2k})])
  with pytest.raises(gguf.GGUFError, match=r'q2k.gguf: tensor t has GGML type Q2_K, which is not supported'):
    gguf.read_gguf(path).tensor('t')
  other = tmp_path / 'mamba.gguf'
  _write(other, [('t', np.ones((4, 4), np.float32), {})], arch='mamba')
  with pytest.raises(gguf.GGUFError, match=r"mamba.gguf: architecture 'mamba' is not supported"):
    gguf.load_llama_gguf(other)
