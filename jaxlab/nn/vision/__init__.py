"""Vision transformers: the VARC ARC ViT (vit.py)."""
