"""ELF trained on 8 fake devices (data × fsdp × tensor = 2 × 2 × 2) equals one device, for one step."""

import grain
import jax
import pytest
import numpy as np

from jaxlab.nn.diffusion import elf, elf_flow
from jaxlab.train import Task, train
from tests.train.helpers import base_config


def elf_task(decoder_prob: float):
  model = elf.Elf(elf.ElfConfig(latent_dim=16, vocab_size=24, num_layers=1, embed_dim=32, num_heads=4,
                                bottleneck_dim=8, decoder_dim=16, freq_dim=16, mlp_dim=64))
  obj = elf_flow.ElfObjective(decoder_prob=decoder_prob)
  rng = np.random.default_rng(0)
  records = [{'tokens': rng.integers(0, 24, 6).astype(np.int32),
              'latents': (0.2 * rng.normal(size=(6, 16))).astype(np.float32)} for _ in range(32)]
  data = iter(grain.MapDataset.source(records).shuffle(seed=0).repeat(None).batch(16, drop_remainder=True))
  return Task(init_params=lambda r: elf.init_params(model, r, 6),
              loss_fn=lambda p, b, r: elf_flow.elf_loss(model, obj, p, b, r), train_data=data, tokens_per_example=6)


@pytest.mark.slow  # ~65 s on 2 cores; tests/train/test_lm_sharding.py keeps the trainer's sharding in the default suite
def test_elf_sharded_equals_single_device(tmp_path, optimizer='muon', decoder_prob=0.0):
  """The denoise branch (three network passes) with Muon on every matrix, EMA on; the decode branch's
  arithmetic is pinned against numpy in test_elf_flow.py."""
  opt = {'optimizer.name': optimizer, 'optimizer.learning_rate': 2e-3 if optimizer == 'muon' else 0.5,
         'optimizer.weight_decay': 0.0, 'optimizer.momentum': 0.95 if optimizer == 'muon' else 0.0,
         'optimizer.muon_all_matrices': True, 'ema_decay': 0.9}
  one = train(base_config(total_steps=1, **opt), str(tmp_path / 'one'), elf_task(decoder_prob),
              devices=[jax.devices()[0]])
  many = train(base_config(total_steps=1, mesh=dict(data=2, fsdp=2, tensor=2), **opt), str(tmp_path / 'many'),
               elf_task(decoder_prob))
  key = 'l2' if decoder_prob == 0.0 else 'ce'
  np.testing.assert_allclose(many.train_metrics[key], one.train_metrics[key], rtol=1e-5)
  a, b = jax.device_get(one.state.params), jax.device_get(many.state.params)
  for (path, x), (_, y) in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)):
    np.testing.assert_allclose(x, y, atol=2e-5, err_msg=jax.tree_util.keystr(path))
  # Logical names reached the mesh: the decode head over 'tensor', the residual width over 'fsdp'.
  assert tuple(many.state.params['dec_unembed']['kernel'].sharding.spec) == ('tensor', None)
  assert many.state.params['layers_0']['attn']['query']['kernel'].sharding.spec[:2] == ('fsdp', 'tensor')
