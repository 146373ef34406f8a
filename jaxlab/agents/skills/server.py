"""The MCP server of one skill: the tools ``list_topics()`` and ``load_topic(topic)`` (mcp 2.x API).

The paper's server is a v1 ``FastMCP`` named after the skill folder; mcp 2 removed ``mcp.server.fastmcp``
(importing it raises ModuleNotFoundError), so this builds a ``mcp.server.mcpserver.MCPServer`` with the
same two tools. ``load_topic`` returns MCP text content and image content (base64 PNG / JPEG) in the order
``store.load_topic`` gives. A refused or unknown topic (``TopicError``) is raised as the MCP ``ToolError``, which the server turns into a tool result with ``is_error=True`` whose text is the message (naming list_topics); the
paper's server returned the same message as ordinary text.

  server = make_server('workdirs/skill/toyedit-multimodal')
  async with mcp.Client(server) as client:          # in process, no transport
    print((await client.call_tool('list_topics', {})).content[0].text)

  python -m jaxlab.agents.skills.server SKILL_DIR    # serve over stdio (for Claude Code and the like)
"""

from __future__ import annotations

import os
import sys

from jaxlab.agents.skills import store

INSTALL_HINT = 'the MCP server needs the `mcp` package (2.x): pip install "jaxlab[skills]"'


def _mcp():
  try:
    from mcp.server import mcpserver  # pylint: disable=g-import-not-at-top
  except ImportError as e:  # pragma: no cover (the test extra installs mcp)
    raise ImportError(INSTALL_HINT) from e
  return mcpserver


def make_server(root: str | os.PathLike[str], name: str | None = None):
  """An MCPServer serving the skill folder `root` (named after the folder unless `name` is given)."""
  mcpserver = _mcp()
  import mcp.server.mcpserver.exceptions  # pylint: disable=g-import-not-at-top,unused-import
  root = os.path.abspath(os.fspath(root))
  if not os.path.isdir(root):
    raise FileNotFoundError(f'skill folder {root}: no such directory')
  server = mcpserver.MCPServer(name or os.path.basename(root),
                               instructions=f'Skill {os.path.basename(root)}: read SKILL.md\'s table of '
                               'contents, then call load_topic with a topic path.')

  @server.tool(structured_output=False)
  def list_topics() -> str:
    """List every topic path of this skill (folders holding a guide.md), one per line, sorted."""
    return store.list_topics_text(root)

  @server.tool(structured_output=False)
  def load_topic(topic: str) -> list:
    """Load one topic's guide with its figures inserted where the text mentions them.

    Args:
      topic: a topic path from SKILL.md or list_topics(), e.g. "format/font-size".
    """
    try:
      parts = store.load_topic(root, topic)
    except store.TopicError as e:  # an anticipated failure: the agent reads the message (is_error=True)
      raise mcpserver.exceptions.ToolError(str(e)) from None
    return [p if isinstance(p, str) else mcpserver.Image(data=p.data, format=p.mime_type.split('/')[1])
            for p in parts]

  return server


def content_to_parts(content) -> list[store.Part]:
  """MCP tool-result content back into store parts (text, and Figure with the decoded image bytes)."""
  import base64  # pylint: disable=g-import-not-at-top
  out: list[store.Part] = []
  for i, c in enumerate(content):
    if c.type == 'text':
      out.append(c.text)
    elif c.type == 'image':
      out.append(store.Figure(f'image{i}', base64.b64decode(c.data), c.mime_type))
  return out


if __name__ == '__main__':
  if len(sys.argv) != 2 or not os.path.isdir(sys.argv[1]):
    sys.stderr.write('usage: python -m jaxlab.agents.skills.server SKILL_DIR (a skill folder)\n')
    sys.exit(2)
  make_server(sys.argv[1]).run('stdio')
