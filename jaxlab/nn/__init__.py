"""Pure Flax (linen) modules, grouped by family.

Shared at the top: layers.py (norms, MLPs, embeddings, RoPE, FlatDense) and attention.py (GQA, masks, KV
cache), used by every family. Families: lm/ (DecoderLM, generation), psm/ (prefix-scannable models),
diffusion/ (flow matching, ELF, MDLM), vision/ (ViTs), encoders/ (BERT).

No training code, no file I/O, no flags. Parameters carry logical axis names ('embed', 'mlp', 'heads',
'kv', 'vocab') for `jaxlab.train`'s sharding rules.
"""

from jaxlab.nn.attention import Attention
from jaxlab.nn.attention import cache_has_room
from jaxlab.nn.attention import causal_mask
from jaxlab.nn.attention import combine_masks
from jaxlab.nn.attention import dot_product_attention_weights
from jaxlab.nn.attention import padding_mask
from jaxlab.nn.layers import Embed
from jaxlab.nn.layers import FlatDense
from jaxlab.nn.layers import LayerNorm
from jaxlab.nn.layers import Mlp
from jaxlab.nn.layers import RMSNorm
from jaxlab.nn.layers import rope_1d
from jaxlab.nn.layers import rope_2d
from jaxlab.nn.lm.transformer import Block
from jaxlab.nn.lm.transformer import DecoderLM
from jaxlab.nn.lm.transformer import TransformerConfig
from jaxlab.nn.lm.transformer import gpt2_config
from jaxlab.nn.lm.transformer import init_cache
from jaxlab.nn.lm.transformer import llama_config
from jaxlab.nn.lm.transformer import make_mixer
from jaxlab.nn.lm.transformer import make_norm
from jaxlab.nn.lm.transformer import positions_from_padding

__all__ = [
    'Attention', 'Block', 'DecoderLM', 'Embed', 'FlatDense', 'LayerNorm', 'Mlp', 'RMSNorm', 'TransformerConfig',
    'cache_has_room', 'causal_mask', 'combine_masks', 'dot_product_attention_weights', 'gpt2_config',
    'init_cache', 'llama_config', 'make_mixer', 'make_norm', 'padding_mask', 'positions_from_padding',
    'rope_1d', 'rope_2d',
]
