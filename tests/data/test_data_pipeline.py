"""Tests for jaxlab.data.pipeline: windows, determinism, resumption, host sharding, eval batches."""

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxlab.data import pipeline
from jaxlab.data.pipeline import TokenWindows

SEQ = 8
NUM_WINDOWS = 16


@pytest.fixture
def source():
  # Window i has inputs [8i, ..., 8i+7], so inputs[:, 0] // 8 identifies it.
  return TokenWindows(np.arange(NUM_WINDOWS * SEQ + 1), SEQ)


def _ids(batch):
  return (batch['inputs'][:, 0] // SEQ).tolist()


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_token_windows(source):
  assert len(source) == NUM_WINDOWS
  first, last = source[0], source[NUM_WINDOWS - 1]
  np.testing.assert_array_equal(first['inputs'], np.arange(SEQ))
  np.testing.assert_array_equal(first['targets'], np.arange(1, SEQ + 1))
  end = NUM_WINDOWS * SEQ
  np.testing.assert_array_equal(last['targets'], np.arange(end - SEQ + 1, end + 1))
  assert first['inputs'].dtype == np.int32 and first['inputs'].shape == (SEQ,)
  assert len(TokenWindows(np.arange(20), 8)) == 2  # 19 // 8, tail dropped
  with pytest.raises(IndexError):
    source[NUM_WINDOWS]
  with pytest.raises(ValueError, match='too few'):
    TokenWindows(np.arange(SEQ), SEQ)


def test_same_seed_same_batches_epochs_differ(source):
  make = lambda seed: pipeline.make_lm_pipeline(source, global_batch_size=4, seed=seed,
                                                process_index=0, process_count=1)
  a = [_ids(b) for b in _take(make(0), 12)]
  assert a == [_ids(b) for b in _take(make(0), 12)]
  assert a != [_ids(b) for b in _take(make(1), 12)]
  epochs = [sum(a[4 * e:4 * e + 4], []) for e in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(NUM_WINDOWS))  # each epoch is a permutation
  assert epochs[0] != epochs[1] != epochs[2] != epochs[0]
  assert epochs[0] != list(range(NUM_WINDOWS))
  batch = _take(make(0), 1)[0]
  assert batch['inputs'].shape == (4, SEQ) and batch['targets'].dtype == np.int32
  np.testing.assert_array_equal(batch['inputs'][:, 1:], batch['targets'][:, :-1])


def test_no_shuffle_and_finite_epochs(source):
  it = pipeline.make_lm_pipeline(source, global_batch_size=4, seed=0, shuffle=False, num_epochs=2,
                                 process_index=0, process_count=1)
  ids = [_ids(b) for b in it]
  assert sum(ids, []) == list(range(NUM_WINDOWS)) * 2


def test_get_state_set_state_resumes_across_epoch_boundary(source):
  make = lambda: pipeline.make_lm_pipeline(source, global_batch_size=4, seed=7, process_index=0,
                                           process_count=1)
  it = make()
  _take(it, 3)
  state = it.get_state()
  expected = [_ids(b) for b in _take(it, 6)]  # batches 3..8 span epochs 0, 1 and 2
  restored = make()
  restored.set_state(state)
  assert [_ids(b) for b in _take(restored, 6)] == expected


def test_orbax_checkpoint_round_trip(source, tmp_path):
  make = lambda: pipeline.make_lm_pipeline(source, global_batch_size=4, seed=3, process_index=0,
                                           process_count=1)
  it = make()
  _take(it, 5)
  with ocp.CheckpointManager(tmp_path / 'ckpt') as mngr:
    mngr.save(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    mngr.wait_until_finished()
  expected = [_ids(b) for b in _take(it, 3)]
  restored = make()
  with ocp.CheckpointManager(tmp_path / 'ckpt') as mngr:
    assert mngr.latest_step() == 5
    mngr.restore(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(restored)))
  assert [_ids(b) for b in _take(restored, 3)] == expected


def test_per_host_sharding(source):
  whole = pipeline.make_lm_pipeline(source, global_batch_size=4, seed=5, process_index=0,
                                    process_count=1)
  hosts = [pipeline.make_lm_pipeline(source, global_batch_size=4, seed=5, process_index=i,
                                     process_count=2) for i in range(2)]
  for _ in range(10):
    global_ids = _ids(next(whole))
    h0, h1 = (_ids(next(h)) for h in hosts)
    assert len(h0) == len(h1) == 2
    assert not set(h0) & set(h1)
    assert sorted(h0 + h1) == sorted(global_ids)


def test_batch_must_divide_by_process_count(source):
  with pytest.raises(ValueError, match='global_batch_size=5'):
    pipeline.make_lm_pipeline(source, global_batch_size=5, seed=0, process_index=0, process_count=2)
  with pytest.raises(ValueError, match='process_index'):
    pipeline.make_lm_pipeline(source, global_batch_size=4, seed=0, process_index=2, process_count=2)


def test_defaults_use_jax_process_layout(source):
  it = pipeline.make_lm_pipeline(source, global_batch_size=4, seed=0)  # 1 process here
  assert next(it)['inputs'].shape == (4, SEQ)


def test_eval_batches_cover_every_window_once():
  source = TokenWindows(np.arange(10 * SEQ + 1), SEQ)
  batches = pipeline.make_eval_batches(source, 4)
  assert len(batches) == 3
  seen = []
  for batch in batches:
    assert batch['inputs'].shape == (4, SEQ) and batch['mask'].dtype == np.float32
    seen += _ids({'inputs': batch['inputs'][batch['mask'] == 1]})
  assert seen == list(range(10))
  np.testing.assert_array_equal(batches[2]['mask'], [1, 1, 0, 0])
  np.testing.assert_array_equal(batches[2]['inputs'][2:], 0)
  assert [b['mask'].sum() for b in batches] == [4, 4, 2]  # re-iterable, same again
