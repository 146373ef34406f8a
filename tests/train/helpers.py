"""A tiny regression task for trainer tests (independent of jaxlab.nn)."""

from __future__ import annotations

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxlab.train import Task


class TinyMLP(nn.Module):
  """[batch, 8] -> [batch, 4] with logically named parameters."""

  @nn.compact
  def __call__(self, x):
    init = nn.initializers.lecun_normal()
    h = nn.Dense(32, kernel_init=nn.with_logical_partitioning(init, ("embed", "mlp")),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)), name="wi")(x)
    h = nn.with_logical_constraint(jnp.tanh(h), ("batch", "mlp"))
    return nn.Dense(4, kernel_init=nn.with_logical_partitioning(init, ("mlp", "embed")),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)), name="wo")(h)


class RecordingIterator(grain.DatasetIterator):
  """Wraps a grain iterator, recording every batch it hands out (state methods pass through)."""

  def __init__(self, it):
    super().__init__(it)
    self._it, self.seen = it, []

  def __next__(self):
    b = next(self._it)
    self.seen.append({k: np.array(v) for k, v in b.items()})
    return b

  def get_state(self):
    return self._it.get_state()

  def set_state(self, state):
    self._it.set_state(state)


def make_data(batch_size: int, seed: int = 0, n: int = 96):
  rng = np.random.default_rng(1234)
  xs = rng.normal(size=(n, 8)).astype(np.float32)
  ys = np.tanh(xs @ rng.normal(size=(8, 4))).astype(np.float32)
  records = [{"x": xs[i], "y": ys[i]} for i in range(n)]
  ds = grain.MapDataset.source(records).shuffle(seed=seed).repeat(None).batch(batch_size, drop_remainder=True)
  return RecordingIterator(iter(ds))


def make_task(batch_size: int, seed: int = 0, dropout: bool = False) -> Task:
  model = TinyMLP()

  def loss_fn(params, batch, rng):
    pred = model.apply({"params": params}, batch["x"])
    if dropout:  # exercises the RNG path: noise must depend only on (seed, step)
      pred = pred + 0.01 * jax.random.normal(rng, pred.shape)
    loss = jnp.mean((pred - batch["y"]) ** 2)
    return loss, {"abs_err": jnp.mean(jnp.abs(pred - batch["y"]))}

  def eval_step(params, batch):
    pred = model.apply({"params": params}, batch["x"])
    return {"mse": jnp.sum((pred - batch["y"]) ** 2) / 4, "weight": jnp.asarray(batch["x"].shape[0], jnp.float32)}

  def eval_data():
    rng = np.random.default_rng(7)
    return [{"x": rng.normal(size=(batch_size, 8)).astype(np.float32),
             "y": np.zeros((batch_size, 4), np.float32)} for _ in range(2)]

  task = Task(init_params=lambda rng: model.init(rng, jnp.zeros((1, 8)))["params"], loss_fn=loss_fn,
              train_data=make_data(batch_size, seed), eval_step=eval_step, eval_data=eval_data,
              tokens_per_example=1)
  task.model = model  # for tests that recompute predictions
  return task


def base_config(**overrides) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(
      seed=0, total_steps=4, batch_size=16, num_microbatches=1, log_every=1, eval_every=0, checkpoint_every=0,
      keep_checkpoints=3, ema_decay=0.0, measure_peak=False, peak_flops_per_device=0.0,
      mesh=dict(data=1, fsdp=1, tensor=1), sharding_rules=None,
      optimizer=dict(name="adamw", learning_rate=1e-2, schedule="constant", warmup_steps=0, weight_decay=0.01,
                     b1=0.9, b2=0.99, eps=1e-8, grad_clip_norm=1.0, momentum=0.9, end_lr_fraction=0.0)))
  for k, v in overrides.items():
    target = cfg
    *parents, leaf = k.split(".")
    for p in parents:
      target = target[p]
    target[leaf] = v
  return cfg
