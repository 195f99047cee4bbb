"""The Patches, Speed, Experiments and Report pages laid out in a real browser (Chromium) at 1400 px, 1024 px and on a
390 px phone, on a copy of the shipped demo store (every page draws its stored results at once): patch titles
neither overlap nor run off their chart, the Experiments legend's entries are distinct and on screen, and the
tables show the columns a reader compares (the Speed table's accuracy, the scorer table's chance level) without
scrolling them sideways out of sight (issue 28 §5).

Plotly draws titles and legends as SVG text, read here from the DOM (``.annotation-text``, ``.gtitle``,
``.legendtext``). ``st.dataframe`` draws on a canvas, but renders an accessibility table of the columns in view
(``th`` in column order, scrolled to the left): a column is entirely in view when a later column is rendered too,
or when it is the last one and the table does not scroll sideways.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest

from tests.e2e.harness import EXCEPTION, ROOT, SCREENSHOTS, screenshot, start_server, wait_for_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]

DEMO_DB = ROOT / "data" / "demo" / "lotus-demo.db"
WIDTHS = {1400: 1000, 1024: 768, 390: 844}  # viewport width -> height: a laptop, a small window, a phone

TITLES = """() => {
  // the annotations (subplot titles) and titles of every chart with a patch-score colour bar, in page pixels
  const out = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const bar = plot.querySelector('.colorbar');
    if (!bar || !bar.textContent.includes('score')) continue;
    const frame = plot.querySelector('.main-svg').getBoundingClientRect();
    const boxes = [...plot.querySelectorAll('.annotation-text, .gtitle')].filter(t => t.textContent.trim()).map(t => {
      const r = t.getBoundingClientRect();
      return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    });
    out.push({frame: {left: frame.left, right: frame.right, top: frame.top, bottom: frame.bottom}, boxes});
  }
  return out;
}"""

LEGEND = """() => [...document.querySelectorAll('.js-plotly-plot .legendtext')].map(t => {
  const r = t.getBoundingClientRect();
  return {text: t.textContent, left: r.left, right: r.right};
})"""

COLUMNS = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')].map(grid => {
  const scroller = grid.querySelector('.dvn-scroller');
  return {headers: [...grid.querySelectorAll('thead th, [role=columnheader]')].map(h => h.textContent.trim()),
          scrolls: scroller ? scroller.scrollWidth > scroller.clientWidth + 1 : false};
})"""


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """``streamlit run`` on a copy of the shipped demo store (its pages serve their stored results)."""
    db = tmp_path_factory.mktemp("layout") / "lotus.db"
    shutil.copy(DEMO_DB, db)
    server = start_server(db, ROOT / "artifacts" / "e2e-layout-server.log")
    yield server
    server.stop()


@dataclass
class Tab:
    page: object  # a Playwright page
    url: str  # the dashboard's
    width: int  # the viewport's, px

    def visit(self, path: str) -> None:
        """Open ``path``, wait for its script and charts (plotly lays text out after the script), keep a screenshot."""
        self.page.goto(f"{self.url}/{path}")
        wait_for_page(self.page)
        self.page.wait_for_timeout(800)
        assert self.page.locator(EXCEPTION).count() == 0, self.page.locator(EXCEPTION).first.inner_text()[:300]
        screenshot(self.page, SCREENSHOTS / f"layout-pages-{self.width}px-{path}.png")

    def evaluate(self, script: str):
        return self.page.evaluate(script)


@pytest.fixture(scope="module", params=list(WIDTHS), ids=[f"{w}px" for w in WIDTHS])
def tab(request, browser, demo_server):
    """A browser tab of the given viewport width on the demo dashboard."""
    width = request.param
    context = browser.new_context(viewport={"width": width, "height": WIDTHS[width]})
    page = context.new_page()
    page.set_default_timeout(300_000)
    yield Tab(page, demo_server.url, width)
    context.close()


def overlapping(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] - 1 and b["left"] < a["right"] - 1 and a["top"] < b["bottom"] - 1 \
        and b["top"] < a["bottom"] - 1


def title_problems(charts: list[dict]) -> list[str]:
    """Titles of a patch chart that overlap each other or stick out of their chart."""
    problems = []
    for chart in charts:
        frame, boxes = chart["frame"], chart["boxes"]
        for box in boxes:
            if box["left"] < frame["left"] - 1 or box["right"] > frame["right"] + 1 or box["top"] < frame["top"] - 1:
                problems.append(f"clipped: {box['text']!r} ({box['left']:.0f}-{box['right']:.0f} px, top "
                                f"{box['top']:.0f}, chart {frame['left']:.0f}-{frame['right']:.0f}, top {frame['top']:.0f})")
        problems += [f"overlap: {a['text']!r} and {b['text']!r}" for i, a in enumerate(boxes) for b in boxes[i + 1:]
                     if overlapping(a, b)]
    return problems


def column_in_view(tables: list[dict], label: str) -> bool:
    """Whether a table has the column ``label`` entirely in view (see the module docstring)."""
    for table in tables:
        headers = table["headers"]
        if label in headers:
            i = headers.index(label)
            return i < len(headers) - 1 or not table["scrolls"]
    return False


@pytest.mark.parametrize("path", ["patches", "report"])
def test_patch_titles_neither_overlap_nor_are_clipped(tab, path):
    tab.visit(path)
    charts = tab.evaluate(TITLES)
    assert charts and all(len(c["boxes"]) >= 2 for c in charts), charts  # the patch chart is drawn, titled
    problems = title_problems(charts)
    assert not problems, f"{path} at {tab.width} px:\n" + "\n".join(problems)


def test_the_scorer_table_shows_its_chance_level(tab):
    tab.visit("patches")
    tables = tab.evaluate(COLUMNS)
    assert column_in_view(tables, "by chance"), f"at {tab.width} px the scorer table shows only {tables}"


def test_the_speed_table_shows_accuracy(tab):
    tab.visit("speed")
    tables = tab.evaluate(COLUMNS)
    assert column_in_view(tables, "accuracy (%)"), f"at {tab.width} px the Speed table shows only {tables}"


def test_the_experiments_legend_entries_are_distinct_and_on_screen(tab):
    tab.visit("experiments")
    entries = tab.evaluate(LEGEND)
    assert len(entries) >= 2, entries  # the newest curve of the demo store: a sweep of two methods
    texts = [e["text"] for e in entries]
    assert len(set(texts)) == len(texts), texts
    off = [e for e in entries if e["left"] < 0 or e["right"] > tab.width]
    assert not off, f"at {tab.width} px legend entries leave the screen: {off}"
