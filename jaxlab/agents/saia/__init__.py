"""SAIA (Li et al., NeurIPS 2025): a benchmark of vision models with known attribute reliance on rendered
scenes (benchmark.py), the agent's tools (tools.py), the self-evaluation protocol (protocol.py) and the agent
loop with a scripted agent and an LLM plug-in (agents.py). The experiment: experiments/saia."""
