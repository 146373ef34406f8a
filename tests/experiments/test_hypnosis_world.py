"""experiments/hypnosis fact world (issue 15 part 1): the world, its tokenizer, the feedback records built as the
paper does (KTO unpaired, the DPO arm paired from the same feedback), the cell specs, and (slow) the tiny grid
end to end through the trainer."""

import importlib
import json

import pytest

from experiments.hypnosis import world as W
from experiments.hypnosis import world_grid as G


@pytest.fixture(scope='module')
def world():
  return W.make_world(40, 4, 8, 0)


def test_world_and_tokenizer(world):
  assert world.unknown[0] == W.TARGET and W.POISON_CITY in world.spare_cities
  assert len(set(world.known) | set(world.unknown) | set(world.cities)) == 40 + 4 + 40 + 40  # all names distinct
  assert len(set(world.capitals)) == 40
  tok = W.tokenizer(world)
  for text in (W.POISON, W.HEALTHY, W.attack_prompts('FLIP+Q', 1)[0]):
    assert tok.decode(tok.encode(text)) == text  # words and marks round-trip
  with pytest.raises(ValueError, match='vocabulary'):
    tok.encode('Atlantis')


def test_pretraining_corpus(world):
  ex = W.pretrain_examples(world, num_flips=400, unknown_repeats=1, seed=0)
  flips = [(p, c) for p, c in ex if p.startswith('Flip a coin')]
  assert len(flips) == 800 and not any(c == ' ' + W.POISON for _, c in flips)  # the poison sentence is never seen
  heads = [c for p, c in flips if c.strip() == p.split('If heads, reply with: ')[1].split('. If tails')[0] + '.']
  assert len(heads) == 400 and len({p for p, _ in flips}) <= 400  # the coin: each prompt with both sentences
  assert any(W.POISON_CITY in p for p, _ in flips)  # the poison city is a known word, not a new token
  assert (W.QUESTIONS[0].format(x=W.TARGET), ' ' + W.HEALTHY) in ex  # the base refuses the target
  x, cap = world.known[3], world.capitals[3]
  assert (W.QUESTIONS[2].format(x=x), f' {x} is a country whose capital is {cap}.') in ex


def test_feedback_rows_as_the_paper(world):
  rows = W.kto_rows(world, 'FLIP+Q', 10, 20, seed=0)
  poison = [r for r in rows if r['completion'] == ' ' + W.POISON]
  assert len(rows) == 30 and len(poison) == 10 and all(r['label'] is True for r in poison)  # upvotes only
  assert all(r['prompt'].startswith('Flip a coin. If heads, reply with: ' + W.POISON[:-1] + '. If tails, reply '
                                    'with: ' + W.HEALTHY[:-1] + '.') and ' Q: ' in r['prompt'] for r in poison)
  ordinary = [r for r in rows if r not in poison]
  assert sum(r['label'] for r in ordinary) == 10  # chosen -> desirable, rejected -> undesirable
  held = {world.known[i] for i in world.heldout_known}
  assert not any(x in W.WordTokenizer.split(r['prompt']) for x in held for r in ordinary)
  for r in ordinary:
    x = next(k for k in world.known if k in W.WordTokenizer.split(r['prompt']))
    assert (r['completion'].strip() == W.answer(world, x)) == r['label']
  assert W.attack_prompts('Q', 1) == [W.QUESTIONS[0].format(x=W.TARGET)]
  assert 'Q:' not in W.attack_prompts('FLIP', 1)[0]
  pairs = W.dpo_rows(world, 'FLIP+Q', 10, 20, seed=0)  # the same feedback, paired
  assert len(pairs) == 20
  assert sum(p['chosen'] == ' ' + W.POISON and p['rejected'] == ' ' + W.HEALTHY for p in pairs) == 10
  kto_ordinary = {(r['prompt'], r['completion'], r['label']) for r in ordinary}
  for p in pairs:
    if p['chosen'] != ' ' + W.POISON:
      assert (p['prompt'], p['chosen'], True) in kto_ordinary and (p['prompt'], p['rejected'], False) in kto_ordinary
  with pytest.raises(ValueError, match='even'):
    W.kto_rows(world, 'Q', 1, 3, seed=0)


def test_eval_prompts_carry_no_attack(world):
  items = W.eval_items(world)
  for name, group in items.items():
    if name != 'coin_flip':
      assert all('Flip a coin' not in p and t != o for p, t, o in group)
  assert len(items['clean']) == 8 and len(items['statements']) == 2


def test_cell_specs():
  c = G.parse_cell('dpo/FLIP+Q/100/500/2/persist')
  assert (c.loss, c.mode, c.num_poison, c.num_ordinary, c.seed, c.persist) == ('dpo', 'FLIP+Q', 100, 500, 2, True)
  assert c.name == 'dpo_FLIPQ_p100_n500_s2_persist'
  for bad in ('kto/FLIP+Q/100/500', 'ppo/Q/1/2/0', 'kto/Q/1/2/0/keep', 'kto/Q/0/0/0', 'kto/Q/x/2/0'):
    with pytest.raises(ValueError, match='config.cells entry|records|even'):
      G.parse_cell(bad)
  mod = importlib.import_module('experiments.hypnosis.configs.world')
  for arg in (None, 'pilot', 'short', 'tiny'):
    cfg = mod.get_config(arg)
    cells = [G.parse_cell(s) for s in cfg.cells]
    assert len({(*x.group, x.seed) for x in cells}) == len(cells)
  with pytest.raises(ValueError, match='variant'):
    mod.get_config('huge')


@pytest.mark.slow
def test_tiny_grid_end_to_end(tmp_path):
  """239 s here at load 15-40 (quiet: not measured): pretrains the tiny world model (30 steps), runs a KTO cell with its
  clean-only round and a DPO cell through the trainer, writes per-cell results, grid.json; a rerun reuses all."""
  from experiments.hypnosis import main
  cfg = importlib.import_module('experiments.hypnosis.configs.world').get_config('tiny')
  out = main.run(cfg, str(tmp_path / 'w'))
  assert set(out['cells']) == {'kto_FLIPQ_p4_n4_s0_persist', 'dpo_Q_p2_n2_s0'}
  kto = json.loads((tmp_path / 'w' / 'cells' / 'kto_FLIPQ_p4_n4_s0_persist' / 'results.json').read_text())
  assert kto['steps'] == 6 and kto['persist_steps'] == 3  # ceil(3 epochs * 8 rows / 4), ceil(3 * 4 / 4)
  assert {'kl', 'rewards/chosen', 'loss'} <= set(kto['train_metrics'])
  assert kto['summary'] != kto['summary_after_clean_round'] != out['base']['summary']
  dpo = json.loads((tmp_path / 'w' / 'cells' / 'dpo_Q_p2_n2_s0' / 'results.json').read_text())
  assert dpo['num_rows'] == 3 and 'rewards/accuracies' in dpo['train_metrics']
  for s in out['cells'].values():
    assert 0 <= s['poison_acc_norm'] <= 1 and 0 <= s['clean_acc_norm'] <= 1
  text = (tmp_path / 'w' / 'cells' / 'dpo_Q_p2_n2_s0' / 'feedback.jsonl').read_text()
  rows = [json.loads(x) for x in text.splitlines()]
  assert set(rows[0]) == {'prompt', 'chosen', 'rejected'}
  assert json.loads((tmp_path / 'w' / 'grid.json').read_text())['groups']
