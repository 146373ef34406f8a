"""Importing real checkpoints (GGUF, Hugging Face safetensors layouts) into jaxlab params."""

from jaxlab.io.gguf import GGUFError
from jaxlab.io.gguf import GGUFFile
from jaxlab.io.gguf import load_llama_gguf
from jaxlab.io.gguf import read_gguf
from jaxlab.io.gguf import tokenizer_from_gguf
from jaxlab.io.gguf import unpermute_qk
from jaxlab.io.hf import bert_params_from_hf
from jaxlab.io.hf import gpt2_params_from_hf
from jaxlab.io.hf import llama_params_from_hf
from jaxlab.io.hf import load_safetensors
from jaxlab.io.hf import tokenizer_from_json

__all__ = [
    'GGUFError', 'GGUFFile', 'bert_params_from_hf', 'gpt2_params_from_hf', 'llama_params_from_hf',
    'load_llama_gguf', 'load_safetensors', 'read_gguf', 'tokenizer_from_gguf',
    'tokenizer_from_json', 'unpermute_qk',
]
