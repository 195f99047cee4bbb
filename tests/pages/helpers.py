"""AppTest helpers: open the dashboard on a given page, with an isolated results store."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
ENTRY = str(ROOT / "app" / "streamlit_app.py")


def open_page(page: str | None = None, timeout: float = 180) -> AppTest:
    """Run the app and switch to ``pages/<page>.py`` (None: the default Overview page)."""
    at = AppTest.from_file(ENTRY, default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(str(ROOT / "pages" / f"{page}.py"))
        at.run()
    return at
