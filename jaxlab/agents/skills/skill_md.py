"""SKILL.md: parsing, validation, and writing a skill (and its text-only twin) from topic records.

SKILL.md, as in the paper's skills::

  ---
  name: toyedit-multimodal
  description: How to operate ToyEdit ...
  ---
  # ToyEdit

  ## Usage rules
  - Call `load_topic` with a topic path from the table below (prefer it to reading files) ...

  ## Topics
  - [Change the font size](format/font-size/guide.md) — the Font dialog's Size tab.
    **Use when:** font size, bigger text, points

A table-of-contents entry is ``- [Title](<path>/guide.md) — summary`` with its ``**Use when:** kw, ...`` on
the same line or the next (indented) line. :func:`validate` lists every problem: the front matter (YAML
mapping with a non-empty ``name`` of lowercase letters, digits and hyphens, at most 64 characters, and a
non-empty ``description`` of at most 1024), usage rules that mention ``load_topic``, each entry's use-when
keywords, entries pointing at missing topics, and topics the table leaves out.

:func:`write_skill` writes a skill from :class:`TopicSpec` records; :func:`write_text_twin` writes the
text-only counterpart: the same SKILL.md (name suffixed ``-text``), every guide with each backticked figure
mention replaced by the words the caller gives for that figure, and no images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence

from jaxlab.agents.skills import store

NAME_RE = re.compile(r'^[a-z0-9]+(?:-[a-z0-9]+)*$')
ENTRY_RE = re.compile(r'^- \[(?P<title>[^\]]+)\]\((?P<path>[^)\s]+)/guide\.md\)\s*[—-]\s*(?P<summary>.*?)\s*'
                      r'(?:\*\*Use when:\*\*\s*(?P<use>.*))?$')
USE_RE = re.compile(r'^\s+\*\*Use when:\*\*\s*(?P<use>.*)$')


@dataclasses.dataclass(frozen=True)
class Entry:
  """One table-of-contents line."""
  title: str
  topic: str
  summary: str
  use_when: tuple[str, ...]

  @property
  def text(self) -> str:
    """What a retriever indexes: title, summary and use-when keywords."""
    return f'{self.title}. {self.summary} Use when: {", ".join(self.use_when)}'


@dataclasses.dataclass(frozen=True)
class Skill:
  name: str
  description: str
  body: str
  entries: tuple[Entry, ...]


class SkillError(ValueError):
  """A SKILL.md that cannot be parsed at all (no front matter, bad YAML)."""


def _front_matter(text: str) -> tuple[dict, str]:
  import yaml  # pylint: disable=g-import-not-at-top  (the skills extra)
  if not text.startswith('---\n'):
    raise SkillError('SKILL.md: must start with a YAML front matter block (a line "---")')
  end = text.find('\n---\n', 4)
  if end < 0:
    raise SkillError('SKILL.md: the front matter has no closing "---" line')
  try:
    meta = yaml.safe_load(text[4:end])
  except yaml.YAMLError as e:
    raise SkillError(f'SKILL.md: front matter is not valid YAML ({" ".join(str(e).split())})') from e
  if not isinstance(meta, dict):
    raise SkillError('SKILL.md: front matter must be a YAML mapping with name and description')
  return meta, text[end + 5:]


def parse(text: str) -> tuple[Skill, list[str]]:
  """(Skill, line problems) of a SKILL.md text; SkillError when the front matter is unusable."""
  meta, body = _front_matter(text)
  problems, entries = [], []
  lines = body.splitlines()
  for i, line in enumerate(lines):
    if not line.startswith('- ['):
      continue
    m = ENTRY_RE.match(line)
    if m is None:
      problems.append(f'SKILL.md: table-of-contents line is not "- [Title](<path>/guide.md) — summary": {line!r}')
      continue
    use = m.group('use')
    if use is None and i + 1 < len(lines) and (u := USE_RE.match(lines[i + 1])):
      use = u.group('use')
    keywords = tuple(k.strip() for k in (use or '').split(',') if k.strip())
    if not keywords:
      problems.append(f"SKILL.md: entry {m.group('path')!r} has no **Use when:** keywords")
    entries.append(Entry(m.group('title').strip(), m.group('path').strip('/'), m.group('summary'), keywords))
  name, desc = meta.get('name'), meta.get('description')
  return Skill(str(name or ''), str(desc or ''), body, tuple(entries)), problems


def read(root: str | os.PathLike[str]) -> Skill:
  """The parsed SKILL.md of the skill at `root` (no validation beyond the front matter)."""
  with open(os.path.join(root, store.SKILL_MD), encoding='utf-8') as f:
    return parse(f.read())[0]


def validate(root: str | os.PathLike[str]) -> list[str]:
  """Every problem of the skill at `root`, one line each; [] for a valid skill."""
  path = os.path.join(root, store.SKILL_MD)
  if not os.path.isfile(path):
    return [f'{path}: no SKILL.md']
  with open(path, encoding='utf-8') as f:
    text = f.read()
  try:
    skill, problems = parse(text)
  except SkillError as e:
    return [str(e)]
  meta, _ = _front_matter(text)
  for key, limit in (('name', 64), ('description', 1024)):
    v = meta.get(key)
    if not isinstance(v, str) or not v.strip():
      problems.append(f'SKILL.md: front matter needs a non-empty string {key!r}')
    elif len(v) > limit:
      problems.append(f'SKILL.md: {key} is {len(v)} characters (at most {limit})')
  if isinstance(meta.get('name'), str) and meta['name'] and not NAME_RE.match(meta['name']):
    problems.append(f"SKILL.md: name {meta['name']!r} must be lowercase letters, digits and hyphens")
  usage = re.search(r'^##\s+Usage[^\n]*\n(?P<rules>.*?)(?=^##\s|\Z)', skill.body, re.S | re.M)
  if usage is None:
    problems.append('SKILL.md: no "## Usage rules" section')
  elif 'load_topic' not in usage.group('rules'):
    problems.append('SKILL.md: the usage rules must tell the agent to call load_topic')
  if not skill.entries:
    problems.append('SKILL.md: the table of contents has no "- [Title](<path>/guide.md) — summary" lines')
  topics = set(store.list_topics(root))
  listed = [e.topic for e in skill.entries]
  for t in listed:
    if t not in topics:
      problems.append(f'SKILL.md: entry {t!r} points at no topic folder with guide.md')
  for t in sorted(topics - set(listed)):
    problems.append(f'SKILL.md: topic {t!r} is missing from the table of contents')
  for t in sorted({t for t in listed if listed.count(t) > 1}):
    problems.append(f'SKILL.md: topic {t!r} is listed more than once')
  return problems


@dataclasses.dataclass
class TopicSpec:
  """What :func:`write_skill` needs for one topic. `figures` maps a file name to PNG/JPEG bytes."""
  topic: str
  title: str
  summary: str
  use_when: Sequence[str]
  guide: str
  figures: Mapping[str, bytes] = dataclasses.field(default_factory=dict)


USAGE_RULES = """## Usage rules
- Find the topic for your task in the table below, then call `load_topic` with its path (for example
  `load_topic("{example}")`); prefer `load_topic` to reading the files, because it returns each figure where
  the guide mentions it.
- Call `list_topics` when a path is not in the table.
- Follow the guide's steps in order and check the screen after each one.
"""


def render(name: str, description: str, title: str, specs: Sequence[TopicSpec]) -> str:
  toc = '\n'.join(f'- [{s.title}]({s.topic}/guide.md) — {s.summary}\n  **Use when:** {", ".join(s.use_when)}'
                  for s in specs)
  example = specs[0].topic if specs else 'category/topic'
  return (f'---\nname: {name}\ndescription: {json.dumps(description, ensure_ascii=False)}\n---\n# {title}\n\n'
          f'{USAGE_RULES.format(example=example)}\n## Topics\n{toc}\n')


def write_skill(root: str | os.PathLike[str], name: str, description: str, title: str,
                specs: Sequence[TopicSpec]) -> str:
  """Writes the skill folder (replacing one already there); returns its path. Validates what it wrote."""
  root = os.fspath(root)
  if os.path.isdir(root):
    shutil.rmtree(root)
  os.makedirs(root)
  with open(os.path.join(root, store.SKILL_MD), 'w', encoding='utf-8') as f:
    f.write(render(name, description, title, specs))
  for s in specs:
    folder = os.path.join(root, *store.clean_topic(s.topic).split('/'))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, store.GUIDE), 'w', encoding='utf-8') as f:
      f.write(s.guide)
    for fname, data in s.figures.items():
      with open(os.path.join(folder, fname), 'wb') as f:
        f.write(data)
  problems = validate(root)
  if problems:
    raise SkillError(f'{root}: the written skill is invalid: ' + '; '.join(problems))
  return root


def verbalise_guide(guide: str, words: Callable[[str], str]) -> str:
  """The guide with each backticked figure mention `` `figNN.png` `` replaced by ``words(name)``."""
  return store.FIGURE_RE.sub(lambda m: words(m.group(1)), guide)


def write_text_twin(root: str | os.PathLike[str], name: str, description: str, title: str,
                    specs: Sequence[TopicSpec], words: Callable[[str, str], str]) -> str:
  """The text-only twin of ``write_skill(..., specs)``: no images; ``words(topic, figure)`` verbalises each
  figure mention in the guides (figures the guide never mentions are dropped with their images)."""
  twin = [dataclasses.replace(s, guide=verbalise_guide(s.guide, lambda f, s=s: words(s.topic, f)), figures={})
          for s in specs]
  return write_skill(root, name, description, title, twin)
