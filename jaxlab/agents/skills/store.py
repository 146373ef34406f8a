"""A skill on disk and the two tools an agent reads it with (VisualSkill, arXiv 2606.18448).

A skill is a folder::

  SKILL.md                     YAML front matter (name, description), usage rules, a table of contents
  <category>/<topic>/guide.md  one folder per topic: the guide text ...
  <category>/<topic>/fig01.png ... and its figures (png / jpg / jpeg)

``list_topics(root)`` and ``load_topic(root, topic)`` have the semantics of the paper's skill server (its
code, XMHZZ2018/VisualSkills, read for facts only):

* list_topics: the folders under the skill that hold a ``guide.md``, as '/'-joined paths relative to the
  skill, sorted, newline-joined (the walk follows symbolic links, as ``os.walk(followlinks=True)`` does, but
  never into a folder whose real path is outside the skill or is an ancestor of the folder: a loop).
* load_topic: the argument is stripped of surrounding whitespace and trailing '/'; a path with a '..' part
  is refused (as in the paper). Added here: an absolute path (leading '/', or a Windows drive) is refused
  rather than silently made relative, and a topic folder, guide or figure whose real path (symbolic links
  resolved) leaves the skill is refused (a figure is left out). A missing topic folder or a folder without
  guide.md is an error that names ``list_topics``. Every refusal is a :class:`TopicError`.
* the result is ``"# {topic}/guide.md\\n\\n"`` followed by the guide text cut right after each backticked
  figure name `` `figNN.png` `` (also .jpg / .jpeg; the regex :data:`FIGURE_RE`) whose file exists, with the
  image inserted at its first mention only; then the rest of the text; then every image of the folder that
  the text never referenced, sorted by file name. Region crops named ``ui-*.png`` never match the regex, so
  they always come last (as in the paper's Stage 2 skills).

The result is a list of parts: ``str`` text and :class:`Figure` (file name + bytes + MIME type);
:func:`parts_to_text` flattens it for a text-only reader. The MCP server (``server.py``) returns the same parts
as MCP text and image content.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

GUIDE = 'guide.md'
SKILL_MD = 'SKILL.md'
IMAGE_EXTS = ('.png', '.jpg', '.jpeg')
FIGURE_RE = re.compile(r'`(fig\d+\.(?:png|jpg|jpeg))`')
MAX_DEPTH = 16  # folders below the skill that list_topics descends
_MIME = {'.png': 'image/png', '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg'}


class TopicError(ValueError):
  """A load_topic argument that is refused or names no topic; the message is what the agent sees."""


@dataclasses.dataclass(frozen=True)
class Figure:
  """One image of a topic: its file name, bytes and MIME type."""
  name: str
  data: bytes
  mime_type: str

  def __repr__(self) -> str:
    return f'Figure({self.name!r}, {len(self.data)} bytes, {self.mime_type})'


Part = str | Figure


def _inside(root_real: str, path: str) -> bool:
  real = os.path.realpath(path)
  return real == root_real or real.startswith(root_real + os.sep)


def list_topics(root: str | os.PathLike[str]) -> list[str]:
  """Sorted '/'-joined topic paths (folders holding guide.md) of the skill at `root`."""
  root = os.fspath(root)
  root_real = os.path.realpath(root)
  topics = []
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
    here = os.path.realpath(dirpath)
    if dirpath.count(os.sep) - root.count(os.sep) >= MAX_DEPTH:
      dirnames[:] = []
    # A link into the skill is followed; a link out of it, or back to an ancestor (a loop), is not.
    dirnames[:] = [d for d in dirnames if _inside(root_real, os.path.join(dirpath, d))
                   and not _inside(os.path.realpath(os.path.join(dirpath, d)), here)]
    rel = os.path.relpath(dirpath, root)
    if rel != '.' and GUIDE in filenames and _inside(root_real, os.path.join(dirpath, GUIDE)):
      topics.append(rel.replace(os.sep, '/'))
  return sorted(topics)


def list_topics_text(root: str | os.PathLike[str]) -> str:
  """What the list_topics tool returns: the topics newline-joined."""
  return '\n'.join(list_topics(root))


def clean_topic(topic: str) -> str:
  """The normalised topic path, or TopicError for '..', an absolute path or an empty argument."""
  if not isinstance(topic, str):
    raise TopicError(f'Error: topic must be a string, got {type(topic).__name__}.')
  t = topic.strip()
  if t.startswith(('/', '\\')) or re.match(r'^[A-Za-z]:[\\/]', t) or os.path.isabs(t):
    raise TopicError(f"Error: absolute paths are not allowed ({topic!r}); pass a topic path from "
                     'list_topics(), e.g. "category/topic".')
  t = t.rstrip('/')
  parts = re.split(r'[\\/]+', t)
  if '..' in parts:
    raise TopicError(f"Error: '..' is not allowed in a topic path ({topic!r}). Call list_topics() to see "
                     'the available topics.')
  if not t or t == '.':
    raise TopicError('Error: empty topic. Call list_topics() to see the available topics.')
  return '/'.join(p for p in parts if p not in ('', '.'))


def _images(folder: str) -> list[str]:
  return sorted(f for f in os.listdir(folder)
                if f.lower().endswith(IMAGE_EXTS) and os.path.isfile(os.path.join(folder, f)))


def _figure(folder: str, name: str) -> Figure:
  with open(os.path.join(folder, name), 'rb') as f:
    data = f.read()
  return Figure(name, data, _MIME[os.path.splitext(name)[1].lower()])


def load_topic(root: str | os.PathLike[str], topic: str) -> list[Part]:
  """The parts of one topic: header and guide text with its figures interleaved, then unreferenced images.

  Raises:
    TopicError: the argument is refused (see the module docstring) or names no topic.
  """
  root = os.fspath(root)
  root_real = os.path.realpath(root)
  t = clean_topic(topic)
  folder = os.path.join(root, *t.split('/'))
  if not os.path.isdir(folder):
    raise TopicError(f"Error: topic '{t}' not found. Call list_topics() to see the available topics.")
  if not _inside(root_real, folder):
    raise TopicError(f"Error: topic '{t}' resolves outside the skill (a symbolic link); refused. Call "
                     'list_topics() to see the available topics.')
  guide = os.path.join(folder, GUIDE)
  if not os.path.isfile(guide):
    raise TopicError(f"Error: topic '{t}' has no {GUIDE}. Call list_topics() to see the available topics.")
  if not _inside(root_real, guide):
    raise TopicError(f"Error: {t}/{GUIDE} resolves outside the skill (a symbolic link); refused.")
  with open(guide, encoding='utf-8') as f:
    text = f.read()
  images = [n for n in _images(folder) if _inside(root_real, os.path.join(folder, n))]
  available = set(images)
  parts: list[Part] = [f'# {t}/{GUIDE}\n\n']
  inserted: list[str] = []
  cursor = 0
  for m in FIGURE_RE.finditer(text):
    name = m.group(1)
    if name in available and name not in inserted:
      parts.append(text[cursor:m.end()])
      parts.append(_figure(folder, name))
      inserted.append(name)
      cursor = m.end()
  if cursor < len(text):
    parts.append(text[cursor:])
  for name in images:
    if name not in inserted:
      parts.append(_figure(folder, name))
  return _merge_text(parts)


def _merge_text(parts: Sequence[Part]) -> list[Part]:
  """Adjacent text parts joined (the header and the first text piece become one)."""
  out: list[Part] = []
  for p in parts:
    if isinstance(p, str) and out and isinstance(out[-1], str):
      out[-1] += p
    elif not (isinstance(p, str) and not p):
      out.append(p)
  return out


def parts_to_text(parts: Sequence[Part]) -> str:
  """A topic as plain text: each figure becomes the line '[image: NAME]'."""
  return ''.join(p if isinstance(p, str) else f'\n[image: {p.name}]\n' for p in parts)
