"""The Agent protocol, the episode loop over a skill's MCP server, and three scripted agents.

An agent sees an :class:`Observation` (the task, the screenshot, the accessibility widgets: label, box and
role, with icon-only buttons unnamed; the skill's SKILL.md text when it has a skill; the result of its last
tool call) and returns an action: :class:`Click`, :class:`CallTool` (``list_topics`` / ``load_topic``, served
by the skill's MCP server through an in-process ``mcp.Client``) or :class:`Done`. A VLM agent implements
the same ``reset`` / ``act`` pair (the screenshot and the tool result's images are what it would be given).

The scripted agents bound what each modality carries; they are not the paper's Claude Code agent:

* :class:`NoSkillAgent` explores: it opens each menu and each dialog, clicks the first widget whose label
  shares a word with the task, confirms a dialog; with no match it clicks a random icon-only button.
* :class:`SkillAgent` picks a topic from SKILL.md's table of contents (a `select` function: word overlap,
  MiniLM retrieval or the oracle), calls ``load_topic``, then follows the numbered steps: a **bold** label is
  clicked by name; an icon-only step is located by ``locate_icon``: the visual agent template-matches the
  figure the server inserted in that step against the screenshot (sum of squared differences, via FFT);
  the text agent parses the words of the verbalised figure ("button 3 of 11") and clicks that position.
"""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from jaxlab.agents.skills import server as server_lib
from jaxlab.agents.skills import skill_md, store

from experiments.visual_skill import app as app_lib


@dataclasses.dataclass(frozen=True)
class Click:
  x: int
  y: int


@dataclasses.dataclass(frozen=True)
class CallTool:
  name: str
  arguments: dict


@dataclasses.dataclass(frozen=True)
class Done:
  pass


Action = Click | CallTool | Done


@dataclasses.dataclass(frozen=True)
class WidgetView:
  """What an agent may know of a widget (no access to what a click does)."""
  label: str
  box: tuple[int, int, int, int]
  role: str

  @property
  def centre(self) -> tuple[int, int]:
    return (self.box[0] + self.box[2]) // 2, (self.box[1] + self.box[3]) // 2


@dataclasses.dataclass
class Observation:
  task: str
  screenshot: np.ndarray                 # [H, W, 3] uint8
  widgets: list[WidgetView]
  skill_index: str | None                # SKILL.md text; None for an agent without a skill
  tool_result: list[store.Part] | None   # parts of the last tool call (text and images), if any
  tool_error: str | None                 # its error text when the server refused it
  step: int


class Agent(Protocol):
  def reset(self, task: str) -> None: ...

  def act(self, obs: Observation) -> Action: ...


@dataclasses.dataclass
class Episode:
  success: bool
  clicks: int
  tool_calls: int
  finished: bool     # the agent said Done within the step budget


def observe(app: app_lib.App, task: str, skill_index, tool_result, tool_error, step) -> Observation:
  widgets = [WidgetView(w.label, w.box, w.role) for w in app.widgets()]
  return Observation(task, app.pixels(), widgets, skill_index, tool_result, tool_error, step)


async def run_episode(agent: Agent, app: app_lib.App, task: app_lib.Task, instruction: str, client=None,
                      skill_index: str | None = None, max_steps: int = 40) -> Episode:
  """One episode: at most `max_steps` actions (clicks and tool calls); the task's checker decides success."""
  agent.reset(instruction)
  clicks = calls = 0
  result, error, finished = None, None, False
  for step in range(max_steps):
    action = agent.act(observe(app, instruction, skill_index, result, error, step))
    result, error = None, None
    if isinstance(action, Done):
      finished = True
      break
    if isinstance(action, Click):
      clicks += 1
      app.click(int(action.x), int(action.y))
    elif isinstance(action, CallTool):
      calls += 1
      if client is None:
        error = 'no skill server'
      else:
        r = await client.call_tool(action.name, action.arguments)
        parts = server_lib.content_to_parts(r.content)
        if r.is_error:
          error = store.parts_to_text(parts)
        else:
          result = parts
    else:
      raise TypeError(f'agent returned {action!r}, not Click / CallTool / Done')
  return Episode(bool(task.check(app.state)), clicks, calls, finished)


# ----- words
STOP = set('a an the my me i to so can of in on at as is it this that from now for be with and or by every each '
           'keep want need see make show turn use put which what all'.split())


def words(text: str) -> list[str]:
  return [w for w in re.findall(r'[a-z0-9]+', text.lower()) if w not in STOP]


def same_word(a: str, b: str) -> bool:
  return a == b or (len(a) >= 4 and len(b) >= 4 and a[:5] == b[:5])


def overlap(query: str, text: str) -> int:
  q, t = words(query), words(text)
  return sum(any(same_word(a, b) for b in t) for a in q)


def overlap_select(entries: Sequence[skill_md.Entry], instruction: str) -> str:
  """The entry sharing most words with the instruction (ties: the first)."""
  return max(entries, key=lambda e: overlap(instruction, e.text)).topic


# ----- agents
class NoSkillAgent:
  """Explores menus, then dialogs, for a widget named like a task word; else guesses an icon button."""

  def __init__(self, seed: int = 0):
    self.rng = np.random.default_rng(seed)

  def reset(self, task: str) -> None:
    self.plan = None

  def _matches(self, w: WidgetView, task: str) -> bool:
    return bool(w.label) and any(same_word(a, b) for a in words(w.label) for b in words(task))

  def act(self, obs: Observation) -> Action:
    self._last = obs  # the plan (a generator) reads the screen it acts on through self._last
    if self.plan is None:
      self.plan = self._explore(obs.task)
    return next(self.plan, Done())

  def _explore(self, task: str):
    """Actions: pass 1 over the menus' items, pass 2 through every dialog; else one random icon."""
    menus = [w.label for w in self._last.widgets if w.role == 'menu']
    for m in menus:
      yield self._click_label(m)
      hit = next((w for w in self._last.widgets if w.role == 'item' and self._matches(w, task)), None)
      if hit is not None:
        yield Click(*hit.centre)
        if any(w.role in ('button', 'checkbox') for w in self._last.widgets):
          yield from self._in_dialog(task)
        return
      yield Click(-1, -1)  # close the menu (a click on nothing)
    for m in menus:
      yield self._click_label(m)
      dialogs = [w.label for w in self._last.widgets if w.role == 'item' and w.label.endswith('…')]
      yield Click(-1, -1)
      for d in dialogs:
        yield self._click_label(m)
        yield self._click_label(d)
        found = yield from self._in_dialog(task, only_if_match=True)
        if found:
          return
    icons = [w for w in self._last.widgets if w.role == 'icon']
    if icons:
      yield Click(*icons[int(self.rng.integers(len(icons)))].centre)

  def _click_label(self, label: str) -> Action:
    w = next((w for w in self._last.widgets if w.label == label), None)
    return Click(*w.centre) if w else Click(-1, -1)

  def _in_dialog(self, task, only_if_match=False):
    tabs = [w.label for w in self._last.widgets if w.role == 'tab'] or ['']
    for tab in tabs:
      if tab:
        yield self._click_label(tab)
      hit = next((w for w in self._last.widgets if w.role in ('button', 'checkbox') and w.label not in
                  ('OK', 'Cancel', 'Export') and self._matches(w, task)), None)
      if hit is not None:
        yield Click(*hit.centre)
        yield self._click_label('Export' if any(w.label == 'Export' for w in self._last.widgets) else 'OK')
        return True
    if only_if_match:
      yield self._click_label('Cancel')
      return False
    yield self._click_label('OK')
    return True


STEP_RE = re.compile(r'^\d+\.\s', re.M)
BOLD_RE = re.compile(r'\*\*(.+?)\*\*')
POSITION_RE = re.compile(r'button (\d+) of (\d+)')


def guide_steps(parts: Sequence[store.Part]) -> list[tuple[str, list[bytes]]]:
  """The numbered steps of a loaded topic: (step text, images inserted inside that step)."""
  steps: list[tuple[str, list[bytes]]] = []
  for p in parts:
    if isinstance(p, store.Figure):
      if steps:
        steps[-1][1].append(p.data)
      continue
    pieces = STEP_RE.split(p)
    starts = [m.start() for m in STEP_RE.finditer(p)]
    if steps and pieces and (not starts or starts[0] > 0):
      steps[-1] = (steps[-1][0] + pieces[0], steps[-1][1])
    for piece in pieces[1:]:
      steps.append((piece, []))
  return [(t.split('\n\n')[0], imgs) for t, imgs in steps]


def template_match(screen: np.ndarray, template: np.ndarray) -> tuple[int, int]:
  """Centre (x, y) of the window of `screen` [H, W, 3] closest to `template` [h, w, 3] in squared error."""
  s, t = screen.astype(np.float64), template.astype(np.float64)
  hh, ww = t.shape[:2]
  shape = (s.shape[0] + hh, s.shape[1] + ww)
  corr = np.zeros((s.shape[0] - hh + 1, s.shape[1] - ww + 1))
  for c in range(3):
    f = np.fft.irfft2(np.fft.rfft2(s[..., c], shape) * np.conj(np.fft.rfft2(t[..., c], shape)), shape)
    corr += f[:corr.shape[0], :corr.shape[1]]
  sq = np.pad((s ** 2).sum(-1), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
  win = sq[hh:, ww:] - sq[:-hh, ww:] - sq[hh:, :-ww] + sq[:-hh, :-ww]
  ssd = win - 2 * corr + (t ** 2).sum()
  y, x = np.unravel_index(np.argmin(ssd), ssd.shape)
  return int(x + ww // 2), int(y + hh // 2)


class SkillAgent:
  """Loads one topic and follows its steps; `modality` 'visual' or 'text' decides how icons are found."""

  def __init__(self, modality: str, select: Callable[[Sequence[skill_md.Entry], str], str], seed: int = 0):
    if modality not in ('visual', 'text'):
      raise ValueError(f'modality {modality!r}: expected visual or text')
    self.modality, self.select = modality, select
    self.rng = np.random.default_rng(seed)

  def reset(self, task: str) -> None:
    self.steps, self.topic = None, None

  def act(self, obs: Observation) -> Action:
    if self.steps is None:
      if obs.tool_result is not None:
        self.steps = list(guide_steps(obs.tool_result))
      elif self.topic is None and obs.skill_index:
        entries = skill_md.parse(obs.skill_index)[0].entries
        self.topic = self.select(entries, obs.task)
        return CallTool('load_topic', {'topic': self.topic})
      else:
        return Done()
    while self.steps:
      text, images = self.steps.pop(0)
      bold = BOLD_RE.search(text)
      if bold:
        w = next((w for w in obs.widgets if w.label == bold.group(1)), None)
        if w is not None:
          return Click(*w.centre)
        continue
      if 'toolbar button' in text:
        return Click(*self.locate_icon(obs, text, images))
    return Done()

  def locate_icon(self, obs: Observation, text: str, images: list[bytes]) -> tuple[int, int]:
    icons = sorted((w for w in obs.widgets if w.role == 'icon'), key=lambda w: w.box[0])
    if self.modality == 'visual' and images:
      return template_match(obs.screenshot, np.asarray(Image.open(io.BytesIO(images[0])).convert('RGB')))
    m = POSITION_RE.search(text)
    if m and icons and int(m.group(1)) <= len(icons):
      return icons[int(m.group(1)) - 1].centre
    return icons[int(self.rng.integers(len(icons)))].centre if icons else (-1, -1)
