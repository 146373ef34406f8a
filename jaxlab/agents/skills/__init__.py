"""Multimodal skills served over MCP (VisualSkill, arXiv 2606.18448).

store.py     a skill folder and its two tools: list_topics / load_topic (figure insertion, path safety).
skill_md.py  SKILL.md parsing and validation; writing a skill and its text-only twin from topic records.
server.py    the MCP server (mcp 2.x MCPServer; the `skills` extra) with the two tools.
"""

from jaxlab.agents.skills.skill_md import (Entry, Skill, SkillError, TopicSpec, validate, write_skill,
                                           write_text_twin)
from jaxlab.agents.skills.store import (FIGURE_RE, Figure, TopicError, list_topics, list_topics_text,
                                        load_topic, parts_to_text)
