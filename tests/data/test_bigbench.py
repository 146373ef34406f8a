"""jaxlab.data.bigbench on the real pinned bigbench 1.0.0 sdist (asset 'bigbench': 358 MB download on first use,
three task files kept)."""

from jaxlab.data import assets, bigbench


def test_qa_wikidata_cloze_items_from_the_pinned_sdist():
  folder = assets.fetch('bigbench')
  kept = sorted(str(p.relative_to(folder)) for p in folder.rglob('*.json'))
  assert kept == sorted(assets.ASSETS['bigbench'].members)  # only the listed task files were unpacked
  items = bigbench.cloze_items('qa_wikidata')
  assert len(items) == 20442
  first = items[0]
  assert first.prompt == 'The genre of "Weird Al" Yankovic is' and first.answers == ('comedy', 'parody')
  assert first.relation == 'genre'
  assert items[2].answers == ('Spain',) and items[2].relation == 'country'
  assert all(c.answers and all(isinstance(a, str) and a for a in c.answers) for c in items)
  assert bigbench.load_task('known_unknowns')['name'] == 'known_unknowns'
