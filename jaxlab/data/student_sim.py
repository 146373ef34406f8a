"""A simulated class of students writing turtle programs (jaxlab.data.turtle), recorded as edit traces.

Stands in for the gated Pencil Code traces of Ross et al. (arXiv 2510.05056): no real-student data is used.
Each student has latent traits (`Traits`): skill (mistakes per line, how reliably an error is fixed),
commenting habit, backtracking tendency (deleting written lines, trying lines it later removes), edit chunk
size (lines written per save; a large chunk writes the whole program at once), tinkering after success, and
style (pen colours and a favourite palette, round numbers for widths and speeds and for wrong guesses,
loops vs unrolled code, functions, turning left instead of right, which mirrors the drawing).

`simulate_trace(student, assignment, seed)` writes the assignment's drawing in the student's style, saving
after every chunk; each save is run (jaxlab.data.turtle.run_program), a failing run is fixed at its error
line, a finished but wrong drawing has its wrong number fixed, a solved one may be tinkered with (colours,
comments, a speed line). Consecutive duplicate saves are dropped, as in the paper's pre-processing. Everything
is a deterministic function of the seed.

`serialize(trace)` gives the paper's text: the title line, then "CODE {i} ({YYYY-MM-DD HH:MM:SS}):\\n{program}"
blocks joined by newlines (i from 1), then `EOT`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib

import numpy as np

from jaxlab.data import turtle as T

EOT = '<|endoftext|>'
MAX_SAVES = 60
TRAIT_NAMES = ('skill', 'comment_rate', 'backtrack', 'chunk', 'tinker', 'colorful', 'round_numbers', 'loops',
               'functions', 'left_turns')


@dataclasses.dataclass(frozen=True)
class Traits:
  skill: float          # [0, 1]: fewer mistakes per line, more reliable fixes, rarely gives up
  comment_rate: float   # [0, 1]: probability of a comment line above each part
  backtrack: float      # [0, 1]: probability per save of deleting written lines or trying a line it removes later
  chunk: float          # > 0: mean lines written per save (a chunk ≥ the program's length writes it at once)
  tinker: float         # [0, 1]: probability of another cosmetic edit after the drawing is solved
  colorful: float       # [0, 1]: probability of a `pen COLOR` line per part
  round_numbers: float  # 0 or 1: widths, speeds and wrong guesses are multiples of 5 / 10
  loops: float          # [0, 1]: probability of writing a repeated body as a loop (else unrolled)
  functions: float      # [0, 1]: probability of wrapping a part in a function
  left_turns: float     # 0 or 1: turns left where the reference turns right (a mirrored drawing)

  def vector(self) -> np.ndarray:
    return np.array([getattr(self, k) for k in TRAIT_NAMES], np.float64)


@dataclasses.dataclass(frozen=True)
class Student:
  username: str
  traits: Traits
  palette: tuple[str, ...]   # favourite colours, most favourite first


def sample_student(index: int, seed: int = 0) -> Student:
  """Student `index` of the class drawn with `seed` (traits from fixed priors)."""
  rng = np.random.default_rng([seed, index, 17])
  t = Traits(skill=float(rng.beta(4, 2)), comment_rate=float(rng.beta(0.6, 1.6)),
             backtrack=float(rng.beta(1.0, 2.0)), chunk=float(np.exp(rng.normal(np.log(60), 2.2))),
             tinker=float(rng.beta(0.6, 4)), colorful=float(rng.beta(0.8, 0.8)), round_numbers=float(rng.random() < 0.5),
             loops=float(rng.beta(1.2, 0.8)), functions=float(rng.beta(0.5, 3)), left_turns=float(rng.random() < 0.3))
  palette = tuple(rng.choice(T.COLORS[1:], size=3, replace=False).tolist())
  return Student(f'student_{seed}_{index:04d}', t, palette)


@dataclasses.dataclass
class Trace:
  username: str
  title: str
  programs: list[str]     # the saved programs, in time order, consecutive duplicates dropped
  dates: list[str]        # 'YYYY-MM-DD HH:MM:SS' per program
  solved: bool            # the last program draws the target

  @property
  def final(self) -> str:
    return self.programs[-1]


def serialize(trace: Trace, include_title: bool = True) -> str:
  """The paper's trace text (title line, CODE blocks, end of text)."""
  blocks = '\n'.join(f'CODE {i + 1} ({d}):\n{p}' for i, (p, d) in enumerate(zip(trace.programs, trace.dates)))
  return (f'{trace.title}\n' if include_title else '') + blocks + EOT


def last_variant(trace: Trace) -> Trace:
  """The paper's `last` data: the final program only."""
  return dataclasses.replace(trace, programs=trace.programs[-1:], dates=trace.dates[-1:])


def synthetic_variant(trace: Trace) -> Trace:
  """The paper's `synthetic` data: the final program grown line by line, keeping the last min(#states, #lines)
  prefixes (each prefix ends at a line; the last one is the final program), dated like the trace's last saves."""
  lines = trace.final.split('\n')
  prefixes = ['\n'.join(lines[:i]) for i in range(1, len(lines) + 1)]
  n = min(len(trace.programs), len(prefixes))
  return dataclasses.replace(trace, programs=prefixes[-n:], dates=trace.dates[-n:])


# ------------------------------------------------------------------------------------------------------------
# Writing a program in a style.

def _num(v: float) -> str:
  return T._num(v)  # noqa: SLF001 (the language's own number format)


class _Writer:
  """Renders an assignment in a student's style as a flat list of lines (the intended final program)."""

  def __init__(self, student: Student, rng: np.random.Generator):
    self.s, self.t, self.rng = student, student.traits, rng
    self.sign = -1 if self.t.left_turns else 1

  def op_lines(self, op: tuple, depth: int, loops: bool) -> list[str]:
    pad = '  ' * depth
    kind = op[0]
    if kind == 'repeat':
      if loops:
        return [f'{pad}for [1..{op[1]}]'] + [x for o in op[2] for x in self.op_lines(o, depth + 1, loops)]
      return [x for _ in range(op[1]) for o in op[2] for x in self.op_lines(o, depth, loops)]
    if kind == 'turn':
      a = op[1] * self.sign
      return [f'{pad}{"rt" if a >= 0 else "lt"} {_num(abs(a))}']
    if kind == 'fd':
      return [f'{pad}{"fd" if op[1] >= 0 else "bk"} {_num(abs(op[1]))}']
    if kind in ('dot', 'box'):
      color = self.color()
      return [f'{pad}{kind} {color}, {_num(op[1])}']
    return [f'{pad}{kind}']

  def color(self) -> str:
    if self.rng.random() < 0.75:
      return self.s.palette[int(self.rng.integers(0, 2))]
    return str(self.rng.choice(T.COLORS))

  def part_lines(self, part: T.Part) -> list[str]:
    t, rng = self.t, self.rng
    out = []
    if rng.random() < t.comment_rate:
      out.append(f'# {part.name}')
    if part.at is not None:
      out.append(f'jumpto {_num(part.at[0] * self.sign)}, {_num(part.at[1])}')
    if rng.random() < t.colorful:
      width = int(rng.choice([2, 5, 10])) if t.round_numbers else int(rng.choice([1, 3, 4, 7]))
      out.append(f'pen {self.color()}, {width}' if rng.random() < 0.5 else f'pen {self.color()}')
    shape = [x for o in part.pre for x in self.op_lines(o, 0, True)]
    loops = rng.random() < t.loops
    body = [x for o in part.body for x in self.op_lines(o, 1 if loops and part.repeat > 1 else 0, loops)]
    if part.repeat > 1 and loops:
      shape += [f'for [1..{part.repeat}]'] + body
    else:
      shape += body * part.repeat
    shape += [x for o in part.post for x in self.op_lines(o, 0, True)]
    if part.fill:
      shape.append(f'fill {self.color()}')
    if rng.random() < t.functions and len(shape) > 1:
      name = ''.join(ch for ch in part.name.title() if ch.isalpha())
      name = name[0].lower() + name[1:]
      out += [f'{name} = ->'] + ['  ' + x for x in shape] + [f'{name}()']
    else:
      out += shape
    return out

  def program(self, assignment: T.Assignment) -> list[str]:
    lines = []
    if self.rng.random() < 0.4 * self.t.comment_rate:
      lines.append(f'# {assignment.title}')
    if self.rng.random() < 0.3:
      lines.append(f'speed {int(self.rng.choice([5, 10, 100]) if self.t.round_numbers else self.rng.choice([3, 7, 8]))}')
    for p in assignment.parts:
      lines += self.part_lines(p)
    return lines


# ------------------------------------------------------------------------------------------------------------
# Mistakes.

_TYPOS = {'fd': ('fw', 'df', 'forward'), 'bk': ('bck', 'kb'), 'rt': ('rigth', 'tr'), 'lt': ('lft', 'tl'),
          'jumpto': ('jumto', 'jump'), 'pen': ('pn',), 'dot': ('dto',), 'box': ('bx',), 'fill': ('fil',),
          'speed': ('sped',), 'pu': ('up',), 'pd': ('down',)}


def visible_mistake(line: str, rng: np.random.Generator) -> str | None:
  """A version of `line` that fails to run (typo, missing argument, bad colour, bad indentation, syntax)."""
  stripped = line.lstrip(' ')
  pad = line[:len(line) - len(stripped)]
  head, _, rest = stripped.partition(' ')
  options = []
  if head in _TYPOS:
    options.append(pad + str(rng.choice(_TYPOS[head])) + (' ' + rest if rest else ''))
  if head in ('fd', 'bk', 'rt', 'lt') and rest:
    options += [pad + head, pad + f'{head} {rest})']
  if head == 'jumpto' and ',' in rest:
    options.append(pad + f'jumpto {rest.split(",")[0]}')
  if head == 'pen' and rest:
    c = rest.split(',')[0]
    options.append(pad + f'pen {c[:-1] if len(c) > 3 else c + "e"}' + rest[len(c):])
  if head.startswith('for'):
    options.append(pad + 'for ' + stripped.split('..')[-1].rstrip(']'))
  if stripped.endswith('()'):
    options.append(pad + stripped[:-3] + '()')
  if pad:
    options.append(pad[:-1] + stripped)
  if not options:
    return None
  return str(options[int(rng.integers(0, len(options)))])


def silent_mistake(line: str, rng: np.random.Generator, round_numbers: bool) -> str | None:
  """A wrong number in a movement or turn (the program runs, the drawing is wrong)."""
  stripped = line.lstrip(' ')
  pad = line[:len(line) - len(stripped)]
  head, _, rest = stripped.partition(' ')
  if head not in ('fd', 'bk', 'rt', 'lt') or not rest:
    return None
  v = float(rest)
  if head in ('rt', 'lt'):
    wrong = float(rng.choice([a for a in (30, 45, 60, 90, 120, 135, 144) if a != v] or [v + 10]))
  elif round_numbers:
    wrong = float(rng.choice([x for x in (50, 100, 150, 200) if x != v]))
  else:
    wrong = max(1.0, round(v * float(rng.choice([0.5, 0.75, 1.3, 2.0]))))
  return f'{pad}{head} {_num(wrong)}'


# ------------------------------------------------------------------------------------------------------------
# The editing loop.

def _student_rng(username: str, title: str, seed: int) -> np.random.Generator:
  h = int.from_bytes(hashlib.sha256(f'{username}|{title}|{seed}'.encode()).digest()[:8], 'little')
  return np.random.default_rng(h)


def simulate_trace(student: Student, assignment: T.Assignment, seed: int = 0) -> Trace:
  """One student's edit trace on one assignment (deterministic in (student, assignment, seed))."""
  rng = _student_rng(student.username, assignment.name, seed)
  t = student.traits
  plan = _Writer(student, rng).program(assignment)
  p_visible = 0.03 * (1 - t.skill) ** 1.5
  p_silent = 0.01 * (1 - t.skill)
  buf: list[list] = []   # [text, plan index or -1 for an exploratory line]
  k = 0                  # plan lines written
  programs: list[str] = []
  when = datetime.datetime(2023, 1, 1) + datetime.timedelta(seconds=int(rng.integers(0, 2 * 365 * 86400)))
  dates: list[str] = []

  def text() -> str:
    return '\n'.join(x[0] for x in buf)

  def save(changed: int):
    nonlocal when
    src = text()
    if programs and src == programs[-1]:
      return
    if programs:
      when += datetime.timedelta(seconds=int(5 + changed * rng.uniform(4, 15) + rng.exponential(20)))
    programs.append(src)
    dates.append(when.strftime('%Y-%m-%d %H:%M:%S'))

  def write(j: int) -> list:
    line = plan[j]
    u = rng.random()
    if u < p_visible:
      line = visible_mistake(line, rng) or line
    elif u < p_visible + p_silent:
      line = silent_mistake(line, rng, bool(t.round_numbers)) or line
    return [line, j]

  for _ in range(MAX_SAVES):
    res = T.run_program(text()) if buf else None
    if res is not None and not res.ok:  # fix the failing line
      idx = min(max(res.error.line - 1, 0), len(buf) - 1)
      cell = buf[idx]
      if cell[1] < 0:
        del buf[idx]
      elif rng.random() < 0.55 + 0.45 * t.skill:
        cell[0] = plan[cell[1]]
      else:
        cell[0] = visible_mistake(plan[cell[1]], rng) or plan[cell[1]]
      save(1)
      continue
    if rng.random() < 0.02 * (1 - t.skill):  # gives up
      break
    extras = [i for i, c in enumerate(buf) if c[1] < 0]
    if extras and (rng.random() < 0.7 or k >= len(plan)):  # removes a line it was trying out
      del buf[extras[-1]]
      save(1)
      continue
    if k < len(plan):
      if len(buf) > 1 and rng.random() < 0.5 * t.backtrack:
        if rng.random() < 0.5:  # deletes the last lines it wrote (rewritten later)
          n = min(int(rng.integers(1, 4)), len(buf) - 1)
          for _ in range(n):
            c = buf.pop()
            if c[1] >= 0:
              k = min(k, c[1])
          save(n)
        else:  # tries a line it will remove
          pad = '  ' if buf[-1][0].startswith('  ') or buf[-1][0].startswith('for') else ''
          trial = str(rng.choice(['fd 50', 'rt 45', 'lt 90', 'bk 20', 'dot red, 10', 'fd 100']))
          buf.append([pad + trial, -1])
          save(1)
        continue
      n = max(1, int(round(t.chunk * rng.lognormal(0, 0.4))))
      new = [write(j) for j in range(k, min(k + n, len(plan)))]
      buf.extend(new)
      k += len(new)
      save(len(new))
      continue
    # everything written and it runs
    if not T.solved(res.image, assignment.target):
      wrong = [i for i, c in enumerate(buf) if c[1] >= 0 and c[0] != plan[c[1]]]
      if not wrong:  # cannot happen with a correct plan; stop rather than loop
        break
      i = wrong[int(rng.integers(0, len(wrong)))]
      if rng.random() < 0.6 + 0.4 * t.skill:
        buf[i][0] = plan[buf[i][1]]
      else:
        buf[i][0] = silent_mistake(plan[buf[i][1]], rng, bool(t.round_numbers)) or plan[buf[i][1]]
      save(1)
      continue
    if rng.random() >= t.tinker:
      break
    k += _tinker(buf, plan, student, rng)
    save(1)
  if not programs:
    save(0)
  final = T.run_program(programs[-1])
  return Trace(student.username, assignment.name, programs, dates,
               bool(final.ok and T.solved(final.image, assignment.target)))


def _tinker(buf: list[list], plan: list[str], student: Student, rng: np.random.Generator) -> int:
  """A cosmetic edit after success: a new pen colour, a comment, or a pen line (plan and buffer alike);
  returns the number of lines inserted."""
  pens = [i for i, c in enumerate(buf) if c[0].lstrip().startswith('pen ')]
  u = rng.random()
  if pens and u < 0.5:
    i = pens[int(rng.integers(0, len(pens)))]
    pad = buf[i][0][:len(buf[i][0]) - len(buf[i][0].lstrip())]
    rest = buf[i][0].lstrip()[4:].split(',')
    line = pad + 'pen ' + ','.join([str(rng.choice(student.palette))] + rest[1:])
  elif u < 0.75:
    spots = [j for j in range(len(buf) + 1) if j == len(buf) or not buf[j][0].startswith(' ')]
    i, line = spots[int(rng.integers(0, len(spots)))], None
    comment = '# ' + str(rng.choice(['done', 'my drawing', 'it works', 'fixed', 'nice']))
    buf.insert(i, [comment, -2])
    plan.insert(min(i, len(plan)), comment)
    _renumber(buf)
    return 1
  else:
    i = None
    line = f'pen {rng.choice(student.palette)}'
  if i is None:
    buf.insert(0, [line, -2])
    plan.insert(0, line)
    _renumber(buf)
    return 1
  buf[i][0] = line
  if buf[i][1] >= 0:
    plan[buf[i][1]] = line
  return 0


def _renumber(buf: list[list]) -> None:
  """After an insertion into the plan every written line's plan index is its position (all are written)."""
  for i, c in enumerate(buf):
    if c[1] != -1:
      c[1] = i


def simulate_class(num_students: int, assignments: tuple[T.Assignment, ...] = T.ASSIGNMENTS,
                   per_student: int = 6, seed: int = 0) -> tuple[list[Student], list[Trace]]:
  """`num_students` students, each doing `per_student` assignments drawn without replacement."""
  students = [sample_student(i, seed) for i in range(num_students)]
  traces = []
  for i, s in enumerate(students):
    rng = np.random.default_rng([seed, i, 29])
    for a in rng.choice(len(assignments), size=min(per_student, len(assignments)), replace=False):
      traces.append(simulate_trace(s, assignments[int(a)], seed))
  return students, traces
