r"""Do LLMs benefit from their own words? Full context vs user-turn-only prompting, and a context filter.

  python -m experiments.own_words.main --config=experiments/own_words/configs/default.py --workdir=workdirs/own_words
  python -m experiments.own_words.main --config=experiments/own_words/configs/default.py:tiny --workdir=workdirs/ow_tiny

Paper: J. Huang, Choshen, Astudillo, Broderick, Andreas (arXiv 2602.24287). Three parts:
1. ShareGPT (the `sharegpt` asset, statistics only): context characters by round under full context (FC),
   user turns only (AO) and summaries (an extractive stand-in: each assistant turn's first sentence), and
   the shares of jaxlab's rule-based turn categories.
2. Verifiable synthetic conversations (dialogues.py: capitals, corrections, follow-ups that build on the
   last answer) answered by a real chat model (SmolLM2-135M-Instruct or Gemma-3-270M) under each context
   mode, every mode regenerating its own assistant turns; accuracy per category, context tokens, and
   pollution: P(wrong at t | wrong at t-1), and the follow-up after an injected wrong answer.
3. The context filter (jaxlab.agents.turn_filter) trained on half of the conversations with label
   "FC correct and AO wrong", MiniLM embeddings; accuracy and tokens vs τ on the other half, against the
   omit-on-new-asks rule. Turns are selected offline from the FC and AO runs (as the paper evaluates it).
workdir/results.json holds every number; PNGs beside it.
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before JAX is imported

import collections
import json
import os
import re
import time

import jax
import ml_collections
import numpy as np
from absl import flags, logging

from experiments.own_words import dialogues
from jaxlab.agents import chat, context, turn_filter
from jaxlab.train import runrecord

app_flags.define()


def sharegpt_stats(config: ml_collections.ConfigDict) -> dict:
  """Part 1: context characters by round (FC / AO / first-sentence summary) and category shares."""
  from jaxlab.data import conversations  # pylint: disable=import-outside-toplevel
  total, kept = 0, []
  for record in conversations.read_sharegpt(limit=config.limit or None):
    total += 1
    messages = conversations.to_messages(record)
    if conversations.paper_filter(messages, config.min_rounds, config.max_rounds):
      kept.append(messages)
  chars = {m: collections.defaultdict(list) for m in ('full', 'user_only', 'summary')}
  categories = collections.Counter()
  for messages in kept:
    for i in [j for j, m in enumerate(messages) if m['role'] == 'user']:
      round_index = sum(m['role'] == 'user' for m in messages[:i + 1])
      prefix = messages[:i + 1]
      firsts = [re.split(r'(?<=[.!?])\s', m['content'], maxsplit=1)[0] for m in prefix if m['role'] == 'assistant']
      for mode in chars:
        built = context.build(prefix, mode, summaries=firsts if mode == 'summary' else None)
        chars[mode][round_index].append(sum(len(m['content']) for m in built))
      categories[turn_filter.categorise(messages[i]['content'], round_index)] += 1
  n_turns = sum(categories.values())
  return {
      'conversations_decoded': total, 'conversations_kept': len(kept),
      'chars_by_round': {mode: {str(r): {'mean': float(np.mean(v)), 'median': float(np.median(v)), 'n': len(v)}
                                for r, v in sorted(by_round.items())} for mode, by_round in chars.items()},
      'category_shares': {c: categories[c] / max(n_turns, 1) for c in turn_filter.CATEGORIES},
      'turns': n_turns,
  }


def tiny_random_model(seed: int) -> chat.ChatModel:
  """SmolLM2's tokenizer and chat template on a randomly initialised 1-layer DecoderLM (pipeline tests)."""
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from jaxlab.data import assets  # pylint: disable=import-outside-toplevel
  from jaxlab.io import gguf  # pylint: disable=import-outside-toplevel
  from jaxlab.nn.lm import transformer  # pylint: disable=import-outside-toplevel
  f = gguf.read_gguf(assets.path('smollm2-135m', chat.SMOLLM2_GGUF))
  tok = gguf.tokenizer_from_gguf(f)
  eos = gguf.special_token_ids(f)['eos']
  cfg = transformer.llama_config(vocab_size=tok.get_vocab_size(), num_layers=1, embed_dim=16, num_heads=2,
                                 num_kv_heads=1, mlp_dim=32, max_len=2048)
  params = transformer.DecoderLM(cfg).init(jax.random.key(seed), jnp.zeros((1, 8), jnp.int32))['params']
  return chat.ChatModel('tiny_random', cfg, params, tok, gguf.chat_template(f), eos, [], eos)


def converse(model: chat.ChatModel, convs: list[list[dialogues.UserTurn]], mode: str,
             config: ml_collections.ConfigDict, inject_wrong_at: int | None = None) -> dict:
  """Every conversation answered round by round under `mode`, regenerating its own assistant turns.

  With `inject_wrong_at` = r, the assistant answer of round r (0-based) is replaced by a fluent wrong one
  before round r + 1 is asked (the pollution arm).
  """
  gen = dict(max_new_tokens=config.max_new_tokens, batch_size=config.batch_size, seed=config.seed)
  histories = [[] for _ in convs]
  summaries = [[] for _ in convs]
  answers, correct, tokens, contexts = ([[] for _ in convs] for _ in range(4))
  for r in range(len(convs[0])):
    ctxs = []
    for i, conv in enumerate(convs):
      messages = histories[i] + [{'role': 'user', 'content': conv[r].text}]
      ctxs.append(context.build(messages, mode, summaries=summaries[i] if mode == 'summary' else None))
    ids = [model.prompt_ids(c) for c in ctxs]
    replies = model.respond_ids(ids, **gen)
    for i, conv in enumerate(convs):
      reply = dialogues.wrong_answer(conv[r]) if r == inject_wrong_at else replies[i]
      answers[i].append(reply)
      correct[i].append(bool(dialogues.correct(replies[i], conv[r])))
      tokens[i].append(len(ids[i]))
      contexts[i].append(histories[i] + [{'role': 'user', 'content': conv[r].text}])
      histories[i] = contexts[i][-1] + [{'role': 'assistant', 'content': reply}]
    if mode == 'summary':
      asks = [[{'role': 'user', 'content': conv[r].text}, {'role': 'assistant', 'content': answers[i][-1]},
               {'role': 'user', 'content': context.SUMMARY_PROMPT}] for i, conv in enumerate(convs)]
      for i, s in enumerate(model.respond(asks, **gen)):
        summaries[i].append(s or answers[i][-1])
  return {'answers': answers, 'correct': correct, 'tokens': tokens, 'contexts': contexts}


def accuracy_table(convs, runs: dict) -> dict:
  """Per mode: accuracy overall and per category (rounds ≥ 2 and round 1 separately), mean context tokens."""
  out = {}
  for mode, run in runs.items():
    by_cat = collections.defaultdict(list)
    for conv, corr in zip(convs, run['correct']):
      for r, (turn, c) in enumerate(zip(conv, corr)):
        by_cat['round_1' if r == 0 else turn.category].append(c)
    flat = [c for corr in run['correct'] for c in corr]
    out[mode] = {'accuracy': float(np.mean(flat)), 'n': len(flat),
                 'by_category': {k: {'accuracy': float(np.mean(v)), 'n': len(v)} for k, v in sorted(by_cat.items())},
                 'mean_context_tokens': float(np.mean([t for ts in run['tokens'] for t in ts])),
                 'wrong_after_wrong': _conditional_error(run['correct'])}
  return out


def _conditional_error(correct: list[list[bool]]) -> dict:
  """P(wrong at t | wrong at t-1) and P(wrong at t | right at t-1) over consecutive rounds."""
  pairs = [(c[t - 1], c[t]) for c in correct for t in range(1, len(c))]
  after_wrong = [not b for a, b in pairs if not a]
  after_right = [not b for a, b in pairs if a]
  return {'p_wrong_given_wrong': float(np.mean(after_wrong)) if after_wrong else None, 'n_after_wrong': len(after_wrong),
          'p_wrong_given_right': float(np.mean(after_right)) if after_right else None, 'n_after_right': len(after_right)}


def filter_sweep(convs, fc: dict, ao: dict, config: ml_collections.ConfigDict) -> dict:
  """Part 3: the context filter fitted on half the conversations, swept over τ on the other half."""
  from jaxlab.data import text_latents  # pylint: disable=import-outside-toplevel
  encoder, params, tok = text_latents.load_minilm()
  cache = {}

  def embed(texts):
    missing = [t for t in dict.fromkeys(texts) if t not in cache]
    if missing:
      cache.update(zip(missing, text_latents.sentence_embeddings(encoder, params, tok, missing)))
    return np.stack([cache[t] for t in texts])

  rows = []
  for i, conv in enumerate(convs):
    for r in range(1, len(conv)):
      turn = turn_filter.Turn(fc['contexts'][i][r], r + 1, len(conv), turn_filter.categorise(conv[r].text, r + 1))
      rows.append((i, turn, conv[r].category, fc['correct'][i][r], ao['correct'][i][r],
                   fc['tokens'][i][r], ao['tokens'][i][r]))
  rule_agreement = float(np.mean([t.category == cat for _, t, cat, *_ in rows]))
  order = np.random.default_rng(config.seed).permutation(len(convs))
  train_ids = set(order[:len(convs) // 2].tolist())
  train = [x for x in rows if x[0] in train_ids]
  test = [x for x in rows if x[0] not in train_ids]
  labels = [int(f and not a) for _, _, _, f, a, _, _ in train]
  out = {'rule_category_agreement': rule_agreement, 'train_turns': len(train), 'test_turns': len(test),
         'train_positive_rate': float(np.mean(labels)) if labels else None}
  fc_c = np.array([x[3] for x in test], float)
  ao_c = np.array([x[4] for x in test], float)
  fc_t = np.array([x[5] for x in test], float)
  ao_t = np.array([x[6] for x in test], float)

  def point(use):
    acc = float(np.where(use, fc_c, ao_c).mean())
    return {'accuracy': acc, 'relative_to_fc': acc / max(float(fc_c.mean()), 1e-9),
            'token_fraction': float(np.where(use, fc_t, ao_t).sum() / fc_t.sum()), 'fc_share': float(np.mean(use))}

  out['fc'], out['ao'] = point(np.ones(len(test), bool)), point(np.zeros(len(test), bool))
  out['omit_on_new_ask'] = point(np.array([x[1].category != 'new_ask' for x in test]))
  if len(set(labels)) < 2:
    out['filter'] = f'not fitted: the training labels hold one class only ({sorted(set(labels))})'
    return out
  filt = turn_filter.ContextFilter(embed, pca_dim=config.pca_dim, n_search=config.n_search, seed=config.seed)
  filt.fit([x[1] for x in train], labels)
  p = filt.predict_proba([x[1] for x in test])
  out['filter'] = {'cv_f1': filt.cv_f1, 'cv_f1_std': filt.cv_f1_std,
                   'sweep': {f'{tau:.2f}': point(turn_filter.use_full(p, tau)) for tau in config.taus}}
  return out


def plot(results: dict, workdir: str) -> None:
  """context_by_round.png (ShareGPT) and accuracy_by_category.png (synthetic conversations)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  if 'sharegpt' in results:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for mode, by_round in results['sharegpt']['chars_by_round'].items():
      rounds = sorted(by_round, key=int)
      ax.plot([int(r) for r in rounds], [by_round[r]['median'] for r in rounds], marker='o', label=mode)
    ax.set(xlabel='round', ylabel='context characters (median)', yscale='log', title='ShareGPT, 5-10 rounds')
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(workdir, 'context_by_round.png'), dpi=120)
    plt.close(fig)
  table = results['accuracy']
  cats = sorted({c for m in table.values() for c in m['by_category']})
  fig, ax = plt.subplots(figsize=(6, 3.2))
  width = 0.8 / len(table)
  for j, (mode, row) in enumerate(table.items()):
    ax.bar(np.arange(len(cats)) + j * width, [row['by_category'].get(c, {}).get('accuracy', 0) for c in cats],
           width, label=f"{mode} ({row['mean_context_tokens']:.0f} tok)")
  ax.set_xticks(np.arange(len(cats)) + width * (len(table) - 1) / 2, cats)
  ax.set(ylabel='accuracy', ylim=(0, 1), title=results['model'])
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, 'accuracy_by_category.png'), dpi=120)
  plt.close(fig)


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t_start = time.time()
  results: dict = {'model': config.model}
  if config.sharegpt.enabled:
    t = time.time()
    results['sharegpt'] = sharegpt_stats(config.sharegpt) | {'seconds': time.time() - t}
  model = tiny_random_model(config.seed) if config.model == 'tiny_random' else chat.load(config.model)
  rng = np.random.default_rng(config.seed)
  convs = [dialogues.conversation(rng, config.rounds) for _ in range(config.num_conversations)]
  runs, seconds = {}, {}
  for mode in config.modes:
    t = time.time()
    runs[mode] = converse(model, convs, mode, config)
    seconds[mode] = time.time() - t
    logging.info('%s: accuracy %.3f in %.0f s', mode, np.mean(runs[mode]['correct']), seconds[mode])
  results['accuracy'] = accuracy_table(convs, runs)
  results['seconds_per_mode'] = seconds
  # Pollution arm: round 1's answer replaced by a wrong capital, round 2 asks the follow-up.
  polluted_convs = [[c[0], dialogues.UserTurn(dialogues.FOLLOW_UP, 'no_feedback', c[0].topic, c[0].topic)]
                    for c in convs]
  results['pollution'] = {}
  for mode in ('full', 'user_only'):
    if mode in config.modes:
      arm = converse(model, polluted_convs, mode, config, inject_wrong_at=0)
      results['pollution'][mode] = float(np.mean([c[1] for c in arm['correct']]))
  if 'full' in runs and 'user_only' in runs and config.filter.enabled:
    results['context_filter'] = filter_sweep(convs, runs['full'], runs['user_only'], config.filter)
  results['examples'] = [{'turns': [t.text for t in convs[i]],
                          **{m: runs[m]['answers'][i] for m in runs}} for i in range(min(3, len(convs)))]
  results['wall_seconds'] = time.time() - t_start
  results['device'] = jax.devices()[0].device_kind
  plot(results, workdir)
  runrecord.write_json(os.path.join(workdir, 'results.json'), results)
  print(json.dumps({k: results[k] for k in ('accuracy', 'pollution')}, indent=1), flush=True)
  return results


main = app_flags.main_for(run)


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  config = flags.FLAGS.config
  for key in ('num_conversations', 'rounds', 'max_new_tokens', 'batch_size'):
    if int(config[key]) <= 0:
      app_flags.fail(f'--config.{key}={config[key]} must be positive')
  if config.model not in chat.MODELS + ('tiny_random',):
    app_flags.fail(f"--config.model={config.model!r}: expected one of {chat.MODELS + ('tiny_random',)}")
  bad = [m for m in config.modes if m not in context.MODES]
  if bad:
    app_flags.fail(f'--config.modes: unknown mode(s) {bad}; expected some of {context.MODES}')
  if config.filter.enabled and config.num_conversations < 4:
    app_flags.fail(f'--config.num_conversations={config.num_conversations}: the filter needs ≥ 4 (half to fit)')


if __name__ == '__main__':
  app_flags.run(main, validate)
