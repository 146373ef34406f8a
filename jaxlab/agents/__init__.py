"""Inference-time systems around a model: skills served to an agent over MCP (skills/)."""
