"""Page furniture: a header that says what the page shows, and errors as messages."""
from __future__ import annotations

import contextlib
import re
from typing import Iterator

import streamlit as st

from lotus_core.core.errors import LotusError
from lotus_core.core.text import visible


def header(title: str, what: str, paper: str | None = None) -> None:
    """Page title and one line on what it shows and which paper result it relates to."""
    st.title(title)
    st.caption(what + (f" Relates to: {paper}." if paper else ""))


_MARKDOWN_SYNTAX = re.compile(r"([\\`*_\[\]()!<>#|~$&{}])")  # what starts inline markdown, HTML, LaTeX or a directive
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))", re.MULTILINE)  # list items, setext underlines
# where GFM's autolinking (run on the text after escapes are resolved) would start a link: "://", "www." and "@"
_AUTOLINKED = re.compile(r"(?=://)|(?<=www)(?=\.)|(?=@)", re.IGNORECASE)


def literal(text: object) -> str:
    """``text`` escaped for Streamlit markdown (``st.error``, ``st.markdown``, captions, labels), shown as typed.

    Text a user controls (URL parameters, upload file names, run names and notes, class names, model and
    dataset paths) must never become a live link or an image the browser fetches (``![x](http://...)``),
    nor bold, a heading, a list, LaTeX or a ``:red[...]`` directive: CommonMark lets any ASCII punctuation be
    backslash-escaped, so every character that opens such a construct is (``-``, ``+``, ``=`` and a number's
    ``.`` only at a line's start; paths, options and numbers stay readable in the source). Streamlit's GFM
    autolinking runs on the text after escapes are resolved, so a bare URL, ``www.`` name or e-mail address
    gets an invisible word joiner (U+2060) before its ``://``, ``.`` or ``@``, which it does not match. Control characters other than newlines show as ``\\uNNNN``.
    """
    text = visible(str(text), keep="\n")
    text = _AUTOLINKED.sub("\u2060", text)
    text = _MARKDOWN_SYNTAX.sub(r"\\\1", text)
    return _LINE_START.sub(lambda m: m.group(1) + ("\\" + m.group(2) if not m.group(2).isdigit() else m.group(2) + "\\"),
                           text)


def error(text: object) -> None:
    """An error box whose text shows as typed (:func:`literal`)."""
    st.error(literal(text))


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Show a LotusError as an error message on the page (never a traceback) and stop the script; the
    message often quotes what the user typed, so it is shown literally."""
    try:
        yield
    except LotusError as exc:
        error(exc)
        st.stop()


def pct(x: float | None, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage string."""
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def units(progress: dict) -> str:
    """An executor's unit counts from a run's progress: '3 done, 2 running, 15 queued' (failed when any)."""
    text = f"{progress.get('done', 0)} done, {progress.get('running', 0)} running, {progress.get('queued', 0)} queued"
    return text + (f", {progress['failed']} failed" if progress.get("failed") else "")
