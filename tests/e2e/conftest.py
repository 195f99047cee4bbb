"""Session fixtures of the browser tests: one dashboard server on a fresh results store, one Chromium."""
from __future__ import annotations

import pytest

from tests.e2e.harness import ROOT, launch_browser, start_server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """``streamlit run`` on a free port with an empty results store; stopped (process group) at the end."""
    db = tmp_path_factory.mktemp("e2e") / "lotus.db"
    srv = start_server(db, ROOT / "artifacts" / "e2e-server.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def page(server, browser):
    """One browser session (tab) on the dashboard, shared by the tests in order, like one user."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(300_000)
    tab.goto(server.url)
    yield tab
    context.close()
