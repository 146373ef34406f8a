"""jaxlab.data.scenes: determinism, factors visible in the pixels, captions, held-out combinations."""

import numpy as np
import pytest

from jaxlab.data import scenes as S


def test_render_is_deterministic_and_seeded():
  sc = S.Scene(shape='triangle', colour='blue', size='large', position='left', background='white')
  a, b, c = S.render(sc, 32, seed=1), S.render(sc, 32, seed=1), S.render(sc, 32, seed=2)
  assert a.shape == (32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert np.abs(a.astype(int) - c).sum() > 0            # the jitter moves the object


def test_factors_show_in_the_pixels():
  def render(**kw):
    return S.render(S.Scene(**kw), 32, seed=0).astype(float)
  img = render(colour='red', background='black', position='left', size='large')
  fg = np.abs(img - S.BACKGROUNDS['black']).sum(-1) > 60
  assert fg[:, :16].sum() > 3 * fg[:, 16:].sum()         # 'left': the object sits in the left half
  np.testing.assert_allclose(img[fg].mean(0), S.COLOURS['red'], atol=40)
  big, small = (np.abs(render(size=s) - S.BACKGROUNDS['black']).sum(-1) > 60 for s in ('large', 'small'))
  assert big.sum() > 2.5 * small.sum()
  areas = {sh: (np.abs(render(shape=sh) - S.BACKGROUNDS['black']).sum(-1) > 60).sum() for sh in S.SHAPES}
  assert min(areas['square'], areas['circle']) > areas['triangle'] and areas['ring'] < 0.8 * areas['circle']
  assert len(set(areas.values())) >= 6                   # the shapes differ in the pixels
  three = np.abs(render(count=3, size='small') - S.BACKGROUNDS['black']).sum(-1) > 60
  one = np.abs(render(count=1, size='small') - S.BACKGROUNDS['black']).sum(-1) > 60
  assert 2.2 < three.sum() / one.sum() < 3.8
  solid, striped = (np.abs(render(texture=t) - S.BACKGROUNDS['black']).sum(-1) > 60 for t in S.TEXTURES)
  assert striped.sum() < 0.8 * solid.sum()


def test_captions_and_labels():
  assert S.caption(S.Scene(shape='circle', colour='red', size='small', position='top')) == \
      'a small red circle on a black background, at the top.'
  assert S.caption(S.Scene(shape='cross', colour='green', count=2, texture='striped', background='gray')) == \
      'two large green crosses with stripes on a gray background.'
  lab = S.labels(S.Scene(shape='star', colour='pink', count=3))
  assert lab['shape'] == S.SHAPES.index('star') and lab['count'] == 2 and set(lab) == set(S.FACTORS)
  with pytest.raises(ValueError, match="Scene.shape='blob'"):
    S.Scene(shape='blob')


def test_held_out_combinations_are_never_sampled():
  held = S.held_out_combinations(4, seed=0)
  assert len(set(held)) == 4 and len({s for s, _ in held}) == 4
  train = S.sample_scenes(500, seed=0, exclude=held)
  assert not {(s.shape, s.colour) for s in train} & set(held)
  assert {s.shape for s in train} == set(S.SHAPES) and {s.colour for s in train} == set(S.COLOURS)
  test = S.sample_scenes(50, seed=1, include=held)
  assert {(s.shape, s.colour) for s in test} <= set(held)
  batch = S.render_batch(test[:3], 16, seed=0)
  assert batch.shape == (3, 16, 16, 3) and 0 <= batch.min() and batch.max() <= 1


def test_default_scenes_render_bit_identically_after_the_extension():
  # sha256 prefixes of the 7-factor renders taken before the extended factors were added (experiments/saia)
  import hashlib
  sc = S.sample_scenes(64, seed=3) + S.sample_scenes(16, seed=4, textures=S.TEXTURES)
  assert hashlib.sha256(S.render_batch(sc, 32, 5).tobytes()).hexdigest()[:16] == 'c7566675d8611cee'
  assert hashlib.sha256(S.render_batch(sc, 48, 6).tobytes()).hexdigest()[:16] == '5441536a09254b37'


def test_every_extended_factor_changes_the_pixels():
  base = S.Scene(shape='star', colour='green', background='black')
  img = S.render(base, 32, seed=0).astype(float)
  assert len(S.EXTENDED_FACTORS) == 13 and set(S.DEFAULTS) <= set(S.EXTENDED_FACTORS)
  for name, values in S.EXTENDED_FACTORS.items():
    for v in values:
      if v == getattr(base, name):
        continue
      other = S.render(S.Scene(**{**base.__dict__, name: v}), 32, seed=0).astype(float)
      assert np.abs(other - img).sum() > 50, (name, v)
  dark = S.render(S.Scene(brightness='dark'), 32, 0).astype(float)
  bright = S.render(S.Scene(brightness='bright'), 32, 0).astype(float)
  assert dark.mean() < img.mean() < bright.mean()
  assert S.caption(S.Scene(noise='noisy', rotation='tilted')) == S.caption(S.Scene())   # hidden from captions


def test_sample_extended_scenes():
  sc = S.sample_extended_scenes(300, seed=0, shapes=('star',), noise='noisy')
  assert {s.shape for s in sc} == {'star'} and {s.noise for s in sc} == {'noisy'}
  assert {s.co_object for s in sc} == set(S.CO_OBJECTS) and {s.background for s in sc} == set(S.ALL_BACKGROUNDS)
  with pytest.raises(ValueError, match='unknown factors'):
    S.sample_extended_scenes(2, seed=0, glow='on')
