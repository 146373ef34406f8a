"""ToyEdit: a small text-editor GUI drawn with Pillow, with a state machine and a checker per task.

The screen (640 × 400): a menu bar (File, Edit, View, Format, Tools, Help) whose menus drop down text items;
modal dialogs (Font… with Font / Size tabs, Options… with General / Editing tabs and check boxes, Export…);
an icon-only toolbar; the document area (which draws the state: ruler, grid, line numbers, ...).

Toolbar glyphs are randomised per app seed (two coloured primitives each), so no two seeds look alike; the
toolbar order is the seed's default (``layout='fixed'``) or a per-episode permutation (``'shuffled'``, a
user-customised toolbar; ``'shuffled_hidpi'`` also draws the icons resampled at ``icon_scale``, a display
scaling the skill's crops were not taken at), and the toolbar's x offset moves per episode in every case. Seven commands exist
only on the toolbar (no menu item, no text label): the tasks a text description has to locate by words.

``App.widgets()`` is the accessibility view an agent gets with the screenshot: every visible clickable
widget with its label and box; toolbar buttons have role 'icon' and an empty label (icon-only, no name).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

W, H = 640, 400
MENU_H, TOOL_Y, BTN = 20, 24, 28
TOOLBAR_X0 = 8

MENUS = {
    'File': ('New', 'Open…', 'Save', 'Export…'),
    'Edit': ('Undo', 'Redo', 'Select All'),
    'View': ('Word Wrap', 'Line Numbers', 'Status Bar'),
    'Format': ('Bold', 'Italic', 'Font…'),
    'Tools': ('Options…', 'Word Count'),
    'Help': ('About',),
}
DIALOGS = {  # name -> tabs -> controls (buttons or check boxes); every dialog has OK / Cancel (Export: Export)
    'Font': {'Font': ('Serif', 'Sans', 'Mono'), 'Size': ('10', '12', '14', '18')},
    'Options': {'General': ('Autosave',), 'Editing': ('Spell Check',)},
    'Export': {'': ('PDF', 'HTML', 'TXT')},
    'About': {'': ()},
}
CHECKBOXES = {'Autosave': 'autosave', 'Spell Check': 'spell_check'}
TOOLBAR = ('save', 'bold', 'ruler', 'focus_mode', 'track_changes', 'grid', 'invert', 'zoom_in', 'zoom_out',
           'sort_lines', 'print')
TOOLBAR_ONLY = ('ruler', 'focus_mode', 'track_changes', 'grid', 'invert', 'zoom_in', 'sort_lines')
SHAPES = ('circle', 'square', 'triangle', 'diamond', 'hbar', 'vbar', 'ring', 'cross')
COLOURS = {'red': (220, 40, 40), 'blue': (40, 80, 220), 'green': (30, 160, 60), 'orange': (245, 140, 20),
           'purple': (140, 50, 180), 'teal': (20, 150, 150), 'black': (20, 20, 20), 'magenta': (220, 40, 170)}
CORNERS = ('top left', 'top right', 'bottom left', 'bottom right')


@dataclasses.dataclass(frozen=True)
class Glyph:
  big: tuple[str, str]      # (colour, shape) of the large primitive
  small: tuple[str, str]    # (colour, shape) of the small one
  corner: str

  def words(self) -> str:
    return f'a {self.big[0]} {self.big[1]} with a small {self.small[0]} {self.small[1]} at its {self.corner}'


def glyphs_for_seed(seed: int) -> dict[str, Glyph]:
  """A distinct random glyph per toolbar command (the app seed decides)."""
  rng = np.random.default_rng(seed)
  out, used = {}, set()
  for cmd in TOOLBAR:
    while True:
      big = (str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
      small = (str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))
      g = Glyph(big, small, str(rng.choice(CORNERS)))
      if big != small and (big, small) not in used and big not in {u[0] for u in used}:
        used.add((big, small))
        out[cmd] = g
        break
  return out


def _shape(d: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], colour) -> None:
  x0, y0, x1, y1 = box
  cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
  if shape == 'circle':
    d.ellipse(box, fill=colour)
  elif shape == 'ring':
    d.ellipse(box, outline=colour, width=max(2, int(r / 3)))
  elif shape == 'square':
    d.rectangle(box, fill=colour)
  elif shape == 'triangle':
    d.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=colour)
  elif shape == 'diamond':
    d.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)
  elif shape == 'hbar':
    d.rectangle((x0, cy - r / 3, x1, cy + r / 3), fill=colour)
  elif shape == 'vbar':
    d.rectangle((cx - r / 3, y0, cx + r / 3, y1), fill=colour)
  elif shape == 'cross':
    d.line((x0, y0, x1, y1), fill=colour, width=3)
    d.line((x0, y1, x1, y0), fill=colour, width=3)


def draw_glyph(d: ImageDraw.ImageDraw, g: Glyph, x: int, y: int) -> None:
  d.rectangle((x, y, x + BTN - 1, y + BTN - 1), fill=(248, 248, 248), outline=(150, 150, 150))
  _shape(d, g.big[1], (x + 5, y + 5, x + 20, y + 20), COLOURS[g.big[0]])
  sx = x + (3 if 'left' in g.corner else 17)
  sy = y + (3 if 'top' in g.corner else 17)
  _shape(d, g.small[1], (sx, sy, sx + 8, sy + 8), COLOURS[g.small[0]])


@dataclasses.dataclass(frozen=True)
class Widget:
  label: str                       # '' for an icon-only button
  box: tuple[int, int, int, int]   # x0, y0, x1, y1 (inclusive-exclusive)
  role: str                        # 'menu', 'item', 'tab', 'button', 'checkbox', 'icon'
  action: tuple                    # what a click does (internal; agents must not read it)

  @property
  def centre(self) -> tuple[int, int]:
    return (self.box[0] + self.box[2]) // 2, (self.box[1] + self.box[3]) // 2


def default_state() -> dict:
  s = {c: False for c in TOOLBAR_ONLY if c not in ('zoom_in',)}
  s.update(zoom=100, font_size=12, font='Serif', bold=False, italic=False, word_wrap=False, line_numbers=False,
           status_bar=True, autosave=False, spell_check=False, exported=None, saved=0, printed=0)
  return s


class App:
  """The application: ``screenshot()``, ``widgets()``, ``click(x, y)``; ``state`` is what checkers read."""

  def __init__(self, seed: int, *, order: tuple[str, ...] | None = None, offset: int = 0,
               icon_scale: float = 1.0):
    self.seed, self.glyphs = seed, glyphs_for_seed(seed)
    self.order = tuple(order or TOOLBAR)
    self.offset = offset
    self.btn = int(round(BTN * icon_scale))  # toolbar button side in pixels (icons resampled when != BTN)
    if not BTN <= self.btn <= 35:
      raise ValueError(f'icon_scale={icon_scale}: the toolbar buttons must be 28 to 35 px (scale 1 to 1.25)')
    self.state = default_state()
    self.menu: str | None = None
    self.dialog: str | None = None
    self.tab = ''
    self.pending: dict = {}

  # ----- layout
  def _menubar(self) -> list[Widget]:
    out, x = [], 4
    for name in MENUS:
      w = 8 + 7 * len(name)
      out.append(Widget(name, (x, 0, x + w, MENU_H), 'menu', ('menu', name)))
      x += w + 4
    return out

  def _toolbar(self) -> list[Widget]:
    x0, b = TOOLBAR_X0 + self.offset, self.btn
    return [Widget('', (x0 + i * (b + 4), TOOL_Y, x0 + i * (b + 4) + b, TOOL_Y + b), 'icon', ('tool', c))
            for i, c in enumerate(self.order)]

  def _dropdown(self) -> list[Widget]:
    bar = {w.label: w for w in self._menubar()}[self.menu]
    x0 = bar.box[0]
    return [Widget(item, (x0, MENU_H + i * 20, x0 + 120, MENU_H + (i + 1) * 20), 'item', ('item', self.menu, item))
            for i, item in enumerate(MENUS[self.menu])]

  def _dialog(self) -> list[Widget]:
    x0, y0 = 170, 110
    out = []
    tabs = DIALOGS[self.dialog]
    for i, tab in enumerate(t for t in tabs if t):
      out.append(Widget(tab, (x0 + 10 + i * 80, y0 + 28, x0 + 80 + i * 80, y0 + 48), 'tab', ('tab', tab)))
    for i, ctl in enumerate(tabs[self.tab]):
      role = 'checkbox' if ctl in CHECKBOXES else 'button'
      out.append(Widget(ctl, (x0 + 20 + i * 70, y0 + 70, x0 + 80 + i * 70, y0 + 94), role, ('control', ctl)))
    ok = 'Export' if self.dialog == 'Export' else 'OK'
    out.append(Widget(ok, (x0 + 160, y0 + 140, x0 + 220, y0 + 164), 'button', ('ok',)))
    if self.dialog != 'About':
      out.append(Widget('Cancel', (x0 + 230, y0 + 140, x0 + 290, y0 + 164), 'button', ('cancel',)))
    return out

  def widgets(self) -> list[Widget]:
    """The clickable widgets now (a modal dialog hides the rest; an open menu lies on top)."""
    if self.dialog:
      return self._dialog()
    out = self._menubar() + self._toolbar()
    return (self._dropdown() + out) if self.menu else out

  # ----- behaviour
  def click(self, x: int, y: int) -> None:
    hit = next((w for w in self.widgets() if w.box[0] <= x < w.box[2] and w.box[1] <= y < w.box[3]), None)
    if self.menu and (hit is None or hit.action[0] != 'item'):
      self.menu = None
      if hit is None or hit.action[0] != 'menu':
        return
    if hit is None:
      return
    kind = hit.action[0]
    if kind == 'menu':
      self.menu = hit.action[1]
    elif kind == 'item':
      self.menu = None
      self._item(hit.action[2])
    elif kind == 'tool':
      self._tool(hit.action[1])
    elif kind == 'tab':
      self.tab = hit.action[1]
    elif kind == 'control':
      ctl = hit.action[1]
      if ctl in CHECKBOXES:
        key = CHECKBOXES[ctl]
        self.pending[key] = not self.pending.get(key, self.state[key])
      elif self.dialog == 'Font':
        self.pending['font_size' if ctl.isdigit() else 'font'] = int(ctl) if ctl.isdigit() else ctl
      elif self.dialog == 'Export':
        self.pending['export_format'] = ctl
    elif kind == 'ok':
      if self.dialog == 'Export':
        self.state['exported'] = self.pending.get('export_format')
      else:
        self.state.update(self.pending)
      self.dialog, self.pending = None, {}
    elif kind == 'cancel':
      self.dialog, self.pending = None, {}

  def _open(self, dialog: str) -> None:
    self.dialog, self.pending = dialog, {}
    self.tab = next(iter(DIALOGS[dialog]))

  def _item(self, item: str) -> None:
    s = self.state
    toggles = {'Word Wrap': 'word_wrap', 'Line Numbers': 'line_numbers', 'Status Bar': 'status_bar',
               'Bold': 'bold', 'Italic': 'italic'}
    if item in toggles:
      s[toggles[item]] = not s[toggles[item]]
    elif item == 'Save':
      s['saved'] += 1
    elif item.rstrip('…') in DIALOGS:
      self._open(item.rstrip('…'))

  def _tool(self, cmd: str) -> None:
    s = self.state
    if cmd == 'save':
      s['saved'] += 1
    elif cmd == 'print':
      s['printed'] += 1
    elif cmd in ('zoom_in', 'zoom_out'):
      s['zoom'] = max(25, min(400, s['zoom'] + (25 if cmd == 'zoom_in' else -25)))
    else:
      s[cmd] = not s[cmd]

  # ----- drawing
  def screenshot(self) -> Image.Image:
    img = Image.new('RGB', (W, H), (236, 236, 236) if not self.state['invert'] else (40, 40, 48))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, W, MENU_H), fill=(250, 250, 250))
    for w in self._menubar():
      d.text((w.box[0] + 4, 4), w.label, fill=(0, 0, 0))
    for w in self._toolbar():
      tile = Image.new('RGB', (BTN, BTN))
      draw_glyph(ImageDraw.Draw(tile), self.glyphs[w.action[1]], 0, 0)
      img.paste(tile if self.btn == BTN else tile.resize((self.btn, self.btn), Image.BILINEAR), w.box[:2])
    doc = (8, 60, W - 8, H - 24)
    d.rectangle(doc, fill=(255, 255, 255), outline=(180, 180, 180))
    s = self.state
    if s['ruler']:
      for x in range(doc[0] + 10, doc[2], 20):
        d.line((x, doc[1] + 2, x, doc[1] + 8), fill=(120, 120, 120))
    if s['grid']:
      for y in range(doc[1] + 20, doc[3], 20):
        d.line((doc[0], y, doc[2], y), fill=(225, 225, 240))
    for i in range(8):
      y = doc[1] + 16 + i * max(12, s['font_size'] + 4) * s['zoom'] // 100
      if y > doc[3] - 12:
        break
      if s['line_numbers']:
        d.text((doc[0] + 4, y), str(i + 1), fill=(150, 150, 150))
      d.text((doc[0] + 28, y), ('The quick brown fox jumps. ' * 3)[:40 + 20 * s['word_wrap']], fill=(0, 0, 0))
    if s['status_bar']:
      d.text((10, H - 18), f"zoom {s['zoom']}%  size {s['font_size']}", fill=(60, 60, 60))
    if self.menu:
      for w in self._dropdown():
        d.rectangle(w.box, fill=(252, 252, 252), outline=(200, 200, 200))
        d.text((w.box[0] + 6, w.box[1] + 5), w.label, fill=(0, 0, 0))
    if self.dialog:
      d.rectangle((170, 110, 470, 290), fill=(245, 245, 245), outline=(90, 90, 90), width=2)
      d.text((180, 116), self.dialog, fill=(0, 0, 0))
      for w in self._dialog():
        on = (w.role == 'tab' and w.label == self.tab) or (
            w.role == 'checkbox' and self.pending.get(CHECKBOXES[w.label], self.state[CHECKBOXES[w.label]]))
        d.rectangle(w.box, fill=(200, 220, 255) if on else (255, 255, 255), outline=(120, 120, 120))
        d.text((w.box[0] + 6, w.box[1] + 6), w.label, fill=(0, 0, 0))
    return img

  def _key(self) -> tuple:
    return (self.seed, self.order, self.offset, self.btn, tuple(sorted(self.state.items())), self.menu, self.dialog,
            self.tab, tuple(sorted(self.pending.items())))

  def pixels(self) -> np.ndarray:
    """[H, W, 3] uint8 screenshot (read-only; identical screens are drawn once: text rendering is slow)."""
    key = self._key()
    if key not in _PIXELS:
      if len(_PIXELS) > 4096:
        _PIXELS.clear()
      arr = np.array(self.screenshot())
      arr.setflags(write=False)
      _PIXELS[key] = arr
    return _PIXELS[key]


_PIXELS: dict[tuple, np.ndarray] = {}


def png_bytes(img: Image.Image) -> bytes:
  buf = io.BytesIO()
  img.save(buf, 'PNG')
  return buf.getvalue()


@dataclasses.dataclass(frozen=True)
class Task:
  """One task: the topic that documents it, two phrasings of the request, and the checker of the state."""
  topic: str
  phrasings: tuple[str, str]
  check: Callable[[dict], bool]
  toolbar_only: bool = False


TASKS = (
    Task('format/font-size', ('Make the document text 14 points large.', 'I need a bigger type size, 14.'),
         lambda s: s['font_size'] == 14),
    Task('view/word-wrap', ('Wrap long lines at the window edge.', 'Stop lines running off the right side.'),
         lambda s: s['word_wrap']),
    Task('view/line-numbers', ('Number each line in the margin.', 'Show me which line is which in the gutter.'),
         lambda s: s['line_numbers']),
    Task('tools/autosave', ('Save my work automatically from now on.', 'Turn on automatic saving.'),
         lambda s: s['autosave']),
    Task('tools/spell-check', ('Underline misspelled words as I type.', 'Check my spelling.'),
         lambda s: s['spell_check']),
    Task('file/export-pdf', ('Produce a PDF of this document.', 'Convert the file for printing as a PDF.'),
         lambda s: s['exported'] == 'PDF'),
    Task('format/bold', ('Make the text heavier, in bold.', 'Embolden the text.'), lambda s: s['bold']),
    Task('toolbar/ruler', ('Show a measuring ruler above the page.', 'I want to see tab stops and margins.'),
         lambda s: s['ruler'], True),
    Task('toolbar/focus-mode', ('Hide distractions so I can concentrate.', 'Enter distraction-free writing.'),
         lambda s: s['focus_mode'], True),
    Task('toolbar/track-changes', ('Record every edit so a reviewer can see it.', 'Keep a history of my revisions.'),
         lambda s: s['track_changes'], True),
    Task('toolbar/grid', ('Overlay alignment guides on the page.', 'Show layout gridlines.'),
         lambda s: s['grid'], True),
    Task('toolbar/invert', ('Switch to a dark theme.', 'Use light text on a dark background.'),
         lambda s: s['invert'], True),
    Task('toolbar/zoom-in', ('Magnify the page view.', 'Everything looks tiny, enlarge the view.'),
         lambda s: s['zoom'] > 100, True),
    Task('toolbar/sort-lines', ('Put the lines in alphabetical order.', 'Arrange the rows A to Z.'),
         lambda s: s['sort_lines'], True),
)
