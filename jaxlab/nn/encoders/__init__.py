"""Bidirectional text encoders: BERT / MiniLM (bert.py)."""
