"""GRPO through the trainer: sharded rollouts = single-device rollouts, resume = uninterrupted, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlab.data import pipeline, rl_tasks
from jaxlab.nn import DecoderLM, llama_config
from jaxlab.rl import grpo, rollout, sft
from jaxlab.train import Trainer, train
from tests.train.helpers import base_config

TOK = rl_tasks.WordTokenizer(rl_tasks.sum_vocabulary())
MODEL = DecoderLM(llama_config(vocab_size=TOK.vocab_size, num_layers=1, embed_dim=16, num_heads=2, num_kv_heads=2,
                               mlp_dim=32, max_len=32))
G, P, N_NEW = 4, 2, 6


def toy_reward(text, example):
  """Varies across samples of a random policy, so advantages (and updates) are non-zero."""
  words = text.split()
  return {"digits": sum(w.isdigit() for w in words) / N_NEW, "gold": float(example["answer"] in words)}


def prompt_iterator(seed=0):
  items = rl_tasks.noisy_sums(32, seed=1)
  p, m = sft.pack_prompts([TOK.encode(i.prompt) for i in items], 9)
  records = [{"prompt": p[i], "prompt_mask": m[i], "answer": np.asarray(items[i].answer)} for i in range(len(items))]
  return pipeline.make_lm_pipeline(records, global_batch_size=P, seed=seed)


def init_params(rng):
  return MODEL.init(rng, jnp.zeros((1, 8), jnp.int32))["params"]


def make_engine(record=None, reward_fn=toy_reward):
  cfg = grpo.GRPOConfig(group_size=G, prompts_per_step=P, max_new_tokens=N_NEW, temperature=1.0)
  engine = grpo.GRPO(MODEL, cfg, rollout.SamplingConfig(max_new_tokens=N_NEW, eos_id=TOK.eos_id), reward_fn,
                     {"digits": 1.0, "gold": 1.0}, TOK.decode, prompt_iterator(), init_params)
  task = engine.task()
  if record is not None:
    inner = task.rollout

    def recorded(state, item, ctx):
      batch, metrics = inner(state, item, ctx)
      record.append((batch, metrics))
      return batch, metrics
    task.rollout = recorded
  return task


def rl_config(**kw):
  return base_config(batch_size=G * P, **{"optimizer.learning_rate": 3e-2}, **kw)


def one_device():
  return [jax.devices()[0]]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  record = []
  res = train(rl_config(total_steps=4), str(tmp_path_factory.mktemp("full")), make_engine(record), one_device())
  return res, record


def test_sharded_rollouts_and_updates_equal_single_device(full_run, tmp_path):
  ref, ref_record = full_run
  record = []
  trainer = Trainer(rl_config(total_steps=4, mesh=dict(data=2, fsdp=2, tensor=2)), str(tmp_path), make_engine(record))
  res = trainer.run()
  assert jax.device_count() == 8
  for (b, m), (rb, rm) in zip(record, ref_record):
    np.testing.assert_array_equal(b["completion"], rb["completion"])  # same RNG -> same samples
    np.testing.assert_array_equal(b["completion_mask"], rb["completion_mask"])
    np.testing.assert_allclose(b["advantages"], rb["advantages"], atol=1e-6)
    assert m["reward/total"] == pytest.approx(rm["reward/total"])
  for a, b in zip(jax.tree.leaves(jax.device_get(res.state.params)), jax.tree.leaves(jax.device_get(ref.state.params))):
    np.testing.assert_allclose(a, b, atol=2e-5)
  assert res.state.params["embed"]["embedding"].sharding.spec[1] == "fsdp"  # the policy really is sharded


def test_rl_resume_equals_uninterrupted(full_run, tmp_path):
  ref, ref_record = full_run
  first, second = [], []
  train(rl_config(total_steps=2, checkpoint_every=2), str(tmp_path), make_engine(first), one_device())
  res = train(rl_config(total_steps=4, checkpoint_every=2), str(tmp_path), make_engine(second), one_device())
  assert res.start_step == 2 and len(second) == 2
  for (b, _), (rb, _) in zip(first + second, ref_record):
    np.testing.assert_array_equal(b["prompt"], rb["prompt"])        # the prompt iterator resumed
    np.testing.assert_array_equal(b["completion"], rb["completion"])  # the sampler RNG resumed
  for a, b in zip(jax.tree.leaves(jax.device_get(res.state.params)), jax.tree.leaves(jax.device_get(ref.state.params))):
    np.testing.assert_allclose(a, b, atol=1e-6)
  # Per-step logging: reward components, advantage stats, lengths, KL-free entropy, rollout throughput.
  for key in ("reward/digits", "reward/gold", "advantage/std", "response/length_mean", "rollout/tokens_per_sec",
              "entropy", "ratio_mean"):
    assert key in res.train_metrics, key
  assert any(abs(m["advantage/abs_mean"]) > 0 for _, m in ref_record)


def test_bad_input_is_clear_or_scored_zero(caplog):
  with pytest.raises(ValueError, match="prompt batch is empty"):
    rollout.check_prompts(np.zeros((0, 4), np.int32), np.zeros((0, 4), bool))
  with pytest.raises(ValueError, match=r"prompts \[1\] have no tokens"):
    rollout.check_prompts(np.ones((2, 3), np.int32), np.array([[1, 1, 1], [0, 0, 0]], bool))

  def flaky(text, example):
    if example["answer"] == "boom":
      raise RuntimeError("reward server down")
    return {"r": 1.0}
  scores = rollout.score(["a", "b", "c"], [{"answer": "x"}, {"answer": "boom"}, {"answer": "y"}], flaky, {"r": 1.0})
  assert scores.total.tolist() == [1.0, 0.0, 1.0] and scores.errors == 1
  assert "reward function failed on sample 1" in caplog.text
  nan = rollout.score(["a"], [{"answer": "x"}], lambda t, e: {"r": float("nan")}, {"r": 1.0})
  assert nan.total.tolist() == [0.0] and nan.errors == 1
  with pytest.raises(ValueError, match="config.rl.group_size=1"):
    grpo.GRPO(MODEL, grpo.GRPOConfig(group_size=1), rollout.SamplingConfig(max_new_tokens=2), toy_reward, {},
              TOK.decode, iter([]), init_params)


def test_stop_strings_cut_text_and_mask():
  words = ["<answer>", "3", "</answer>", "<confidence>", "0.5", "</confidence>", "7", "7"]
  tokens = np.asarray([TOK.encode(" ".join(words))], np.int32)
  texts, mask = rollout.decode_and_stop(tokens, np.ones_like(tokens, bool), TOK.decode, ("</confidence>",))
  assert texts == ["<answer> 3 </answer> <confidence> 0.5 </confidence>"]
  assert mask[0].tolist() == [True] * 6 + [False] * 2
