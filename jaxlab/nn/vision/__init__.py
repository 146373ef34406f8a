"""Vision transformers: the VARC ARC ViT (vit.py) and the RGB ViT encoder / classifier (rgb_vit.py)."""
