"""Metrics shared by experiments (ARC voting and pass@k, ...)."""
