"""experiments/visual_skill: the ToyEdit state machine and checkers, the skills built from it, the Agent
protocol with a mock agent over a real MCP session, template matching, and the tiny entry run."""

import asyncio
import json
import os

import mcp
import numpy as np
import pytest

from jaxlab.agents import skills
from jaxlab.agents.skills import server as server_lib

from experiments.visual_skill import agents, app as app_lib, build


def click_label(a, label):
  a.click(*next(w for w in a.widgets() if w.label == label).centre)


def test_app_dialog_route_and_checker():
  a = app_lib.App(0)
  task = next(t for t in app_lib.TASKS if t.topic == 'format/font-size')
  for label in ('Format', 'Font…', 'Size', '14'):
    click_label(a, label)
  assert not task.check(a.state)                        # pending until OK
  click_label(a, 'OK')
  assert task.check(a.state) and a.dialog is None
  for label in ('Format', 'Font…', 'Size', '18', 'Cancel'):
    click_label(a, label)
  assert a.state['font_size'] == 14                     # Cancel discards


def test_hidpi_icons_are_resampled_and_unit_scale_is_unchanged():
  a, b = app_lib.App(0), app_lib.App(0, icon_scale=1.25)
  wa, wb = ([w for w in x.widgets() if w.role == 'icon'] for x in (a, b))
  assert wa[0].box[2] - wa[0].box[0] == 28 and wb[0].box[2] - wb[0].box[0] == 35
  np.testing.assert_array_equal(app_lib.App(0, icon_scale=1.0).pixels(), a.pixels())
  with pytest.raises(ValueError, match='icon_scale=2'):
    app_lib.App(0, icon_scale=2)


def test_toolbar_is_icon_only_and_glyphs_differ_per_seed():
  a, b = app_lib.App(0), app_lib.App(1)
  icons = [w for w in a.widgets() if w.role == 'icon']
  assert len(icons) == len(app_lib.TOOLBAR) and all(w.label == '' for w in icons)
  assert a.glyphs != b.glyphs and len(set(a.glyphs.values())) == len(app_lib.TOOLBAR)
  ruler = next(w for w in icons if w.action == ('tool', 'ruler'))
  a.click(*ruler.centre)
  assert a.state['ruler']
  assert not any(app_lib.MENUS[m].count(c) for m in app_lib.MENUS for c in app_lib.TOOLBAR_ONLY)


def test_built_skills_are_valid_and_twin_has_words_not_images(tmp_path):
  visual, text = build.build_skills(3, str(tmp_path))
  assert skills.validate(visual) == [] and skills.validate(text) == []
  assert skills.list_topics(visual) == skills.list_topics(text) == sorted(build.ROUTES)
  parts = skills.load_topic(visual, 'toolbar/ruler')
  assert [p.name for p in parts if isinstance(p, skills.Figure)] == ['fig01.png', 'ui-toolbar.png']
  twin = skills.parts_to_text(skills.load_topic(text, 'toolbar/ruler'))
  glyph = app_lib.glyphs_for_seed(3)['ruler'].words()
  assert glyph in twin and 'button 3 of 11' in twin and '[image' not in twin


@pytest.mark.parametrize('scale', [1.0, 1.25])
def test_template_match_finds_the_icon_anywhere(scale):
  a = app_lib.App(2, order=tuple(reversed(app_lib.TOOLBAR)), offset=17, icon_scale=scale)
  ruler = next(w for w in a.widgets() if w.action == ('tool', 'ruler'))
  crop = np.asarray(app_lib.App(2).screenshot().crop(
      next(w for w in app_lib.App(2).widgets() if w.action == ('tool', 'ruler')).box))
  x, y = agents.template_match(a.pixels(), crop)
  assert ruler.box[0] <= x < ruler.box[2] and ruler.box[1] <= y < ruler.box[3]


class MockAgent:
  """Scripted actions; records every observation it was shown."""

  def __init__(self, actions):
    self.actions, self.seen, self.resets = list(actions), [], []

  def reset(self, task):
    self.resets.append(task)

  def act(self, obs):
    self.seen.append(obs)
    return self.actions.pop(0) if self.actions else agents.Done()


def test_agent_protocol_with_a_mock_over_mcp(tmp_path):
  visual, _ = build.build_skills(0, str(tmp_path))
  index = open(os.path.join(visual, 'SKILL.md')).read()
  task = next(t for t in app_lib.TASKS if t.topic == 'view/word-wrap')
  a = app_lib.App(0)
  view = next(w for w in a.widgets() if w.label == 'View')
  wrap = (view.box[0] + 10, app_lib.MENU_H + 10)   # the first item of the View menu: Word Wrap
  mock = MockAgent([agents.CallTool('load_topic', {'topic': '../x'}), agents.CallTool('load_topic',
                    {'topic': 'view/word-wrap'}), agents.Click(*view.centre), agents.Click(*wrap)])

  async def go():
    async with mcp.Client(server_lib.make_server(visual)) as client:
      return await agents.run_episode(mock, a, task, 'wrap please', client, index, max_steps=10)

  ep = asyncio.run(go())
  assert ep == agents.Episode(success=True, clicks=2, tool_calls=2, finished=True)
  assert mock.resets == ['wrap please'] and len(mock.seen) == 5
  assert "'..' is not allowed" in mock.seen[1].tool_error and mock.seen[1].tool_result is None
  parts = mock.seen[2].tool_result
  assert parts[0].startswith('# view/word-wrap/guide.md') and any(isinstance(p, skills.Figure) for p in parts)
  assert mock.seen[2].skill_index == index and mock.seen[0].screenshot.shape == (app_lib.H, app_lib.W, 3)
  assert all(w.label == '' for w in mock.seen[0].widgets if w.role == 'icon')
  assert mock.seen[3].tool_result is None                     # a result is shown once
  # the step budget: an agent that never stops is cut off
  loop = MockAgent([agents.Click(-1, -1)] * 50)
  ep = asyncio.run(agents.run_episode(loop, app_lib.App(0), task, 'x', None, None, max_steps=7))
  assert ep == agents.Episode(success=False, clicks=7, tool_calls=0, finished=False)


def test_tiny_entry(tmp_path):
  from experiments.visual_skill import main
  from experiments.visual_skill.configs import default
  out = main.run(default.get_config('tiny'), str(tmp_path))
  with open(tmp_path / 'results.json') as f:
    assert json.load(f)['table'] == json.loads(json.dumps(out['table']))
  t = out['table']
  assert t['visual skill (oracle topic) | shuffled']['toolbar_only']['success'] == 1.0
  assert t['visual skill (oracle topic) | shuffled']['menu_dialog']['success'] == 1.0
  assert t['text skill (oracle topic) | shuffled']['menu_dialog']['success'] == 1.0
  assert t['no skill | shuffled']['all']['tool_calls'] == 0
  assert 0 <= out['retrieval']['overlap']['recall@1'] <= out['retrieval']['overlap']['recall@3'] <= 1
