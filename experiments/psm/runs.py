"""Per-model result files of the psm app, so that rerunning a command (e.g. with more models in
`config.models`) reuses every model that already finished instead of retraining or re-evaluating it."""

from __future__ import annotations

import json
import os


def finished(model_dir: str, total_steps: int, chunk_size: int | None) -> dict | None:
  """The saved result of a model trained for `total_steps` in `model_dir`, else None.

  A single-c PSM run is named plain 'psm', so a folder may hold another chunk size than the config asks for:
  that is an error (reusing or resuming it would report the wrong model), not a silent reuse.
  """
  path = os.path.join(model_dir, 'result.json')
  if not os.path.exists(path):
    return None
  with open(path, encoding='utf-8') as f:
    out = json.load(f)
  if out.get('chunk_size') != (chunk_size or None):
    raise ValueError(f'{model_dir} holds a run with chunk_size={out.get("chunk_size")}, but the config asks for '
                     f'{chunk_size or None} (config.model.chunk_sizes): use another --workdir')
  return out if out.get('steps') == total_steps else None


def record(model_dir: str, out: dict) -> dict:
  os.makedirs(model_dir, exist_ok=True)
  with open(os.path.join(model_dir, 'result.json'), 'w', encoding='utf-8') as f:
    json.dump(out, f)
  return out
