"""AppTest helpers: open the dashboard on a given page, with an isolated results store."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

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


def array(value) -> np.ndarray:
    """A plotly array: a list, or numpy's typed-array encoding {dtype, bdata (base64), shape}."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(s) for s in str(value["shape"]).split(",")]) if "shape" in value else flat
    return np.asarray(value)


def values(value) -> list:
    """A plotly trace's x or y as a list."""
    return array(value).tolist()
