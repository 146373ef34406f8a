r"""VisualSkill on the ToyEdit application (experiments/visual_skill).

  python -m experiments.visual_skill.main --config=experiments/visual_skill/configs/default.py --workdir=workdirs/visual_skill
  python -m experiments.visual_skill.main --config=experiments/visual_skill/configs/default.py:tiny --workdir=workdirs/visual_skill_tiny
"""

import ml_collections


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seeds = (0, 1, 2, 3, 4)               # App seeds: each randomises the toolbar glyphs and rebuilds both skills.
  c.layouts = ('fixed', 'shuffled', 'shuffled_hidpi')  # Toolbar per episode: the seed's order, a fresh
                                        # permutation, or a permutation with icons resampled at hidpi_scale.
  c.hidpi_scale = 1.25                    # Icon scale of the 'shuffled_hidpi' layout (the crops are at 1.0).
  c.max_offset = 40                       # The toolbar's x offset per episode is uniform in [0, max_offset] px.
  c.retriever = 'minilm'                  # Topic choice of the skill agents: 'minilm' or 'overlap' (+ the oracle row).
  c.max_steps = 60                        # Actions per episode (clicks and tool calls); the no-skill explorer needs ~45.
  c.cache_dir = ''                        # Asset cache ('' = jaxlab's default).
  if arg == 'tiny':
    c.seeds, c.layouts, c.retriever = (0,), ('shuffled',), 'overlap'
  elif arg:
    raise ValueError(f'Unknown config variant {arg!r}; expected "" or "tiny".')
  return c
