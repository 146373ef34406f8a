"""jaxlab.agents.skills: every list_topics / load_topic rule through a real in-process MCP client session
(mcp 2.x `mcp.Client(server)`), the SKILL.md validator, and the text-only twin."""

import asyncio
import base64
import io
import os

import pytest

import mcp  # noqa: E402  (the test extra installs it; a missing mcp must fail, not skip)
from PIL import Image  # noqa: E402

from jaxlab.agents import skills  # noqa: E402
from jaxlab.agents.skills import server as server_lib  # noqa: E402
from jaxlab.agents.skills import skill_md  # noqa: E402


def png(color) -> bytes:
  buf = io.BytesIO()
  Image.new('RGB', (3, 2), color).save(buf, 'PNG')
  return buf.getvalue()


RED, GREEN, BLUE, GREY = png('red'), png('green'), png('blue'), png('grey')
GUIDE = ('Open the menu. See `fig02.png` for the menu.\nThen click the icon `fig01.png`, and again `fig02.png`.\n'
         'A missing `fig09.png` stays text.\nDone.\n')


def specs():
  return [
      skill_md.TopicSpec('edit/menu', 'Use the menu', 'the Edit menu.', ['menu', 'edit'], GUIDE,
                         {'fig01.png': RED, 'fig02.png': GREEN, 'fig03.png': BLUE, 'ui-toolbar.png': GREY}),
      skill_md.TopicSpec('view/zoom', 'Zoom', 'the zoom control.', ['zoom in', 'bigger'], 'Click Zoom.\n'),
  ]


@pytest.fixture
def skill(tmp_path):
  return skill_md.write_skill(tmp_path / 'toy-multimodal', 'toy-multimodal', 'A toy skill.', 'Toy', specs())


def call(root, tool, args=None):
  async def go():
    async with mcp.Client(server_lib.make_server(root)) as client:
      names = sorted(t.name for t in (await client.list_tools()).tools)
      assert names == ['list_topics', 'load_topic']
      return await client.call_tool(tool, args or {})
  return asyncio.run(go())


def texts_and_images(result):
  assert not result.is_error, result.content
  out = []
  for c in result.content:
    if c.type == 'text':
      out.append(('text', c.text))
    else:
      assert c.type == 'image' and c.mime_type == 'image/png'
      out.append(('image', base64.b64decode(c.data)))
  return out


def error_text(result):
  assert result.is_error
  return ' '.join(c.text for c in result.content)


def test_list_topics_sorted_folders_with_guide(skill):
  os.makedirs(os.path.join(skill, 'a-empty', 'sub'))  # no guide.md: not a topic
  os.makedirs(os.path.join(skill, 'aa', 'first'))
  with open(os.path.join(skill, 'aa', 'first', 'guide.md'), 'w') as f:
    f.write('x')
  r = call(skill, 'list_topics')
  assert r.content[0].text == 'aa/first\nedit/menu\nview/zoom'


def test_load_topic_figure_order_and_appended_images(skill):
  parts = texts_and_images(call(skill, 'load_topic', {'topic': 'edit/menu'}))
  assert parts == [
      ('text', '# edit/menu/guide.md\n\nOpen the menu. See `fig02.png`'),
      ('image', GREEN),                                   # at its first mention only
      ('text', ' for the menu.\nThen click the icon `fig01.png`'),
      ('image', RED),
      ('text', ', and again `fig02.png`.\nA missing `fig09.png` stays text.\nDone.\n'),
      ('image', BLUE),                                    # unreferenced, sorted: fig03 then ui-toolbar
      ('image', GREY),                                    # ui-* never matches the figure regex
  ]
  local = skills.load_topic(skill, 'edit/menu')           # the store gives the same parts
  assert [p if isinstance(p, str) else p.data for p in local] == [p for _, p in parts]


def test_load_topic_whitespace_and_trailing_slash(skill):
  parts = texts_and_images(call(skill, 'load_topic', {'topic': '  view/zoom/ \n'}))
  assert parts == [('text', '# view/zoom/guide.md\n\nClick Zoom.\n')]


@pytest.mark.parametrize('topic', ['../toy-multimodal/edit/menu', 'edit/../view/zoom', '..', 'edit/menu/..'])
def test_load_topic_rejects_dotdot(skill, topic):
  assert "'..' is not allowed" in error_text(call(skill, 'load_topic', {'topic': topic}))


@pytest.mark.parametrize('topic', ['/etc', '/edit/menu', 'C:\\x', '\\edit'])
def test_load_topic_rejects_absolute(skill, topic):
  assert 'absolute paths are not allowed' in error_text(call(skill, 'load_topic', {'topic': topic}))


def test_load_topic_missing_topic_names_list_topics(skill):
  msg = error_text(call(skill, 'load_topic', {'topic': 'edit/nothing'}))
  assert "topic 'edit/nothing' not found" in msg and 'list_topics()' in msg
  msg = error_text(call(skill, 'load_topic', {'topic': 'edit'}))  # a folder without guide.md
  assert 'has no guide.md' in msg and 'list_topics()' in msg


def test_symlinks_leaving_the_skill_are_refused(skill, tmp_path):
  outside = tmp_path / 'outside'
  os.makedirs(outside / 'secret')
  (outside / 'secret' / 'guide.md').write_text('SECRET')
  (outside / 'leak.png').write_bytes(RED)
  os.symlink(outside / 'secret', os.path.join(skill, 'edit', 'escape'))           # folder link out
  os.makedirs(os.path.join(skill, 'edit', 'linked'))
  os.symlink(outside / 'secret' / 'guide.md', os.path.join(skill, 'edit', 'linked', 'guide.md'))  # file link out
  os.symlink(outside / 'leak.png', os.path.join(skill, 'view', 'zoom', 'fig05.png'))  # image link out
  os.symlink(os.path.join(skill, 'view'), os.path.join(skill, 'edit', 'inner'))   # link inside: allowed
  os.symlink(skill, os.path.join(skill, 'view', 'loop'))                          # a loop: not descended
  assert call(skill, 'list_topics').content[0].text == 'edit/inner/zoom\nedit/menu\nview/zoom'
  assert 'outside the skill' in error_text(call(skill, 'load_topic', {'topic': 'edit/escape'}))
  assert 'outside the skill' in error_text(call(skill, 'load_topic', {'topic': 'edit/linked'}))
  zoom = texts_and_images(call(skill, 'load_topic', {'topic': 'view/zoom'}))
  assert zoom == [('text', '# view/zoom/guide.md\n\nClick Zoom.\n')]             # the outside image is left out
  inner = texts_and_images(call(skill, 'load_topic', {'topic': 'edit/inner/zoom'}))
  assert inner == [('text', '# edit/inner/zoom/guide.md\n\nClick Zoom.\n')]


def test_validator_accepts_written_skill_and_names_each_problem(skill):
  assert skills.validate(skill) == []
  s = skill_md.read(skill)
  assert s.name == 'toy-multimodal' and [e.topic for e in s.entries] == ['edit/menu', 'view/zoom']
  assert s.entries[1].use_when == ('zoom in', 'bigger')
  path = os.path.join(skill, 'SKILL.md')
  good = open(path).read()

  def problems(text):
    with open(path, 'w') as f:
      f.write(text)
    return ' | '.join(skills.validate(skill))

  assert 'front matter' in problems(good.replace('---\nname', 'name', 1))
  assert 'not valid YAML' in problems(good.replace('name: toy-multimodal', 'name: [unclosed'))
  assert "non-empty string 'description'" in problems(good.replace('description: "A toy skill."', 'description: ""'))
  assert 'lowercase letters' in problems(good.replace('name: toy-multimodal', 'name: Toy Skill'))
  assert 'must tell the agent to call load_topic' in problems(good.replace('load_topic', 'open_file'))
  assert 'no "## Usage rules"' in problems(good.replace('## Usage rules', '## Notes'))
  assert "'view/zoom' has no **Use when:**" in problems(good.replace('**Use when:** zoom in, bigger', ''))
  assert "'view/zoom' is missing from the table" in problems(
      '\n'.join(l for l in good.splitlines() if 'view/zoom' not in l and 'zoom in' not in l) + '\n')
  assert "'edit/gone' points at no topic" in problems(good.replace('edit/menu/guide.md', 'edit/gone/guide.md'))
  assert 'is not "- [Title]' in problems(good.replace('- [Zoom](view/zoom/guide.md)', '- [Zoom] view/zoom'))
  os.remove(path)
  assert skills.validate(skill) == [f'{path}: no SKILL.md']


def test_text_twin_verbalises_figures_and_has_no_images(tmp_path):
  words = {'fig01.png': '(the icon: a red square)', 'fig02.png': '(the menu: a green panel)'}
  twin = skill_md.write_text_twin(tmp_path / 'toy-text', 'toy-text', 'A toy skill, text only.', 'Toy', specs(),
                                  lambda topic, fig: words.get(fig, f'({fig}: not described)'))
  assert skills.validate(twin) == []
  parts = texts_and_images(call(twin, 'load_topic', {'topic': 'edit/menu'}))
  assert parts == [('text', '# edit/menu/guide.md\n\nOpen the menu. See (the menu: a green panel) for the menu.\n'
                    'Then click the icon (the icon: a red square), and again (the menu: a green panel).\n'
                    'A missing (fig09.png: not described) stays text.\nDone.\n')]
  assert not any(f.endswith('.png') for _, _, fs in os.walk(twin) for f in fs)


def test_parts_to_text(skill):
  text = skills.parts_to_text(skills.load_topic(skill, 'edit/menu'))
  assert '`fig02.png`\n[image: fig02.png]\n for the menu' in text and text.endswith('[image: ui-toolbar.png]\n')
