"""Continuous and discrete diffusion over text: flow-matching maths (flow.py), the ELF denoiser/decoder
(elf.py) and its objective and sampler (elf_flow.py), masked diffusion LM (mdlm.py)."""
