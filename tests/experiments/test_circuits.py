"""experiments/circuits: the prompt sets on the real SmolLM2 tokenizer (roles, corruptions, equal lengths),
the configs, the role rules, and (slow) the tiny run end to end on 2 of SmolLM2's 30 layers."""

import importlib
import json

import numpy as np
import pytest

from experiments.circuits import data


@pytest.fixture(scope='module')
def tok(smollm2):
  return smollm2[3]


def test_ioi_prompts_roles_and_abc_corruption(tok):
  ts = data.ioi(tok, 12, seed=0)
  assert ts.clean.shape == ts.corrupt.shape and ts.clean.shape[0] == 12
  assert ts.extra['order'].count('ABBA') >= 4 and ts.extra['order'].count('BABA') >= 4
  for role, m in ts.roles.items():
    assert (m.sum(1) == 1).all(), role
  rows = np.arange(12)
  io_pos, s1, s2 = (ts.roles[r].argmax(1) for r in ('IO', 'S1', 'S2'))
  assert (ts.clean[rows, io_pos] == ts.answer).all() and (ts.clean[rows, s2] == ts.wrong).all()
  assert (ts.clean[rows, s1] == ts.wrong).all() and (s2 > np.maximum(io_pos, s1)).all()
  for i, order in enumerate(ts.extra['order']):
    assert (io_pos[i] < s1[i]) == (order == 'ABBA')
  names = {data.single_token(tok, ' ' + n) for n in data.NAMES}
  for c, x, a, w in zip(ts.clean, ts.corrupt, ts.answer, ts.wrong):   # ABC: three fresh names
    diff = np.where(c != x)[0]
    assert len(diff) == 3 and set(x[diff]) <= names and not {a, w} & set(x[diff])
    assert len(set(x[diff])) == 3


def test_greater_than_and_entity_prompts(tok):
  gt = data.greater_than(tok, 10, seed=1)
  digits = gt.extra['digits']
  yy = gt.extra['yy']
  assert ((10 <= yy) & (yy < 90)).all()
  got = gt.clean[gt.roles['YY']].reshape(10, 2)
  np.testing.assert_array_equal(got, np.stack([digits[yy // 10], digits[yy % 10]], 1))
  np.testing.assert_array_equal(gt.corrupt[gt.roles['YY']].reshape(10, 2), [[digits[0], digits[1]]] * 10)
  assert gt.extra['good'].sum(1).tolist() == (9 - yy // 10).tolist()
  assert gt.extra['bad'].sum(1).tolist() == (yy // 10).tolist()
  for boxes in (2, 3):
    ts = data.entity_tracking(tok, 8, boxes, seed=0)
    rows = np.arange(8)
    assert (ts.clean[rows, ts.roles['answer_object'].argmax(1)] == ts.answer).all()
    assert (ts.answer != ts.wrong).all() and all(w in c for w, c in zip(ts.wrong, ts.clean))
    assert ((ts.clean != ts.corrupt).sum(1) == 1).all()          # only the queried box label differs
    assert ts.texts[0].count(' is in Box ') == boxes
  with pytest.raises(ValueError, match='unknown task'):
    data.build('docstring', tok, 4)
  with pytest.raises(ValueError, match='not one'):
    data.single_token(tok, ' Bartholomew-Smythe')


def test_configs_and_role_rules():
  mod = importlib.import_module('experiments.circuits.configs.default')
  for arg in (None, 'ioi', 'greater_than', 'entity2', 'entity3', 'behaviour', 'tiny'):
    c = mod.get_config(arg)
    assert set(c.tasks.split(',')) <= set(mod.TASKS) and c.null_partitions >= 50
  assert mod.get_config('ioi').null_partitions >= 1000
  with pytest.raises(ValueError, match='variant'):
    mod.get_config('huge')
  from experiments.circuits import main
  names = ['attn:IO', 'attn:S2', 'dla']
  feats = np.array([[0.5, 0.1, 0.4], [0.1, 0.6, 0.0], [0.6, 0.1, -0.3], [0.4, 0.2, 0.5]])
  labels, keys = main.role_partition(feats, names)
  assert keys == ['IO/direct+', 'S2/indirect', 'IO/direct-', 'IO/direct+']
  assert labels[0] == labels[3] and len(set(labels)) == 3


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
  """~20 s CPU (85 s wall on the loaded 2-core machine): IOI on 2 real layers, 4 prompts, 4 heads."""
  from experiments.circuits import main
  cfg = importlib.import_module('experiments.circuits.configs.default').get_config('tiny')
  out = main.run(cfg, str(tmp_path / 'w'))
  entry = out['tasks']['ioi']
  assert 0 <= entry['behaviour']['accuracy'] <= 1
  c = entry['circuit']
  assert len(c['top_heads_patching']) == 4 and np.asarray(c['patching_grid']).shape == (2, 9)
  assert -1 <= c['spearman_attr_vs_patch'] <= 1
  for part in c['interchangeability'].values():
    assert part['num'] == 50 and sum(part['sizes']) == 4
  r = np.asarray(c['swap_r'])
  np.testing.assert_allclose(np.diag(r), 1.0)
  saved = json.loads((tmp_path / 'w' / 'results.json').read_text())
  assert saved['tasks']['ioi']['circuit']['heatmap'] == 'ioi_heads.png'
  assert (tmp_path / 'w' / 'ioi_heads.png').stat().st_size > 1000


def test_rescore_ceiling_finds_planted_partition():
  from experiments.circuits import rescore
  rng = np.random.default_rng(0)
  truth = np.repeat(np.arange(2), 4)
  r = np.where(truth[:, None] == truth[None], 1.0, 0.5) + 0.02 * rng.standard_normal((8, 8))
  ceil = rescore.ceiling_partition(r, rng.permutation(truth), 'fidelity')
  same = np.asarray(ceil)[:, None] == np.asarray(ceil)[None]
  np.testing.assert_array_equal(same, truth[:, None] == truth[None])
  results = {'tasks': {'ioi': {'circuit': {'swap_r': r.tolist(), 'swap_components': [f'L{i}H0' for i in range(8)],
                                           'interchangeability': {'offline_clusterer': {'labels': truth.tolist()}}}},
                       'entity2': {'dropped': 'cannot do it'}}}
  out = rescore.rescore(results, num=200)
  assert set(out) == {'ioi'} and 'norm_matched' not in out['ioi']
  row = out['ioi']['plain']['fidelity']
  assert row['offline_clusterer']['I'] == pytest.approx(row['ceiling_sizes_of_offline_clusterer']['I'])
  assert row['offline_clusterer']['z'] > 3
