"""A link or an image typed into a URL parameter is shown as text: the browser renders no link to it and
sends no request for it (issue 25: ``?model=![x](http://...)`` made the browser fetch that URL)."""
from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from tests.e2e.harness import APP_IDLE, EXCEPTION

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

TRAP = "http://127.0.0.1:9"  # the discard port: nothing answers, but a request to it would still be sent
LINK = f"[Session expired - click to sign in again]({TRAP}/phish)"
IMAGE = f"![x]({TRAP}/p.png)"


@pytest.mark.parametrize("params, typed", [({"model": IMAGE}, IMAGE), ({"dataset": IMAGE}, IMAGE),
                                           ({"model": LINK}, LINK)])
def test_no_request_leaves_for_a_url_given_in_a_parameter(browser, server, params, typed):
    context = browser.new_context()
    tab = context.new_page()
    requested: list[str] = []
    tab.on("request", lambda request: requested.append(request.url))
    try:
        tab.goto(f"{server.url}/?{urlencode(params)}")
        alert = tab.locator('[data-testid="stAlertContentError"]').first
        alert.wait_for(timeout=120_000)
        tab.locator(APP_IDLE).wait_for(timeout=120_000)
        time.sleep(1.0)  # let any image the page would load start its request
        assert typed in alert.inner_text().replace("\u2060", "")  # as typed (but for invisible word joiners)
        assert tab.locator(f'a[href^="{TRAP}"]').count() == 0
        assert tab.locator(f'img[src^="{TRAP}"]').count() == 0
        assert tab.locator(EXCEPTION).count() == 0
        assert [url for url in requested if url.startswith(TRAP)] == []
        assert any(url.startswith(server.url) for url in requested)  # the listener saw the page's own requests
    finally:
        context.close()
