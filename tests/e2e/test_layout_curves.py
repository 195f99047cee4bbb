"""Layout of the Overview, Sparsity curves, Masks and Soup pages in a real browser (Chromium) at 1400, 1024 and
390 px wide (issue 28 §5): no table cell or column header is clipped, and every method chosen in the Sparsity
curves picker stays in sight.

Tables are checked where they are drawn: an ``st.table`` is DOM, so each header and cell must show its whole
text (scrollWidth within clientWidth) and the table must not overflow its frame; an ``st.dataframe`` is drawn on
a canvas by glide-data-grid, which sizes every column to its content, so its scroller must not overflow sideways
(a column out of sight, or one cut at the frame's edge). The store is seeded with one finished LTH run so that
the Soup page's cost tables and the Masks page's ticket comparison are drawn; every page is opened on 200 test
images and the Sparsity curves page on a two-point grid without refinement, so the first visit computes little.
"""
from __future__ import annotations

import pytest

from tests.e2e.harness import ROOT, SCREENSHOTS, screenshot, start_server, wait_for_page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(2400)]

WIDTHS = [(1400, 1000), (1024, 768), (390, 844)]
METHODS = ["omp", "omp-layerwise", "random", "nm", "wanda", "snip", "grasp", "synflow"]  # chosen in the picker
PAGES = {  # URL path -> query (every page on 200 test images; the curve cheap to compute)
    "": "n=200",
    "sparsity_curves": f"n=200&refine=0&range=0,10&step=10&methods={','.join(METHODS)}",
    "masks": "n=200",
    "soup": "n=200",
}

CLIPPED_TABLES = """() => {
  const problems = [];
  const text = (e) => (e.innerText || e.textContent || '').trim().slice(0, 50);
  for (const table of document.querySelectorAll('[data-testid="stTable"]')) {
    if (table.scrollWidth > table.clientWidth + 1) problems.push(`st.table overflows its frame (${table.scrollWidth} px in ${table.clientWidth} px)`);
    for (const cell of table.querySelectorAll('th, td')) {
      if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`clipped table cell "${text(cell)}" (${cell.scrollWidth} px in ${cell.clientWidth} px)`);
    }
  }
  for (const frame of document.querySelectorAll('[data-testid="stDataFrame"]')) {
    const scroller = frame.querySelector('.dvn-scroller');
    const headers = Array.from(frame.querySelectorAll('th[role="columnheader"]')).map(text).join(', ');
    if (!scroller) { problems.push(`st.dataframe (${headers}) not drawn`); continue; }
    if (scroller.scrollWidth > scroller.clientWidth + 1) problems.push(`st.dataframe (${headers}) is wider than its frame: its columns need ${scroller.scrollWidth} px, it has ${scroller.clientWidth} px`);
    const box = frame.getBoundingClientRect(), main = document.querySelector('[data-testid="stMain"]').getBoundingClientRect();
    if (box.right > main.right + 1) problems.push(`st.dataframe (${headers}) ends past the page's right edge`);
  }
  return problems;
}"""

HIDDEN_CHIPS = """(wanted) => {
  const picker = Array.from(document.querySelectorAll('[data-testid="stMultiSelect"]'))
    .find(e => (e.querySelector('label') || {}).innerText?.trim().startsWith('Methods'));
  if (!picker) return ['no Methods picker'];
  const box = picker.querySelector('[data-testid="stMultiSelectTagsContainer"]');
  const frame = box.getBoundingClientRect();
  const problems = [];
  if (box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1)
    problems.push(`the chosen methods scroll inside the picker (${box.scrollWidth}x${box.scrollHeight} px in ${box.clientWidth}x${box.clientHeight} px)`);
  for (const method of wanted) {
    const chip = box.querySelector(`[data-tag][aria-label="${method}"]`);
    if (!chip) { problems.push(`${method}: no chip`); continue; }
    const r = chip.getBoundingClientRect();
    if (r.left < frame.left - 1 || r.right > frame.right + 1 || r.top < frame.top - 1 || r.bottom > frame.bottom + 1)
      problems.push(`${method}: its chip is out of sight`);
    const label = chip.querySelector('[title]');
    if (label && label.scrollWidth > label.clientWidth + 1) problems.push(`${method}: its chip's text is cut`);
  }
  return problems;
}"""


@pytest.fixture(scope="module")
def seeded_server(tmp_path_factory):
    """``streamlit run`` on a store holding one finished two-round LTH run of the default model (200 images)."""
    from lotus_core.context import open_context
    from lotus_core.lottery.lth import LTHConfig
    from lotus_core.results.runs import run_experiment

    db = tmp_path_factory.mktemp("layout") / "lotus.db"
    ctx = open_context(db=str(db))
    run_experiment(ctx, "lth", LTHConfig(target=0.36, steps=2, batch_size=16, limit=200))
    server = start_server(db, ROOT / "artifacts" / "e2e-layout-server.log")
    yield server
    server.stop()


@pytest.mark.parametrize("width,height", WIDTHS, ids=[f"{w}px" for w, _ in WIDTHS])
def test_tables_and_the_methods_picker_fit_at_every_width(browser, seeded_server, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    tab.set_default_timeout(300_000)
    problems = []
    try:
        for path, query in PAGES.items():
            tab.goto(f"{seeded_server.url}/{path}?{query}")
            wait_for_page(tab)
            tab.wait_for_timeout(800)  # the data grid measures its columns after the script finishes
            where = f"{path or 'overview'} at {width} px"
            problems += [f"{where}: {p}" for p in tab.evaluate(CLIPPED_TABLES)]
            if path == "sparsity_curves":
                problems += [f"{where}: {p}" for p in tab.evaluate(HIDDEN_CHIPS, METHODS)]
            if path == "soup":  # the seeded run's cost is drawn (else this test would check nothing there)
                if not tab.locator('[data-testid="stDataFrame"]').count():
                    problems.append(f"{where}: no cost table drawn")
            screenshot(tab, SCREENSHOTS / f"layout-{width}px-{path or 'overview'}.png")
    finally:
        context.close()
    assert not problems, "\n".join(problems)
