"""Interpretability: activation hooks (hooks: capture / replace / add at named DecoderLM sites), attention
capture, soft IoU, attention programs (library, registry, proposer and
sandbox), faithful head replacement. Import the submodules directly (capture and replace need JAX;
iou, registry, program_lib and proposer need only numpy)."""
