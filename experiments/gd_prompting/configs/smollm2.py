r"""SmolLM2-135M rows of experiments/gd_prompting (experiments/gd_prompting/smollm2.py).

  python -m experiments.gd_prompting.smollm2 --config=experiments/gd_prompting/configs/smollm2.py --workdir=workdirs/gd_smollm2
  python -m experiments.gd_prompting.smollm2 --config=experiments/gd_prompting/configs/smollm2.py:tiny --workdir=workdirs/gd_smollm2_tiny
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.num_layers = 0                        # 0: all 30 layers; n > 0 keeps the first n (tiny runs).
  c.lengths = (24, 24, 5)                 # Padded context, query ⊕ answer and answer lengths (tokens).
  c.eta = 1e-3                            # Inner SGD step on the summed context NLL (the paper's 1e-3).
  c.num_test = 32                         # Test items per kind (every row uses the same ones).
  c.meta_batch = 2                        # Tasks per meta-step (half per kind), scanned sequentially.
  c.remat_arms = ('none', 'full')         # Per-block remat settings whose meta-step memory and time are measured.
  c.time_repeats = 2                      # Timed executions of each compiled meta-step.
  c.meta_steps = 4                        # LC second-order meta-steps (Adam) before the after-rows (0: skip).
  c.meta_lr = 1e-5                        # Adam learning rate of those steps.
  c.train_remat = 'full'                  # Remat of the meta-training steps.
  if arg == 'tiny':
    c.num_layers, c.num_test, c.time_repeats, c.meta_steps = 2, 4, 1, 1
  elif arg:
    raise ValueError(f'Unknown config variant {arg!r}; expected "" or "tiny".')
  return c
