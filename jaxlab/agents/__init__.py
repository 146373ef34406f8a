"""Inference-time systems around a model: what it sees of a conversation (context, turn_filter), a chat
runner over jaxlab's real models (chat), and skills served to an agent over MCP (skills/)."""
