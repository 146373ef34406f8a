"""Prefix-scannable models (Yau et al. 2025): affine scans, the Blelloch / binary-counter scans for a
non-associative aggregation, affine sequence mixers and the Transformer-PSM."""

from jaxlab.nn.psm.blelloch import BinaryCounter
from jaxlab.nn.psm.blelloch import blelloch_exclusive_scan
from jaxlab.nn.psm.blelloch import naive_bracketing
from jaxlab.nn.psm.mixers import MIXERS
from jaxlab.nn.psm.mixers import mlstm_scan
from jaxlab.nn.psm.scans import affine_combine
from jaxlab.nn.psm.scans import affine_scan
from jaxlab.nn.psm.scans import default_form
from jaxlab.nn.psm.scans import gated_linear_attention
from jaxlab.nn.psm.scans import gla_step
from jaxlab.nn.psm.transformer_psm import PSMConfig
from jaxlab.nn.psm.transformer_psm import StreamingDecoder
from jaxlab.nn.psm.transformer_psm import TransformerPSM

__all__ = [
    'BinaryCounter', 'MIXERS', 'PSMConfig', 'StreamingDecoder', 'TransformerPSM', 'affine_combine', 'affine_scan', 'blelloch_exclusive_scan',
    'default_form', 'gated_linear_attention', 'gla_step', 'mlstm_scan', 'naive_bracketing',
]
