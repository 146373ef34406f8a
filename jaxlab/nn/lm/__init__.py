"""Decoder-only language models: the Llama / GPT-2 family `DecoderLM` (transformer.py) and batched
KV-cache generation (generate.py)."""
