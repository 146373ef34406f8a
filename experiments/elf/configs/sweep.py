r"""Sampling sweeps over trained experiments/elf runs (no training): see experiments/elf/sweep.py.

  python -m experiments.elf.sweep --config=experiments/elf/configs/sweep.py:guidance --workdir=workdirs/sweep_guidance
  python -m experiments.elf.sweep --config=experiments/elf/configs/sweep.py:steps --workdir=workdirs/sweep_steps
  python -m experiments.elf.sweep --config=experiments/elf/configs/sweep.py:compare --workdir=workdirs/sweep_compare
  python -m experiments.elf.sweep --config=experiments/elf/configs/sweep.py:quick --workdir=workdirs/sweep_quick
  python -m experiments.elf.sweep --config=experiments/elf/configs/sweep.py:quick16 --workdir=workdirs/sweep_quick16

Variants: guidance (a: w sweep, SDE 32 steps, ELF x-prediction), steps (b: SDE vs ODE at 8/16/32 steps),
quick (a and b in one ≲10 min pass on the loaded 2-core CPU: 64 samples, w ∈ {1, 2, 3, 5}, SDE vs ODE at 8 and 32),
quick16 (the 16-step SDE and ODE rows that complete quick's b at the same 64 samples and seed),
compare (c-e: x- vs v-prediction, frozen vs learned embeddings, ELF vs MDLM, at 8/16/32 steps).
Every row is scored by the evaluators of `config.eval` (generative perplexity AND entropy); a 'data' row
scores held-out windows of the corpus as the reference.
"""

import ml_collections

SWEEPS = ('guidance', 'steps', 'compare', 'quick', 'quick16', 'tiny')


def _setting(method='sde', num_steps=32, guidance=3.0, schedule='logit_normal'):
  return dict(method=method, num_steps=num_steps, guidance=guidance, schedule=schedule)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in SWEEPS:
    raise ValueError(f'unknown sweep {arg!r}; expected one of {SWEEPS}')
  c = ml_collections.ConfigDict()
  c.runs = ('workdirs/elf_x',)    # trained run workdirs (experiments.elf.main), one row block per run
  c.reference = True              # add a row scoring held-out corpus windows
  c.num_samples = 128             # samples per row
  c.batch = 32                    # samples per jitted sampling call
  c.seed = 1234                   # sampling seed (the same for every row)
  c.gamma = 1.5                   # ELF SDE churn
  c.settings = [_setting()]       # ELF rows: method / num_steps / guidance / time-grid schedule;
  #                                 MDLM runs use num_steps only (ancestral sampling)
  c.eval = ml_collections.ConfigDict()
  c.eval.ar_lm_workdir = 'workdirs/elf_evallm'  # experiments/lm evaluator ('' = skip)
  c.eval.smollm2 = True           # score with SmolLM2-135M too
  c.eval.smollm2_samples = 64     # of the samples of each row
  c.cache_dir = ''                # asset cache ('' = default)

  if arg == 'guidance':
    c.settings = [_setting(guidance=w) for w in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0)]
  elif arg == 'steps':
    c.settings = [_setting(method=m, num_steps=n) for m in ('sde', 'ode') for n in (8, 16, 32)]
    c.settings += [_setting(method='sde', num_steps=n, schedule='uniform') for n in (8, 32)]
  elif arg == 'compare':
    c.runs = ('workdirs/elf_x', 'workdirs/elf_v', 'workdirs/elf_learned', 'workdirs/mdlm')
    c.settings = [_setting(num_steps=n) for n in (8, 16, 32)]
  elif arg == 'quick':
    c.num_samples = 64
    c.settings = [_setting(guidance=w) for w in (1.0, 2.0, 3.0, 5.0)]
    c.settings += [_setting(method='ode'), _setting(num_steps=8), _setting(method='ode', num_steps=8)]
  elif arg == 'quick16':
    c.num_samples = 64
    c.reference = False
    c.settings = [_setting(num_steps=16), _setting(method='ode', num_steps=16)]
  elif arg == 'tiny':
    c.num_samples = 4
    c.batch = 4
    c.settings = [_setting(num_steps=2), _setting(method='ode', num_steps=1, guidance=0.5)]
    c.eval.ar_lm_workdir = ''
    c.eval.smollm2 = False
  return c
