"""Page furniture: a header that says what the page shows, and errors as messages."""
from __future__ import annotations

import contextlib
from typing import Iterator

import streamlit as st

from lotus_core.core.errors import LotusError


def header(title: str, what: str, paper: str | None = None) -> None:
    """Page title and one line on what it shows and which paper result it relates to."""
    st.title(title)
    st.caption(what + (f" Relates to: {paper}." if paper else ""))


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Show a LotusError as an error message on the page (never a traceback) and stop the script."""
    try:
        yield
    except LotusError as exc:
        st.error(str(exc))
        st.stop()


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage string."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def units(progress: dict) -> str:
    """An executor's unit counts from a run's progress: '3 done, 2 running, 15 queued' (failed when any)."""
    text = f"{progress.get('done', 0)} done, {progress.get('running', 0)} running, {progress.get('queued', 0)} queued"
    return text + (f", {progress['failed']} failed" if progress.get("failed") else "")
