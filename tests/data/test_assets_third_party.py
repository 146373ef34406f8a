"""third_party/README.md must record exactly the assets the fetcher pins (so it cannot go stale)."""

import pathlib
import re

from jaxlab.data import assets

_README = pathlib.Path(__file__).resolve().parents[2] / 'third_party' / 'README.md'


def _rows(text: str) -> set[str]:
  return {line.strip() for line in text.splitlines() if re.match(r'^\|(?!---)', line.strip())}


def test_third_party_tables_match_the_pinned_assets():
  readme = _README.read_text()
  expected = _rows(assets.third_party_tables())
  actual = _rows(readme)
  assert actual == expected, ('third_party/README.md is out of date; regenerate its tables with '
                              f'`python -m jaxlab.data.assets table`. Missing: {sorted(expected - actual)}; '
                              f'extra: {sorted(actual - expected)}')


def test_every_archive_and_asset_is_recorded_with_licence_and_hash():
  readme = _README.read_text()
  for a in assets.ASSETS.values():
    assert a.licence and a.url, a.name
    assert f'| {a.name} | {a.package}=={a.version} | {a.source} | {a.licence} |' in readme
    for archive in a.archives:
      assert re.search(rf'\| {re.escape(archive.filename)} \| {archive.size} \| {archive.sha256} \|', readme)
  assert 'https://ai.google.dev/gemma/terms' in readme  # Gemma's terms are stated
  assert '## Vendored code' in readme
