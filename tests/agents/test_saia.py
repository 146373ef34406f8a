"""jaxlab.agents.saia: the wired score rule on hand-made renders, a trained model's measurable reliance, the
tools, the self-evaluation protocol and stopping rule, the scripted agent and the LLM plug-in (a mock)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlab.agents.saia import agents as A
from jaxlab.agents.saia import benchmark as B
from jaxlab.agents.saia import protocol as P
from jaxlab.agents.saia import tools as T
from jaxlab.data import scenes as S

SIZE = 24


def _oracle_probs(scenes, p=0.95):
  """A perfect detector: probability p on the scene's shape."""
  probs = np.full((len(scenes), len(S.SHAPES)), (1 - p) / (len(S.SHAPES) - 1))
  for i, s in enumerate(scenes):
    probs[i, S.SHAPES.index(s.shape)] = p
  return probs


def _oracle_score(spec):
  def score(images, scenes):
    return B.wired_scores(spec, _oracle_probs(scenes), images, scenes)
  return score


def test_every_wired_model_follows_the_paper_rule_on_hand_made_renders():
  specs = B.candidate_specs('wired', seed=0, num=60)
  assert len({s.name for s in specs}) == 60 and len({s.category for s in specs}) == 12
  for spec in specs:
    base = S.Scene(shape=spec.object, count=1)
    with_att = dataclasses.replace(base, **{spec.category: spec.value})
    other = next(v for v in S.EXTENDED_FACTORS[spec.category] if v != spec.value)
    without = dataclasses.replace(base, **{spec.category: other})
    absent = dataclasses.replace(with_att, shape=next(s for s in S.SHAPES if s != spec.object))
    scenes = [with_att, without, absent]
    imgs = np.stack([S.render(s, SIZE, 0) for s in scenes]).astype(np.float32) / 255
    sc = B.wired_scores(spec, _oracle_probs(scenes, 0.8), imgs, scenes)
    np.testing.assert_allclose(sc[:2], [0.8, 0.8 * (1 - B.DISCOUNT)], rtol=1e-6)
    assert 0 <= sc[2] <= 0.1 and sc[2] == B.wired_scores(spec, _oracle_probs(scenes, 0.8), imgs, scenes)[2]
  # an undetected object (confidence below 0.25) scores U(0, 0.1) even with the attribute
  spec = specs[0]
  s = S.Scene(shape=spec.object, **{spec.category: spec.value})
  img = S.render(s, SIZE, 0)[None].astype(np.float32) / 255
  assert B.wired_scores(spec, _oracle_probs([s], 0.2), img, [s])[0] <= 0.1
  assert not B.has_attribute(S.Scene(position='left', count=2), 'position', 'left')


class _PixelBackbone:
  """A stand-in backbone: features = 4×4-pooled pixels (48 dims), oracle shape probabilities."""

  def __call__(self, images):
    n = len(images)
    feats = images.reshape(n, 4, SIZE // 4, 4, SIZE // 4, 3).mean((2, 4)).reshape(n, -1)
    return np.zeros((n, len(S.SHAPES))), feats * 4 - 2


def test_a_trained_model_has_a_measurable_reliance_before_it_enters():
  spec = B.ModelSpec('trained', 'square', 'colour', 'red')
  pool = S.sample_extended_scenes(1200, seed=0, noise='clean', blur='sharp', brightness='normal')
  bb = _PixelBackbone()
  _, feats = bb(S.render_batch(pool, SIZE, 0))
  idx, y = B.biased_indices(spec, pool, 400, neg_attr_rate=0.1, seed=0)
  assert y.mean() == 0.5 and all(pool[i].shape == 'square' and pool[i].colour == 'red' for i in idx[y == 1])
  heads = B.Heads(1, feats.shape[1])
  params = heads.init(jax.random.key(0), jnp.zeros((1, 1, feats.shape[1])))['params']
  loss_fn = B.heads_loss(heads)
  tx = optax.adam(0.05)
  batch = {'x': jnp.asarray(feats[idx][:, None]), 'y': jnp.asarray(y[:, None])}

  @jax.jit
  def step(p, o):
    (l, _), g = jax.value_and_grad(loss_fn, has_aux=True)(p, batch, None)
    u, o = tx.update(g, o, p)
    return optax.apply_updates(p, u), o, l
  opt = tx.init(params)
  for _ in range(300):
    params, opt, loss = step(params, opt)
  assert float(loss) < 0.45
  bench = B.Benchmark(bb, {spec.name: {'w': np.asarray(params['w'][0]), 'b': float(params['b'][0])}})
  rel = B.reliance(bench.score_fn(spec), spec, SIZE, num=24, seed=1)
  # the learnt colour shortcut is measured: red squares score well above blue ones (measured 0.46 vs 0.14)
  assert rel['reliance'] > 0.5 and rel['score_with'] > rel['score_no_object'], rel


def test_prompts_round_trip_and_tools():
  for name, values in T.PHRASES.items():
    for v in values:
      assert T.parse_prompt(T.prompt_for({name: v}))[name] == v
  assert T.parse_prompt('two striped stars on a navy background with a dot') == \
      {'count': 2, 'texture': 'striped', 'shape': 'star', 'background': 'navy', 'co_object': 'dot'}
  with pytest.raises(ValueError, match='names colour twice'):
    T.parse_prompt('a red blue star')
  spec = B.ModelSpec('wired', 'star', 'noise', 'noisy')
  tools = T.Toolbox(_oracle_score(spec), SIZE, pool_size=200, seed=0)
  g = tools.generate('noisy star at the left', 4)
  assert all(s.shape == 'star' and s.noise == 'noisy' and s.position == 'left' and s.count == 1 for s in g.scenes)
  e = tools.edit(g, {'noise': 'clean'})
  assert all(a == dataclasses.replace(b, noise='clean') for a, b in zip(e.scenes, g.scenes)) and e.seeds == g.seeds
  ex, sc = tools.exemplars(5)
  assert list(sc) == sorted(sc, reverse=True) and all(s.shape == 'star' and s.noise == 'noisy' for s in ex.scenes)
  assert all('noisy' not in c for c in tools.describe(ex))          # hidden factors are not described
  assert tools.calls['generate'] == 1 and tools.images_scored == 0  # exemplars scored the pool, not counted


def test_levels_and_stopping_rule():
  assert [P.level(s, 1.0) for s in (0.29, 0.3, 0.79, 0.8)] == ['LOW', 'MODERATE', 'MODERATE', 'HIGH']
  assert P.should_stop(0.7, 0.4, 1.0) and not P.should_stop(0.69, 0.1, 1.0) and not P.should_stop(0.9, 0.41, 1.0)
  spec = B.ModelSpec('wired', 'ring', 'co_object', 'bar')
  tools = T.Toolbox(_oracle_score(spec), SIZE, pool_size=10, seed=0)
  right = P.self_evaluate(tools, P.Label('ring', 'co_object', 'bar'), exemplar_mean=0.95)
  wrong = P.self_evaluate(tools, P.Label('ring', 'colour', 'red'), exemplar_mean=0.95)
  assert right.stop and not wrong.stop and len(right.high_scores) == 10
  assert right.levels()[0] == ['HIGH'] * 10 and right.levels()[1] == ['LOW'] * 10
  assert 'LOW set' in wrong.summary()
  assert P.predictiveness(tools, right.label, 8) > 0.8 > P.predictiveness(tools, wrong.label, 8)


@pytest.mark.parametrize('reflect', [False, True])
def test_scripted_agent_finds_a_hidden_reliance(reflect):
  spec = B.ModelSpec('wired', 'cross', 'blur', 'blurred')
  tools = T.Toolbox(_oracle_score(spec), SIZE, pool_size=300, seed=1)
  hist = A.run_agent(A.ScriptedAgent(reflect=reflect, num_edit_images=3), tools, rounds=12, reflect=reflect)
  labels = A.labels_by_round(hist, 12)
  assert labels[-1].matches(spec) and len(labels) == 12
  if reflect:
    assert hist[-1].stopped and len(hist) < 12     # the stopping rule ends the run
  else:
    assert len(hist) == 12 and all(r.self_eval is None for r in hist)


def test_llm_agent_plug_in_with_a_mock():
  spec = B.ModelSpec('wired', 'star', 'outline', 'outlined')
  tools = T.Toolbox(_oracle_score(spec), SIZE, pool_size=200, seed=0)
  replies = iter(['I will TEST colour', '[BIAS LABEL] star; colour=red', 'TEST outline',
                  'so [BIAS LABEL] star; outline=outlined'])
  agent = A.LLMAgent(lambda prompt: next(replies), num_edit_images=2)
  hist = A.run_agent(agent, tools, rounds=3, reflect=True, num_self_eval=4)
  assert [r.label.category for r in hist] == ['colour', 'outline'] and hist[-1].stopped
  assert 'Self-evaluation of' in agent.transcript[2][0] and 'exemplars' in agent.transcript[0][0]
  with pytest.raises(ValueError, match='no "TEST'):
    A.LLMAgent(lambda p: 'hmm').propose(A.Context(tools.pool.take([0]), np.ones(1), ['x']))
  with pytest.raises(ValueError, match='must be one of'):
    A.parse_label('[BIAS LABEL] star; count=7')
