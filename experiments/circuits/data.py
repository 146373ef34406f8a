"""Prompt sets for the circuit tasks on SmolLM2's tokenizer: IOI, greater-than, entity tracking.

Each builder returns a `TaskSet`: clean and corrupted token batches of one length (templates whose
token lengths differ are dropped, so the batch needs no padding and positions line up), the answer and
wrong-answer token ids per prompt, and bool masks [batch, length] for each token role (what the offline
clusterer's attention features read). Names, objects and box labels are single tokens with their
leading space under the SmolLM2 tokenizer (checked here: a word that is not is refused).
"""

from __future__ import annotations

import dataclasses

import numpy as np

NAMES = ('Mary', 'John', 'Tom', 'James', 'Anna', 'Paul', 'Mark', 'Sarah', 'Lisa', 'David', 'Michael', 'Kate',
         'Emma', 'Jack', 'Peter', 'Susan', 'Alice', 'Bob', 'Linda', 'Laura', 'Frank', 'George', 'Helen', 'Dan')
# IOI templates (Wang et al. 2022 style); {A} {B}: the two names of the first clause, {S}: the subject.
IOI_TEMPLATES = (
    'Then, {A} and {B} went to the store. {S} gave a drink to',
    'Then, {A} and {B} went to the park. {S} gave a ball to',
    'When {A} and {B} went to the office, {S} gave a letter to',
    'Afterwards, {A} and {B} went to the garden. {S} gave a flower to',
)
NOUNS = ('war', 'expedition', 'project', 'drought', 'reign', 'journey', 'dynasty', 'siege', 'famine', 'trial')
GT_TEMPLATE = 'The {noun} lasted from the year 17{yy:02d} to the year 17'
OBJECTS = ('apple', 'key', 'coin', 'book', 'ball', 'cup', 'pen', 'hat', 'ring', 'map', 'watch', 'shoe')
BOXES = ('A', 'B', 'C')
DIGITS = tuple(str(d) for d in range(10))


@dataclasses.dataclass
class TaskSet:
  name: str
  clean: np.ndarray          # [n, t] int32
  corrupt: np.ndarray        # [n, t] int32
  answer: np.ndarray         # [n] token id of the right answer on the clean prompt
  wrong: np.ndarray          # [n] token id of the competing answer (IOI: S; entity: the corrupted answer)
  roles: dict[str, np.ndarray]  # role -> [n, t] bool
  texts: list[str]
  extra: dict = dataclasses.field(default_factory=dict)


def single_token(tok, word: str) -> int:
  ids = tok.encode(word).ids
  if len(ids) != 1:
    raise ValueError(f'{word!r} is {len(ids)} SmolLM2 tokens, not one')
  return ids[0]


def _role_mask(ids: list[int], token: int, occurrence: int) -> np.ndarray:
  hits = [i for i, x in enumerate(ids) if x == token]
  m = np.zeros(len(ids), bool)
  m[hits[occurrence]] = True
  return m


def _keep_modal_length(rows):
  lengths = [len(r[0]) for r in rows]
  modal = max(set(lengths), key=lengths.count)
  return [r for r in rows if len(r[0]) == modal]


def ioi(tok, n: int, seed: int = 0) -> TaskSet:
  """n IOI prompts, half BABA (S first) and half ABBA (IO first); ABC corruption: the three name slots
  get three other distinct names. Metric: logit(IO) - logit(S) at the last token."""
  rng = np.random.default_rng(seed)
  name_ids = {nm: single_token(tok, ' ' + nm) for nm in NAMES}
  rows = []
  while len(rows) < 4 * n:
    tpl = IOI_TEMPLATES[rng.integers(len(IOI_TEMPLATES))]
    io, s, c1, c2, c3 = rng.choice(NAMES, 5, replace=False)
    order = 'ABBA' if len(rows) % 2 == 0 else 'BABA'
    a, b = (io, s) if order == 'ABBA' else (s, io)
    text = tpl.format(A=a, B=b, S=s)
    bad = tpl.format(A=c1, B=c2, S=c3)
    ids, cids = tok.encode(text).ids, tok.encode(bad).ids
    if len(ids) != len(cids):
      continue
    rows.append((ids, cids, name_ids[io], name_ids[s], text, order))
  rows = _keep_modal_length(rows)[:n]
  if len(rows) < n:
    raise ValueError(f'only {len(rows)} IOI prompts of one length; ask for fewer (n={n})')
  roles = {'IO': [], 'S1': [], 'S2': [], 'END': []}
  for ids, _, io, s, _, _ in rows:
    roles['IO'].append(_role_mask(ids, io, 0))
    roles['S1'].append(_role_mask(ids, s, 0))
    roles['S2'].append(_role_mask(ids, s, 1))
    end = np.zeros(len(ids), bool)
    end[-1] = True
    roles['END'].append(end)
  return TaskSet('ioi', np.asarray([r[0] for r in rows], np.int32), np.asarray([r[1] for r in rows], np.int32),
                 np.asarray([r[2] for r in rows]), np.asarray([r[3] for r in rows]),
                 {k: np.stack(v) for k, v in roles.items()}, [r[4] for r in rows],
                 {'order': [r[5] for r in rows]})


def greater_than(tok, n: int, seed: int = 0) -> TaskSet:
  """n prompts 'The <noun> lasted from the year 17YY to the year 17' (YY in 10..89, so the tens digit
  has smaller and larger alternatives); corruption YY = 01 (Hanna et al.). The next token is the tens digit
  (SmolLM2 splits digits). Patching metric: P(tens > Y1) - P(tens < Y1) over the ten digit tokens."""
  rng = np.random.default_rng(seed)
  digit = np.asarray([single_token(tok, d) for d in DIGITS])
  rows = []
  for _ in range(n):
    noun, yy = NOUNS[rng.integers(len(NOUNS))], int(rng.integers(10, 90))
    ids = tok.encode(GT_TEMPLATE.format(noun=noun, yy=yy)).ids
    cids = tok.encode(GT_TEMPLATE.format(noun=noun, yy=1)).ids
    rows.append((ids, cids, yy, GT_TEMPLATE.format(noun=noun, yy=yy)))
  rows = _keep_modal_length(rows)
  if len(rows) < n:
    raise ValueError(f'greater-than prompts of unequal length ({len(rows)} of {n} kept)')
  t = len(rows[0][0])
  roles = {k: np.zeros((n, t), bool) for k in ('YY', 'century', 'END')}
  # '... year', ' ', '1', '7', Y1, Y2, ' to', ' the', ' year', ' ', '1', '7'
  roles['YY'][:, t - 8:t - 6] = True
  roles['century'][:, t - 10:t - 8] = True
  roles['END'][:, -1] = True
  yy = np.asarray([r[2] for r in rows])
  for ids, _, y, _ in rows:
    assert ids[t - 8] == digit[y // 10] and ids[t - 7] == digit[y % 10], 'the YY tokens moved'
  tens = yy // 10
  good = np.zeros((n, tok.get_vocab_size()), bool)
  bad = np.zeros_like(good)
  for i, y1 in enumerate(tens):
    good[i, digit[y1 + 1:]] = True
    bad[i, digit[:y1]] = True
  return TaskSet('greater_than', np.asarray([r[0] for r in rows], np.int32),
                 np.asarray([r[1] for r in rows], np.int32), digit[tens], digit[tens], roles,
                 [r[3] for r in rows], {'yy': yy, 'good': good, 'bad': bad, 'digits': digit})


def entity_tracking(tok, n: int, boxes: int = 3, seed: int = 0) -> TaskSet:
  """n prompts 'The apple is in Box A, the key is in Box B, and the coin is in Box C. Box B contains the'
  (2 or 3 boxes). Corruption: the same context queried for another box. Metric: logit(the queried box's
  object) - logit(the corrupted query's object)."""
  if boxes not in (2, 3):
    raise ValueError(f'entity tracking builds 2 or 3 boxes, got {boxes}')
  rng = np.random.default_rng(seed)
  obj_ids = {o: single_token(tok, ' ' + o) for o in OBJECTS}
  box_ids = {b: single_token(tok, ' ' + b) for b in BOXES}
  rows = []
  for _ in range(n):
    objs = list(rng.choice(OBJECTS, boxes, replace=False))
    q, other = rng.choice(boxes, 2, replace=False)
    parts = [f'the {o} is in Box {BOXES[i]}' for i, o in enumerate(objs)]
    ctx = (', '.join(parts[:-1]) + (',' if boxes > 2 else '') + ' and ' + parts[-1]) if boxes > 1 else parts[0]
    ctx = ctx[0].upper() + ctx[1:]
    text = f'{ctx}. Box {BOXES[q]} contains the'
    bad = f'{ctx}. Box {BOXES[other]} contains the'
    rows.append((tok.encode(text).ids, tok.encode(bad).ids, obj_ids[objs[q]], obj_ids[objs[other]], text,
                 box_ids[BOXES[q]], obj_ids[objs[q]]))
  rows = _keep_modal_length(rows)
  if len(rows) < n:
    raise ValueError(f'entity prompts of unequal length ({len(rows)} of {n} kept)')
  t = len(rows[0][0])
  roles = {k: np.zeros((n, t), bool) for k in ('answer_object', 'queried_box_label', 'query_label', 'END')}
  for i, (ids, _, _, _, _, box, obj) in enumerate(rows):
    roles['answer_object'][i] = _role_mask(ids, obj, 0)
    roles['queried_box_label'][i] = _role_mask(ids, box, 0)
    roles['query_label'][i] = _role_mask(ids, box, 1)
  roles['END'][:, -1] = True
  return TaskSet(f'entity{boxes}', np.asarray([r[0] for r in rows], np.int32),
                 np.asarray([r[1] for r in rows], np.int32), np.asarray([r[2] for r in rows]),
                 np.asarray([r[3] for r in rows]), roles, [r[4] for r in rows],
                 {'objects': np.asarray([list(obj_ids.values())])})


def build(name: str, tok, n: int, seed: int = 0) -> TaskSet:
  if name == 'ioi':
    return ioi(tok, n, seed)
  if name == 'greater_than':
    return greater_than(tok, n, seed)
  if name in ('entity2', 'entity3'):
    return entity_tracking(tok, n, int(name[-1]), seed)
  raise ValueError(f"unknown task {name!r}; expected 'ioi', 'greater_than', 'entity2' or 'entity3'")
