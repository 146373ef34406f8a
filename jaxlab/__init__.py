"""jaxlab: JAX/Flax reimplementations of recent ML research systems.

Subpackages: `nn` (pure Flax modules), `train` (mesh, sharded trainer, checkpoints), `data` (grain pipelines,
tokenizers, corpora, assets). Importing jaxlab has no side effects (no flags, no file-system access).
"""

__version__ = "0.1.0"
