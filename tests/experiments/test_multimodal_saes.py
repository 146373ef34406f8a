"""experiments/multimodal_saes: the sequence layout, the caption parser, the sharing metric, the configs and
(slow, ~5 min on the shared 2-core machine) the tiny run end to end on 4 of SmolLM2-135M's 30 real layers."""

import importlib
import json
import os

import numpy as np
import pytest

from experiments.multimodal_saes import analysis, llava
from jaxlab.data import scenes as S


class _Tok:   # a stand-in tokenizer: one id per character
  class _E:
    def __init__(self, ids):
      self.ids = ids

  def encode(self, text):
    return self._E([ord(c) % 50 + 1 for c in text])


def test_layout_and_caption_targets():
  tok = _Tok()
  lay = llava.make_layout(tok, num_image=4, caption_len=8, eos=0)
  ids, mask = llava.encode_captions(tok, lay, ['ab', 'abcd'])
  assert ids.shape == (2, 8) and mask.sum(1).tolist() == [4, 6]        # ' ab' + eos, ' abcd' + eos
  seq = llava.image_sequences(lay, ids, mask)
  assert seq['tokens'].shape == (2, lay.length) and lay.length == lay.caption_start + 8
  # the loss covers exactly the caption tokens (and eos), each predicted from the position before it
  for r in range(2):
    pos = np.nonzero(seq['loss_mask'][r])[0]
    np.testing.assert_array_equal(seq['targets'][r, pos], ids[r, :len(pos)])
    assert pos[0] == lay.caption_start - 1
  im = lay.image_mask(2)
  assert im.sum() == 8 and im[0, lay.image_start] and not im[0, lay.image_start + 4]
  with pytest.raises(ValueError, match='caption_len=8'):
    llava.encode_captions(tok, lay, ['x' * 20])


def test_attribute_accuracy_parses_captions():
  truth = [S.Scene(shape='circle', colour='red', size='small', background='gray', count=1),
           S.Scene(shape='cross', colour='blue', size='large', background='white', count=2)]
  acc = llava.attribute_accuracy(['a small red circle on a gray background, at the top.',
                                  'two large red crosses on a whitebackground'], truth)
  assert acc == {'shape': 1.0, 'colour': 0.5, 'size': 1.0, 'background': 0.5, 'count': 1.0}


def test_shared_fraction_definition():
  img = np.asarray([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
  txt = np.asarray([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])   # feature 2: s = 1 / 1.5 → shared
  out = analysis.shared_fraction(img, txt)
  assert out == {'shared': pytest.approx(1 / 3), 'image_only': pytest.approx(1 / 3),
                 'text_only': pytest.approx(1 / 3), 'live': 3}             # feature 3 never fires: not live


def test_configs_load():
  mod = importlib.import_module('experiments.multimodal_saes.configs.default')
  for arg in ('', 'tiny', 'pilot', 'full'):
    c = mod.get_config(arg)
    assert c.steer_layer in c.sae_layers
  with pytest.raises(ValueError, match='unknown config variant'):
    mod.get_config('huge')


@pytest.mark.slow
def test_tiny_run_end_to_end(tmp_path):
  from experiments.multimodal_saes import main
  cfg = importlib.import_module('experiments.multimodal_saes.configs.default').get_config('tiny')
  out = main.run(cfg, str(tmp_path))
  with open(os.path.join(tmp_path, 'results.json')) as f:
    saved = json.load(f)
  assert set(saved['layers']) == {'1', '3'} and set(saved['probes']) == {'1', '3'}
  for m in saved['layers'].values():
    assert 0 <= m['dead_fraction'] <= 1 and m['l0'] > 0 and np.isfinite(m['loss_recovered'])
    for side in ('sharing', 'sharing_corpus'):   # image vs caption-only text, image vs the fortunes corpus
      assert m[f'{side}_shared'] + m[f'{side}_image_only'] + m[f'{side}_text_only'] == pytest.approx(1.0)
  rows = saved['sizes']['activation_rows_train']
  assert rows['corpus'] > 0 and rows['pooled'] == cfg.num_activation_scenes
  assert set(saved['vit_training_combination_accuracy']) == set(saved['vit_held_out_accuracy'])
  assert os.path.exists(os.path.join(tmp_path, 'results_partial.json'))
  assert len(saved['steering']['efficacy']) == 2 and saved['steering']['damage_nll'][0] == 0.0
  assert os.path.exists(os.path.join(tmp_path, 'sharing_vs_depth.png')) and os.path.exists(os.path.join(tmp_path, 'steering.png'))
  assert out['sizes']['image_tokens'] == 16
