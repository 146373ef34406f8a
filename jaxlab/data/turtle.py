"""A Pencil-Code-like turtle language: parser, interpreter with typed errors, rasteriser, and assignments.

Used by the student-trace experiment (Ross et al., arXiv 2510.05056; experiments/student_traces), whose
real data (Pencil Code programs) is gated: jaxlab simulates students writing programs in this language.

The language, one statement a line, blocks by indentation (two spaces), `#` starts a comment::

  # a red square
  pen red, 2
  for [1..4]
    fd 80
    rt 90
  roof = ->
    rt 30
    fd 40
  roof()

Commands (arguments comma separated): fd N, bk N, rt A, lt A (degrees; heading 0 is north, rt is
clockwise), pen COLOR[, WIDTH], pu, pd, jumpto X, Y (no line), moveto X, Y (a line when the pen is down),
dot [COLOR][, SIZE], box [COLOR][, SIZE], fill COLOR (fills the path drawn since the last pd / jumpto /
moveto-with-pen-up), label 'TEXT', speed N. `for [1..N]` repeats its block; `NAME = ->` defines a
function of no arguments, `NAME()` calls it.

Errors are typed (all `TurtleError`, with `.kind` and the 1-based `.line`): a program fails at parse time
(`TurtleSyntaxError`, `TurtleIndentError`, `UnknownCommandError`, `ArgumentError`, `UnknownColorError`) or at
run time (`UndefinedNameError`, `StepLimitError`). `run_program` returns a `Result` whose `error` is None on
success and whose `image` is the [size, size] colour-index raster (0 = background).

Assignments: `ASSIGNMENTS` holds a dozen parametrised drawings, each a list of `Part`s (a shape at a
place, optionally a repeated body); `Assignment.target()` is the raster of its canonical program and
`solved(image, target)` is the mirror-invariant IoU of the (3×3-dilated) ink masks ≥ `SOLVE_IOU`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Sequence

import numpy as np

COLORS = ('black', 'red', 'blue', 'green', 'orange', 'purple', 'pink', 'brown', 'gray', 'yellow', 'gold',
          'skyblue', 'navy', 'violet', 'cyan')
COLOR_INDEX = {c: i + 1 for i, c in enumerate(COLORS)}  # 0 is the background
CANVAS = 64            # raster size (pixels per side)
EXTENT = 200.0         # the raster spans world coordinates [-EXTENT, EXTENT] on both axes
MAX_STEPS = 20_000     # executed statements before StepLimitError
MAX_REPEAT = 1_000     # largest `for [1..N]` count
SOLVE_IOU = 0.7        # IoU of dilated ink masks at which a drawing counts as the target


class TurtleError(Exception):
  """A program error: ``kind`` names its type, ``line`` is 1-based (0 when not tied to a line)."""
  kind = 'error'

  def __init__(self, message: str, line: int = 0):
    super().__init__(f'line {line}: {message}' if line else message)
    self.line = line
    self.message = message


class TurtleSyntaxError(TurtleError):
  kind = 'syntax'


class TurtleIndentError(TurtleError):
  kind = 'indent'


class UnknownCommandError(TurtleError):
  kind = 'unknown_command'


class ArgumentError(TurtleError):
  kind = 'argument'


class UnknownColorError(TurtleError):
  kind = 'color'


class UndefinedNameError(TurtleError):
  kind = 'name'


class StepLimitError(TurtleError):
  kind = 'step_limit'


ERROR_KINDS = tuple(c.kind for c in (TurtleSyntaxError, TurtleIndentError, UnknownCommandError, ArgumentError,
                                     UnknownColorError, UndefinedNameError, StepLimitError))

# name -> argument kinds: 'n' number, 'c' colour, 's' string; '?' suffix = optional.
SIGNATURES = {
    'fd': ('n',), 'bk': ('n',), 'rt': ('n',), 'lt': ('n',), 'pen': ('c', 'n?'), 'pu': (), 'pd': (),
    'jumpto': ('n', 'n'), 'moveto': ('n', 'n'), 'dot': ('c?', 'n?'), 'box': ('c?', 'n?'), 'fill': ('c',),
    'label': ('s',), 'speed': ('n',),
}
COMMANDS = tuple(SIGNATURES)


@dataclasses.dataclass(frozen=True)
class Stmt:
  """One parsed statement: a command, a loop, a function definition or a call."""
  op: str                      # a command name, or 'for', 'def', 'call'
  args: tuple = ()
  body: tuple = ()             # 'for' and 'def' blocks
  line: int = 0


_NUM = re.compile(r'^-?\d+(\.\d+)?$')
_IDENT = re.compile(r'^[A-Za-z_]\w*$')
_FOR = re.compile(r'^for\s*\[\s*1\s*\.\.\s*(\S+?)\s*\]\s*$')
_DEF = re.compile(r'^([A-Za-z_]\w*)\s*=\s*->\s*$')
_CALL = re.compile(r'^([A-Za-z_]\w*)\s*\(\s*\)\s*$')


def _strip_comment(text: str) -> str:
  """Drops a `#` comment outside quotes."""
  quote = None
  for i, ch in enumerate(text):
    if quote:
      if ch == quote:
        quote = None
    elif ch in '\'"':
      quote = ch
    elif ch == '#':
      return text[:i]
  return text


def _parse_args(name: str, rest: str, lineno: int) -> tuple:
  sig = SIGNATURES[name]
  tokens = [t.strip() for t in rest.split(',')] if rest.strip() else []
  if any(not t for t in tokens):
    raise TurtleSyntaxError(f'empty argument in {name!r}', lineno)
  required = sum(1 for s in sig if not s.endswith('?'))
  if not required <= len(tokens) <= len(sig):
    want = str(required) if required == len(sig) else f'{required} to {len(sig)}'
    raise ArgumentError(f'{name} takes {want} argument(s), got {len(tokens)}', lineno)
  out, slots = [], list(sig)
  for tok in tokens:
    while slots:  # optional colour slots may be skipped by a number (`dot 20`)
      kind = slots.pop(0)
      base = kind.rstrip('?')
      if base == 'n' and _NUM.match(tok):
        out.append(float(tok))
        break
      if base == 's' and len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in '\'"':
        out.append(tok[1:-1])
        break
      if base == 'c' and _IDENT.match(tok) and not _NUM.match(tok):
        if tok not in COLOR_INDEX:
          raise UnknownColorError(f'unknown colour {tok!r}', lineno)
        out.append(tok)
        break
      if kind.endswith('?') and slots:
        out.append(None)
        continue
      if not (_NUM.match(tok) or _IDENT.match(tok) or tok[:1] in '\'"'):
        raise TurtleSyntaxError(f'cannot read argument {tok!r} of {name}', lineno)
      raise ArgumentError(f'{name}: argument {tok!r} is not a {dict(n="number", c="colour", s="string")[base]}',
                          lineno)
    else:
      raise ArgumentError(f'{name}: too many arguments', lineno)
  return tuple(out)


def _parse_line(text: str, lineno: int) -> Stmt:
  m = _FOR.match(text)
  if m:
    if not re.match(r'^\d+$', m.group(1)):
      raise TurtleSyntaxError(f'for [1..N] needs a whole number N, got {m.group(1)!r}', lineno)
    n = int(m.group(1))
    if n > MAX_REPEAT:
      raise StepLimitError(f'for [1..{n}] repeats more than {MAX_REPEAT} times', lineno)
    return Stmt('for', (n,), line=lineno)
  if text.startswith('for'):
    raise TurtleSyntaxError(f'malformed loop {text!r} (write for [1..N])', lineno)
  m = _DEF.match(text)
  if m:
    return Stmt('def', (m.group(1),), line=lineno)
  m = _CALL.match(text)
  if m:
    return Stmt('call', (m.group(1),), line=lineno)
  head, _, rest = text.partition(' ')
  if not _IDENT.match(head):
    raise TurtleSyntaxError(f'cannot read {text!r}', lineno)
  if head not in SIGNATURES:
    raise UnknownCommandError(f'unknown command {head!r}', lineno)
  return Stmt(head, _parse_args(head, rest, lineno), line=lineno)


def parse(source: str) -> tuple[Stmt, ...]:
  """Parses a program into statements (raises the parse-time TurtleErrors)."""
  rows = []
  for lineno, raw in enumerate(source.split('\n'), 1):
    text = _strip_comment(raw).rstrip()
    if not text.strip():
      continue
    if '\t' in text[:len(text) - len(text.lstrip())]:
      raise TurtleIndentError('tabs are not allowed in indentation', lineno)
    indent = len(text) - len(text.lstrip(' '))
    if indent % 2:
      raise TurtleIndentError(f'indentation of {indent} spaces is not a multiple of 2', lineno)
    rows.append((indent // 2, _parse_line(text.strip(), lineno)))

  def block(i: int, depth: int) -> tuple[list[Stmt], int]:
    out = []
    while i < len(rows) and rows[i][0] >= depth:
      level, stmt = rows[i]
      if level > depth:
        raise TurtleIndentError('unexpected indentation', stmt.line)
      i += 1
      if stmt.op in ('for', 'def'):
        if i >= len(rows) or rows[i][0] != depth + 1:
          raise TurtleIndentError(f'{"loop" if stmt.op == "for" else "function"} has no indented body',
                                  stmt.line)
        body, i = block(i, depth + 1)
        stmt = dataclasses.replace(stmt, body=tuple(body))
      out.append(stmt)
    return out, i

  stmts, i = block(0, 0)
  if i != len(rows):  # cannot happen: rows at depth < 0 do not exist
    raise TurtleIndentError('unexpected indentation', rows[i][1].line)
  return tuple(stmts)


@dataclasses.dataclass
class Result:
  """What running a program gives: the raster, the error (None on success) and counts."""
  image: np.ndarray              # [CANVAS, CANVAS] uint8 colour indices (0 = background)
  error: TurtleError | None
  steps: int = 0                 # statements executed

  @property
  def ok(self) -> bool:
    return self.error is None

  @property
  def ink(self) -> np.ndarray:
    return self.image > 0


@functools.lru_cache(maxsize=1)
def _pixel_centres() -> tuple[np.ndarray, np.ndarray]:
  """World coordinates of the pixel centres: x [1, CANVAS], y [CANVAS, 1] (row 0 is the top)."""
  step = 2 * EXTENT / CANVAS
  c = -EXTENT + step * (np.arange(CANVAS) + 0.5)
  return c[None, :], c[::-1][:, None]


class Canvas:
  """Rasterises turtle marks onto a colour-index image; world units, y up."""

  def __init__(self):
    self.image = np.zeros((CANVAS, CANVAS), np.uint8)
    self.px = 2 * EXTENT / CANVAS  # world units per pixel

  def _paint(self, where: np.ndarray, color: str):
    self.image[where] = COLOR_INDEX[color]

  def line(self, a, b, width: float, color: str):
    x, y = _pixel_centres()
    (ax, ay), (bx, by) = a, b
    dx, dy = bx - ax, by - ay
    den = dx * dx + dy * dy
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / den, 0, 1) if den > 0 else np.zeros_like(x + y)
    dist = np.hypot(x - (ax + t * dx), y - (ay + t * dy))
    self._paint(dist <= max(width / 2, 0.75 * self.px), color)

  def disc(self, c, diameter: float, color: str):
    x, y = _pixel_centres()
    self._paint(np.hypot(x - c[0], y - c[1]) <= max(diameter / 2, 0.75 * self.px), color)

  def square(self, c, side: float, color: str):
    x, y = _pixel_centres()
    h = max(side / 2, 0.75 * self.px)
    self._paint((np.abs(x - c[0]) <= h) & (np.abs(y - c[1]) <= h), color)

  def polygon(self, points: Sequence[tuple[float, float]], color: str):
    if len(points) < 3:
      return
    x, y = _pixel_centres()
    x, y = np.broadcast_arrays(x, y)
    inside = np.zeros(x.shape, bool)
    pts = list(points)
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):  # even-odd rule
      crosses = (y1 > y) != (y2 > y)
      with np.errstate(divide='ignore', invalid='ignore'):
        xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
      inside ^= crosses & (x < xi)
    self._paint(inside, color)


class Turtle:
  """Executes parsed statements on a Canvas."""

  def __init__(self, max_steps: int = MAX_STEPS):
    self.canvas = Canvas()
    self.x = self.y = 0.0
    self.heading = 0.0           # degrees clockwise from north
    self.down = True
    self.color, self.width = 'black', 1.0
    self.path = [(0.0, 0.0)]
    self.functions: dict[str, Stmt] = {}
    self.steps, self.max_steps = 0, max_steps

  def _move(self, nx: float, ny: float, draw: bool):
    if draw and self.down:
      self.canvas.line((self.x, self.y), (nx, ny), self.width, self.color)
      self.path.append((nx, ny))
    else:
      self.path = [(nx, ny)]
    self.x, self.y = nx, ny

  def _forward(self, d: float):
    r = math.radians(self.heading)
    self._move(self.x + d * math.sin(r), self.y + d * math.cos(r), True)

  def run(self, stmts: Sequence[Stmt]):
    for s in stmts:
      self.steps += 1
      if self.steps > self.max_steps:
        raise StepLimitError(f'more than {self.max_steps} statements executed', s.line)
      a = s.args
      if s.op == 'for':
        for _ in range(a[0]):
          self.run(s.body)
      elif s.op == 'def':
        self.functions[a[0]] = s
      elif s.op == 'call':
        if a[0] not in self.functions:
          raise UndefinedNameError(f'{a[0]!r} is not defined', s.line)
        self.run(self.functions[a[0]].body)
      elif s.op in ('fd', 'bk'):
        self._forward(a[0] if s.op == 'fd' else -a[0])
      elif s.op in ('rt', 'lt'):
        self.heading = (self.heading + (a[0] if s.op == 'rt' else -a[0])) % 360
      elif s.op == 'pen':
        self.color = a[0]
        if len(a) > 1 and a[1] is not None:
          self.width = a[1]
        self.down = True
        self.path = [(self.x, self.y)]
      elif s.op == 'pu':
        self.down = False
      elif s.op == 'pd':
        self.down = True
        self.path = [(self.x, self.y)]
      elif s.op == 'jumpto':
        self._move(a[0], a[1], False)
      elif s.op == 'moveto':
        self._move(a[0], a[1], True)
      elif s.op in ('dot', 'box'):
        color = (a[0] if a and a[0] else self.color)
        size = a[1] if len(a) > 1 and a[1] is not None else 9.0
        (self.canvas.disc if s.op == 'dot' else self.canvas.square)((self.x, self.y), size, color)
      elif s.op == 'fill':
        self.canvas.polygon(self.path, a[0])
      elif s.op == 'label':
        n = max(len(a[0]), 1)
        self.canvas.square((self.x + 3 * n, self.y), 0, self.color)  # a mark; text is not rendered
        for k in range(n):
          self.canvas.square((self.x + 6 * k, self.y + 5), 5, self.color)
      elif s.op == 'speed':
        pass
      else:  # parse() only produces the ops above
        raise UnknownCommandError(f'unknown command {s.op!r}', s.line)


def run_program(source: str, max_steps: int = MAX_STEPS) -> Result:
  """Parses and runs a program; errors come back in ``Result.error`` (the image holds what was drawn)."""
  turtle = Turtle(max_steps)
  try:
    turtle.run(parse(source))
  except TurtleError as e:
    return Result(turtle.canvas.image, e, turtle.steps)
  return Result(turtle.canvas.image, None, turtle.steps)


def _dilate(mask: np.ndarray) -> np.ndarray:
  p = np.pad(mask, 1)
  out = np.zeros_like(mask)
  for dy in range(3):
    for dx in range(3):
      out |= p[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
  return out


def iou(ink: np.ndarray, target: np.ndarray) -> float:
  """Mirror-invariant IoU of two ink masks after a 3×3 dilation (a student may turn left instead of right)."""
  a, t = _dilate(np.asarray(ink, bool)), _dilate(np.asarray(target, bool))
  best = 0.0
  for tt in (t, t[:, ::-1]):
    union = np.logical_or(a, tt).sum()
    best = max(best, float(np.logical_and(a, tt).sum() / union) if union else 1.0)
  return best


def solved(image: np.ndarray, target: np.ndarray, threshold: float = SOLVE_IOU) -> bool:
  return iou(np.asarray(image) > 0, np.asarray(target) > 0) >= threshold


# ----------------------------------------------------------------------------------------------------------
# Assignments: drawings made of parts. A body op is ('fd', d), ('turn', a) (positive = right), ('pu',),
# ('pd',), ('dot', size), ('box', size), ('fill',) or ('repeat', n, (ops...)) for a nested loop.


@dataclasses.dataclass(frozen=True)
class Part:
  """One piece of a drawing: jump to `at`, run `pre`, repeat `body` `repeat` times, run `post`."""
  name: str                                   # what a commenting student writes above it
  at: tuple[float, float] | None              # jumpto target (None: continue from where the turtle is)
  body: tuple                                 # ops repeated `repeat` times
  repeat: int = 1
  pre: tuple = ()
  post: tuple = ()
  fill: bool = False                          # a `fill COLOR` after the shape


@dataclasses.dataclass(frozen=True)
class Assignment:
  name: str
  title: str                                  # the program title in the serialised trace
  parts: tuple[Part, ...]

  def canonical(self) -> str:
    """The reference program: loops, right turns, black pen, no comments."""
    lines = []
    for p in self.parts:
      if p.at is not None:
        lines.append(f'jumpto {_num(p.at[0])}, {_num(p.at[1])}')
      lines += [_op_line(o, 0) for o in p.pre]
      if p.repeat > 1:
        lines.append(f'for [1..{p.repeat}]')
        lines += [_op_line(o, 1) for o in p.body]
      else:
        lines += [_op_line(o, 0) for o in p.body]
      lines += [_op_line(o, 0) for o in p.post]
      if p.fill:
        lines.append('fill black')
    return '\n'.join(lines)

  @functools.cached_property
  def target(self) -> np.ndarray:
    r = run_program(self.canonical())
    assert r.ok, (self.name, r.error)
    return r.image


def _num(v: float) -> str:
  return str(int(v)) if float(v).is_integer() else f'{v:g}'


def _op_line(op: tuple, depth: int) -> str:
  """The canonical text of one body op (nested repeats expand to several lines)."""
  pad = '  ' * depth
  kind = op[0]
  if kind == 'repeat':
    return '\n'.join([f'{pad}for [1..{op[1]}]'] + [_op_line(o, depth + 1) for o in op[2]])
  if kind == 'turn':
    return f'{pad}{"rt" if op[1] >= 0 else "lt"} {_num(abs(op[1]))}'
  if kind in ('dot', 'box'):
    return f'{pad}{kind} black, {_num(op[1])}'
  if kind == 'fd':
    return f'{pad}{"fd" if op[1] >= 0 else "bk"} {_num(abs(op[1]))}'
  return f'{pad}{kind}'


def polygon(name, at, n, side, **kw) -> Part:
  return Part(name, at, (('fd', side), ('turn', 360 / n)), repeat=n, **kw)


def make_assignments(scale: float = 1.0) -> tuple[Assignment, ...]:
  """The dozen assignments; `scale` multiplies every length (a parametrised family)."""
  s = lambda v: round(v * scale)  # noqa: E731
  sq = lambda name, at, side, **kw: polygon(name, at, 4, s(side), **kw)  # noqa: E731
  tri = lambda name, at, side, **kw: polygon(name, at, 3, s(side), pre=(('turn', 30),), post=(('turn', -30),),  # noqa: E731
                                             **kw)
  A = Assignment  # noqa: N806
  return (
      A('squares', 'Two squares', (sq('big square', (-120, -60), 100), sq('small square', (30, -30), 60),
                                   Part('dot', (s(60), s(60)), (('dot', s(20)),)))),
      A('house', 'A house', (sq('walls', (-60, -100), 120), tri('roof', (-60, 20), 120),
                             sq('door', (-15, -100), 30), sq('window', (20, -40), 25),
                             Part('sun', (s(120), s(130)), (('dot', s(40)),)))),
      A('hexagon', 'Hexagon and triangle', (polygon('hexagon', (-40, -120), 6, s(60)),
                                            tri('triangle', (-150, 60), 80), Part('centre', (0, 0), (('dot', 15),)))),
      A('star', 'A star', (Part('star', (-80, 20), (('fd', s(160)), ('turn', 144)), repeat=5, pre=(('turn', 72),),
                                post=(('turn', -72),)),
                           Part('dot', (0, s(-40)), (('dot', s(15)),)))),
      A('stairs', 'Staircase', (Part('stairs', (-140, -140), (('fd', s(40)), ('turn', 90), ('fd', s(40)),
                                                               ('turn', -90)), repeat=6),
                                Part('flag', (s(100), s(100)), (('fd', s(40)), ('turn', 90), ('fd', s(20)),
                                                                ('turn', 90), ('fd', s(10)), ('turn', 180))))),
      A('flower', 'A flower', (Part('petals', (0, 20), (('repeat', 4, (('fd', s(50)), ('turn', 90))), ('turn', 45)),
                                    repeat=8),
                               Part('stem', (0, 20), (('fd', s(-150)),)),
                               Part('centre', (0, 20), (('dot', s(20)),)))),
      A('dots', 'A row of dots', (Part('row', (-150, 0), (('dot', s(25)), ('pu',), ('turn', 90), ('fd', s(60)),
                                                           ('turn', -90), ('pd',)), repeat=5),
                                  sq('frame', (-170, -30), 60))),
      A('plus', 'Plus and cross', (Part('plus', (-80, 0), (('fd', s(60)), ('fd', s(-60)), ('turn', 90)), repeat=4),
                                   Part('cross', (80, 0), (('fd', s(60)), ('fd', s(-60)), ('turn', 90)), repeat=4,
                                        pre=(('turn', 45),), post=(('turn', -45),)))),
      A('zigzag', 'Zigzag line', (Part('zigzag', (-150, 0), (('turn', 45), ('fd', s(50)), ('turn', 90),
                                                             ('fd', s(50)), ('turn', -135)), repeat=4),
                                  sq('box', (-30, -120), 50))),
      A('window', 'A window', (sq('frame', (-80, -80), 160), Part('bars', (0, -80), (('fd', s(160)),)),
                               Part('bar', (-80, 0), (('turn', 90), ('fd', s(160)), ('turn', -90))))),
      A('snowman', 'Snowman', (Part('bottom', (0, -90), (('dot', s(100)),)), Part('middle', (0, 0), (('dot', s(70)),)),
                               Part('head', (0, 70), (('dot', s(45)),)),
                               Part('hat', (-20, 95), (('turn', 90), ('fd', s(40)), ('turn', -90)),
                                    post=())),),
      A('diamond', 'Filled diamond', (polygon('diamond', (0, -100), 4, s(100), pre=(('turn', 45),),
                                              post=(('turn', -45),), fill=True),
                                      Part('boxes', (-150, 120), (('box', s(20)), ('pu',), ('turn', 90), ('fd', s(50)),
                                                                  ('turn', -90), ('pd',)), repeat=3))),
  )


ASSIGNMENTS = make_assignments()
ASSIGNMENT_BY_NAME = {a.name: a for a in ASSIGNMENTS}
