"""Skills for ToyEdit built from its widget metadata and crawled region crops, and the text-only twin.

Per topic the route (the widget clicks that do the task) comes from the app's metadata; replaying it on a
fresh app (default toolbar order, offset 0) crawls the crops: the open menu, the dialog after each step, the
icon button. The multimodal guide names each crop as a backticked `figNN.png` right where the step uses it;
toolbar topics also hold `ui-toolbar.png` (the whole toolbar; it never matches the figure regex, so the
server appends it). The text twin replaces each figure mention by words made from the same metadata: the
items of a menu, the controls of a dialog, and for an icon its glyph in words plus its position on the
toolbar ("button 3 of 11, counting from the left"), the description a careful verbaliser would write.
"""

from __future__ import annotations

import os

from jaxlab.agents import skills
from jaxlab.agents.skills import skill_md

from experiments.visual_skill import app as app_lib

ROUTES = {
    'format/font-size': [('menu', 'Format'), ('item', 'Font…'), ('tab', 'Size'), ('control', '14'), ('ok', 'OK')],
    'view/word-wrap': [('menu', 'View'), ('item', 'Word Wrap')],
    'view/line-numbers': [('menu', 'View'), ('item', 'Line Numbers')],
    'tools/autosave': [('menu', 'Tools'), ('item', 'Options…'), ('tab', 'General'), ('control', 'Autosave'),
                       ('ok', 'OK')],
    'tools/spell-check': [('menu', 'Tools'), ('item', 'Options…'), ('tab', 'Editing'), ('control', 'Spell Check'),
                          ('ok', 'OK')],
    'file/export-pdf': [('menu', 'File'), ('item', 'Export…'), ('control', 'PDF'), ('ok', 'Export')],
    'format/bold': [('menu', 'Format'), ('item', 'Bold')],
}
ROUTES.update({f'toolbar/{c.replace("_", "-")}': [('icon', c)] for c in app_lib.TOOLBAR_ONLY})

TOC = {  # title, summary, use-when keywords (written from the app's metadata, not from the task phrasings)
    'format/font-size': ('Change the font size', 'the Font… dialog, Size tab.', 'font size, text size, points'),
    'view/word-wrap': ('Toggle word wrap', 'View menu, Word Wrap.', 'word wrap, long lines, wrapping'),
    'view/line-numbers': ('Show line numbers', 'View menu, Line Numbers.', 'line numbers, gutter, margin numbers'),
    'tools/autosave': ('Enable autosave', 'Options… dialog, General tab.', 'autosave, automatic save, backup'),
    'tools/spell-check': ('Spell checking', 'Options… dialog, Editing tab.', 'spelling, spell check, typos'),
    'file/export-pdf': ('Export to PDF', 'the Export… dialog.', 'export, PDF, convert, publish'),
    'format/bold': ('Bold text', 'Format menu, Bold.', 'bold, heavy, strong emphasis'),
    'toolbar/ruler': ('Show the ruler', 'an icon-only toolbar button.', 'ruler, tab stops, margins, measure'),
    'toolbar/focus-mode': ('Focus mode', 'an icon-only toolbar button.', 'focus, distraction free, concentrate'),
    'toolbar/track-changes': ('Track changes', 'an icon-only toolbar button.', 'track changes, revisions, review'),
    'toolbar/grid': ('Show the grid', 'an icon-only toolbar button.', 'grid, gridlines, alignment guides'),
    'toolbar/invert': ('Invert colours', 'an icon-only toolbar button.', 'dark mode, invert, night theme'),
    'toolbar/zoom-in': ('Zoom in', 'an icon-only toolbar button.', 'zoom in, magnify, enlarge view'),
    'toolbar/sort-lines': ('Sort lines', 'an icon-only toolbar button.', 'sort lines, alphabetical, order rows'),
}


def _find(app: app_lib.App, step: tuple) -> app_lib.Widget:
  kind, what = step
  for w in app.widgets():
    if (kind == 'icon' and w.action == ('tool', what)) or (kind != 'icon' and w.label == what):
      return w
  raise KeyError(f'route step {step} not on screen')


def _crop(app: app_lib.App, box) -> bytes:
  return app_lib.png_bytes(app.screenshot().crop(box))


def crawl(seed: int, topic: str) -> tuple[str, dict[str, bytes], dict[str, str]]:
  """(multimodal guide, figures, words per figure) of one topic for the app of `seed`."""
  app = app_lib.App(seed)
  lines, figures, words = [f'# {TOC[topic][0]}\n', ''], {}, {}
  for i, step in enumerate(ROUTES[topic], 1):
    w = _find(app, step)
    kind, what = step
    if kind == 'icon':
      fig = f'fig{len(figures) + 1:02d}.png'
      figures[fig] = _crop(app, w.box)
      pos = app.order.index(what) + 1
      words[fig] = (f'(an icon of {app.glyphs[what].words()}; it is button {pos} of {len(app.order)} on the '
                    'toolbar, counting from the left)')
      lines.append(f'{i}. This command has no menu item and no text label: click the toolbar button shown in '
                   f'`{fig}`.')
      bar = app._toolbar()  # pylint: disable=protected-access
      figures['ui-toolbar.png'] = _crop(app, (bar[0].box[0] - 2, bar[0].box[1] - 2, bar[-1].box[2] + 2,
                                              bar[-1].box[3] + 2))
    else:
      where = {'menu': 'in the menu bar', 'item': 'in the open menu', 'tab': 'tab in the dialog',
               'control': 'in the dialog', 'ok': 'to confirm'}[kind]
      app.click(*w.centre)
      line = f'{i}. Click **{what}** {where}.'
      if kind == 'menu' or (kind in ('item', 'tab') and app.dialog):
        fig = f'fig{len(figures) + 1:02d}.png'
        if kind == 'menu':
          drop = app._dropdown()  # pylint: disable=protected-access
          figures[fig] = _crop(app, (drop[0].box[0], drop[0].box[1], drop[-1].box[2], drop[-1].box[3]))
          words[fig] = f'(the open {what} menu lists: {", ".join(app_lib.MENUS[what])})'
        else:
          figures[fig] = _crop(app, (170, 110, 471, 291))
          controls = ', '.join(x.label for x in app.widgets())
          words[fig] = f'(the {app.dialog} dialog{", " + app.tab + " tab" if app.tab else ""} shows: {controls})'
        line += f' It looks like `{fig}`.'
      lines.append(line)
  ok = ROUTES[topic][-1]
  check = 'the toolbar button shows the new state in the page' if ok[0] == 'icon' else 'the dialog closes'
  lines += ['', f'Check: {check}.', '']
  return '\n'.join(lines), figures, words


def build_skills(seed: int, out_dir: str) -> tuple[str, str]:
  """Writes <out_dir>/toyedit-multimodal and <out_dir>/toyedit-text for the app of `seed`; returns both paths."""
  specs, all_words = [], {}
  for topic in ROUTES:
    guide, figures, words = crawl(seed, topic)
    title, summary, use = TOC[topic]
    specs.append(skill_md.TopicSpec(topic, title, summary, [k.strip() for k in use.split(',')], guide, figures))
    all_words[topic] = words
  desc = 'How to operate the ToyEdit text editor: menus, dialogs and its icon-only toolbar.'
  visual = skill_md.write_skill(os.path.join(out_dir, 'toyedit-multimodal'), 'toyedit-multimodal', desc,
                                'ToyEdit', specs)
  text = skill_md.write_text_twin(os.path.join(out_dir, 'toyedit-text'), 'toyedit-text', desc + ' Text only.',
                                  'ToyEdit', specs, lambda topic, fig: all_words[topic][fig])
  assert skills.validate(visual) == [] and skills.validate(text) == []
  return visual, text
