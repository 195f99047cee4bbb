"""The dashboard in a real browser (Chromium), as a person uses it: every page in the navigation
renders without an exception and draws its chart, and an on-demand prune shows its accuracy.

Screenshots of every page go to artifacts/screenshots/. Generous timeouts: on a fresh store the
first visit of a page computes its results (the Sparsity curves page its default curve, the Soup
page its OMP and random points), which takes tens of seconds on a busy 2-core machine.
"""
from __future__ import annotations

import re

import pytest

from tests.e2e.harness import (EXCEPTION, PLOT, SCREENSHOTS, current_path, nav_pages, open_page, screenshot,
                               wait_for_page)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(2400)]


def test_navigation_lists_every_page_in_order(page):
    wait_for_page(page)
    links = page.locator('[data-testid="stSidebarNavLink"]')
    labels = [links.nth(i).inner_text().split("\n")[-1].strip() for i in range(links.count())]  # after the icon
    assert labels == [p.title for p in nav_pages()]
    assert [p.title for p in nav_pages()][:3] == ["Overview", "Patches", "Sparsity curves"]


def test_every_page_renders_its_chart_without_an_exception(page):
    problems = []
    for nav in nav_pages():
        drawn = open_page(page, nav) is not None
        assert current_path(page) == nav.path  # the URL path Streamlit derives from the page's file name
        screenshot(page, SCREENSHOTS / f"{nav.path or 'overview'}.png")
        if page.locator(EXCEPTION).count():
            problems.append(f"{nav.title}: exception: {page.locator(EXCEPTION).first.inner_text()[:300]}")
        if not drawn:
            problems.append(f"{nav.title}: no chart drawn")
    assert not problems, "\n".join(problems)


def test_on_demand_prune_shows_the_pruned_accuracy(page):
    nav = next(p for p in nav_pages() if p.title == "Sparsity curves")
    open_page(page, nav)
    page.get_by_role("button", name="Prune", exact=True).click()
    metric = page.locator('[data-testid="stMetric"]', has_text="Pruned accuracy")
    metric.wait_for(state="visible", timeout=300_000)
    wait_for_page(page)
    value = metric.locator('[data-testid="stMetricValue"]').inner_text()
    assert re.fullmatch(r"\d{1,3}\.\d\d%", value.strip()), value
    assert page.locator(EXCEPTION).count() == 0 and page.locator(PLOT).count() >= 1
    screenshot(page, SCREENSHOTS / "sparsity_curves-pruned.png")


def test_the_exported_report_opens_offline_with_every_chart(browser, tiny_ctx, tmp_path):
    from lotus_core.views.report import ReportOptions, build_report
    from lotus_core.pruning.sweep import SweepConfig, run_sweep

    run_sweep(tiny_ctx, SweepConfig(methods=("omp",), sparsities=(0.0, 0.5), limit=50))
    report = build_report(tiny_ctx, ReportOptions(limit=50, example_images=2))
    path = tmp_path / "report.html"
    path.write_text(report.to_html(), encoding="utf-8")
    context = browser.new_context(offline=True)  # no network at all: plotly.js must be inside the file
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.goto(path.as_uri())
    charts = sum(s.figure is not None for s in report.sections)
    tab.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}", timeout=60_000)
    assert tab.locator(".js-plotly-plot").count() == charts == 3  # dense, essential sparsity, patches
    assert tab.locator("h2").all_inner_texts() == [s.title for s in report.sections]
    assert not errors
    context.close()


def test_an_lth_job_runs_in_the_background_and_its_ticket_is_drawn(page, server):
    """Launch a one-round LTH run on the Soup page: the background worker runs it, the page shows its
    progress, then redraws itself with the ticket's curve and cost once the run is done."""
    from lotus_core.jobs import worker_pid

    nav = next(p for p in nav_pages() if p.title == "Soup")
    open_page(page, nav)
    target = page.locator('[data-testid="stSlider"]', has_text="Target sparsity (%)").first.get_by_role("slider")
    target.focus()
    target.press("Home")  # the slider's minimum: 20%, one round at 20% per round
    wait_for_page(page)
    steps = page.get_by_label("Fine-tune steps per round")
    steps.fill("2")
    steps.press("Enter")
    wait_for_page(page)
    page.get_by_role("button", name="Launch LTH", exact=True).click()
    ticket = page.get_by_text(re.compile(r"LTH to 20% \(p=0\.2, 2 steps/round, rewind pretrained\) \[done\]"))
    ticket.first.wait_for(state="visible", timeout=600_000)
    wait_for_page(page)
    assert worker_pid(server.db) is not None  # it ran in the worker process, not in the page's script
    legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
    assert any(re.fullmatch(r"LTH [0-9a-f]{6}", t) for t in legend), legend
    assert page.get_by_text("Cost of each finished run").count() == 1
    assert page.locator(EXCEPTION).count() == 0
    screenshot(page, SCREENSHOTS / "soup-lth.png")


CLIPPED = """() => {
  const problems = [];
  const doc = document.documentElement;
  const main = document.querySelector('[data-testid="stMain"]') || doc;
  if (main.scrollWidth > main.clientWidth + 1) problems.push(`the page scrolls sideways (${main.scrollWidth} px > ${main.clientWidth} px)`);
  const text = (e) => (e.innerText || '').trim().slice(0, 60);
  const seen = new Set();
  for (const e of main.querySelectorAll('*')) {
    if (e.offsetParent === null || e.closest('[data-testid="stSelectbox"], [data-testid="stMultiSelect"], .js-plotly-plot, [data-testid="stDataFrame"]')) continue;
    // hidden, a chosen option in a select box or its chips (Streamlit shortens those by design; the list shows them
    // whole), charts and tables (checked apart)
    const heading = e.matches('h1, h2, h3, [data-testid="stMetricValue"] div');
    const cut = getComputedStyle(e).textOverflow === 'ellipsis' || heading;
    if (cut && e.scrollWidth > e.clientWidth + 1 && text(e) && !seen.has(text(e))) {
      seen.add(text(e));
      problems.push(`clipped text: "${text(e)}" (${e.scrollWidth} px in ${e.clientWidth} px)`);
    }
  }
  for (const svg of document.querySelectorAll('.js-plotly-plot .main-svg:first-of-type')) {
    const width = svg.getBoundingClientRect().width;
    for (const t of svg.parentNode.querySelectorAll('.gtitle')) {
      const box = t.getBBox();
      if (box.x < -1 || box.x + box.width > width + 1) problems.push(`clipped chart title: "${t.textContent.slice(0, 60)}" (${Math.round(box.x + box.width)} px in ${Math.round(width)} px)`);
    }
  }
  return problems;
}"""


@pytest.mark.parametrize("width,height", [(1024, 768), (390, 844)], ids=["1024px", "phone"])
def test_every_page_fits_a_1024_px_window_and_a_phone_without_clipped_titles_or_buttons(browser, server, width, height):
    """Titles, buttons, metrics and chart titles are not cut off, and no page scrolls sideways, at 1024 px and on a
    phone-sized screen (the sidebar collapses there)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    tab.set_default_timeout(300_000)
    problems = []
    try:
        for nav in nav_pages():
            tab.goto(f"{server.url}/{nav.path}")
            wait_for_page(tab)
            tab.wait_for_timeout(500)  # plotly lays its titles out after the script finishes
            screenshot(tab, SCREENSHOTS / f"{width}px-{nav.path or 'overview'}.png")
            problems += [f"{nav.title} at {width} px: {p}" for p in tab.evaluate(CLIPPED)]
    finally:
        context.close()
    assert not problems, "\n".join(problems)
