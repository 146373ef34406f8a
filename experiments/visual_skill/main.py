r"""VisualSkill (arXiv 2606.18448) at toy scale: skills served over MCP to scripted agents on ToyEdit.

  python -m experiments.visual_skill.main --config=experiments/visual_skill/configs/default.py --workdir=workdirs/visual_skill
  python -m experiments.visual_skill.main --config=experiments/visual_skill/configs/default.py:tiny --workdir=workdirs/visual_skill_tiny

Per app seed (toolbar glyphs randomised): the multimodal skill and its text twin are built from the app's
widget metadata and crawled crops (build.py) under workdir/skills/seed<N>/, each served by its own MCP server
(jaxlab.agents.skills.server) through an in-process mcp.Client. Measured:
1. topic retrieval from the table of contents (title, summary, use-when line): word overlap and MiniLM,
   recall@1 / @3 over the 28 task phrasings;
2. scripted agents (agents.py): no skill, text skill, visual skill (topic from config.retriever, and with the
   oracle topic), per toolbar layout (fixed / shuffled per episode / shuffled with icons drawn at a display
   scale the crops were not taken at): task success, clicks, tool calls, split
   into menu/dialog tasks and icon-only toolbar tasks.
workdir/results.json holds everything. These agents measure what each modality carries to a scripted
reader; they are not the paper's Claude Code + Opus result (0.303 / 0.373 / 0.456).
"""

from __future__ import annotations

from experiments import app_flags
app_flags.check_command_line(__name__)  # command-line mistakes fail here, before the heavy imports

import asyncio
import json
import os
import time

import ml_collections
import numpy as np
from absl import flags, logging

from jaxlab.agents.skills import server as server_lib
from jaxlab.agents.skills import skill_md
from jaxlab.train import runrecord

from experiments.visual_skill import agents as agents_lib
from experiments.visual_skill import app as app_lib
from experiments.visual_skill import build, retrieval

app_flags.define()
RETRIEVERS = ('minilm', 'overlap')


LAYOUTS = ('fixed', 'shuffled', 'shuffled_hidpi')


def episode_app(seed: int, layout: str, rng: np.random.Generator, max_offset: int,
                hidpi_scale: float = 1.25) -> app_lib.App:
  order = tuple(rng.permutation(app_lib.TOOLBAR)) if layout.startswith('shuffled') else None
  return app_lib.App(seed, order=order, offset=int(rng.integers(0, max_offset + 1)),
                     icon_scale=hidpi_scale if layout == 'shuffled_hidpi' else 1.0)


def summarise(rows: list[dict]) -> dict:
  out = {}
  for subset, keep in (('all', lambda r: True), ('menu_dialog', lambda r: not r['toolbar_only']),
                       ('toolbar_only', lambda r: r['toolbar_only'])):
    rs = [r for r in rows if keep(r)]
    out[subset] = {'episodes': len(rs), 'success': float(np.mean([r['success'] for r in rs])),
                   'clicks': float(np.mean([r['clicks'] for r in rs])),
                   'tool_calls': float(np.mean([r['tool_calls'] for r in rs])),
                   'clicks_when_solved': float(np.mean([r['clicks'] for r in rs if r['success']] or [np.nan]))}
  return out


async def run_agents(config, workdir: str, select_retrieved) -> dict:
  import mcp  # pylint: disable=g-import-not-at-top  (the skills extra)
  rows = {}
  for seed in config.seeds:
    visual, text = build.build_skills(int(seed), os.path.join(workdir, 'skills', f'seed{seed}'))
    index = {m: open(os.path.join(p, 'SKILL.md'), encoding='utf-8').read() for m, p in
             (('visual', visual), ('text', text))}
    entries = skill_md.parse(index['visual'])[0].entries
    retrieved = select_retrieved(entries)
    async with mcp.Client(server_lib.make_server(visual)) as cv, mcp.Client(server_lib.make_server(text)) as ct:
      clients = {'visual': cv, 'text': ct}
      for layout in config.layouts:
        for ti, task in enumerate(app_lib.TASKS):
          instruction = task.phrasings[(int(seed) + ti) % 2]
          oracle = lambda _, __, t=task.topic: t  # noqa: E731
          arms = {'no skill': (agents_lib.NoSkillAgent(seed=int(seed)), None)}
          for m in ('text', 'visual'):
            arms[f'{m} skill ({config.retriever})'] = (agents_lib.SkillAgent(m, retrieved, seed=int(seed)), m)
            arms[f'{m} skill (oracle topic)'] = (agents_lib.SkillAgent(m, oracle, seed=int(seed)), m)
          for name, (agent, m) in arms.items():
            rng = np.random.default_rng([int(seed), ti, config.layouts.index(layout)])  # same app for every arm
            app = episode_app(int(seed), layout, rng, int(config.max_offset), float(config.hidpi_scale))
            ep = await agents_lib.run_episode(agent, app, task, instruction, clients.get(m),
                                              index.get(m), int(config.max_steps))
            rows.setdefault((name, layout), []).append(
                dict(seed=int(seed), topic=task.topic, toolbar_only=task.toolbar_only, success=ep.success,
                     clicks=ep.clicks, tool_calls=ep.tool_calls, finished=ep.finished))
  return {f'{name} | {layout}': {'summary': summarise(rs), 'episodes': rs} for (name, layout), rs in rows.items()}


@runrecord.recorded
def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t0 = time.time()
  os.makedirs(workdir, exist_ok=True)
  minilm = retrieval.MiniLM(config.cache_dir or None) if config.retriever == 'minilm' else None
  t_model = time.time() - t0
  _, text0 = build.build_skills(0, os.path.join(workdir, 'skills', 'retrieval'))
  entries = skill_md.read(text0).entries
  queries = [p for t in app_lib.TASKS for p in t.phrasings]
  gold = [t.topic for t in app_lib.TASKS for _ in t.phrasings]
  out = {'retrieval': retrieval.evaluate(entries, queries, gold, minilm)}
  select = minilm.selector if minilm is not None else (lambda entries: agents_lib.overlap_select)
  t1 = time.time()
  out['agents'] = asyncio.run(run_agents(config, workdir, select))
  out['table'] = {k: v['summary'] for k, v in out['agents'].items()}
  out['wall_seconds'] = {'total': time.time() - t0, 'model_load': t_model, 'agents': time.time() - t1}
  runrecord.write_json(os.path.join(workdir, 'results.json'), out)
  for k, v in out['table'].items():
    print(f"{k:40s} success {v['all']['success']:.3f} (menu {v['menu_dialog']['success']:.3f}, toolbar "
          f"{v['toolbar_only']['success']:.3f})  clicks {v['all']['clicks']:.1f}  calls {v['all']['tool_calls']:.1f}",
          flush=True)
  r = out['retrieval']
  print(json.dumps({k: {m: r[k][m] for m in ('recall@1', 'recall@3')} for k in r if isinstance(r[k], dict)}),
        flush=True)
  logging.info('wall %s', out['wall_seconds'])
  return out


main = app_flags.main_for(run)


def validate() -> None:
  """Cheap checks of the config before anything is created (app_flags.run prints each as one line)."""
  config = flags.FLAGS.config
  if config.retriever not in RETRIEVERS:
    app_flags.fail(f'--config.retriever={config.retriever!r}: expected one of {RETRIEVERS}')
  for layout in config.layouts:
    if layout not in LAYOUTS:
      app_flags.fail(f'--config.layouts: {layout!r} is not one of {LAYOUTS}')
  if not 1.0 <= float(config.hidpi_scale) <= 1.25:
    app_flags.fail(f'--config.hidpi_scale={config.hidpi_scale} must be in [1, 1.25]')
  if int(config.max_steps) <= 0:
    app_flags.fail(f'--config.max_steps={config.max_steps} must be positive')
  if not config.seeds:
    app_flags.fail('--config.seeds is empty')
  if int(config.max_offset) < 0:
    app_flags.fail(f'--config.max_offset={config.max_offset} must be >= 0')


if __name__ == '__main__':
  app_flags.run(main, validate)
