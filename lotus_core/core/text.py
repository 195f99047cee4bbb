"""Text a user gives LOTUS (run names and notes): control characters are refused where it is stored and
escaped where any text is shown.

A terminal obeys control characters: ``\\e[2J`` in a run name cleared the screen of whoever ran ``runs``,
an OSC sequence retitled their window, and ``\\r``, vertical tabs, form feeds and Unicode's line and
paragraph separators (U+2028, U+2029) make one line print as several (issue 25). Control characters here
are C0 (U+0000-U+001F), DEL (U+007F), C1 (U+0080-U+009F) and those two separators.
"""
from __future__ import annotations

import re

from .errors import LotusError

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _named(char: str) -> str:
    return f"U+{ord(char):04X}"


def refuse_control_characters(text: str, what: str, allow: str = "") -> None:
    """Raise one-line :class:`LotusError` when ``text`` holds a control character not in ``allow``."""
    found = sorted({c for c in CONTROL.findall(text) if c not in allow})
    if found:
        raise LotusError(f"{what} contains control characters ({', '.join(map(_named, found))}); "
                         "use printable text only")


def visible(text: str, keep: str = "") -> str:
    """``text`` with every control character not in ``keep`` written as ``\\uNNNN``, safe to print to a
    terminal or a page (text stored before names were checked, error messages quoting what was typed)."""
    return CONTROL.sub(lambda m: m.group() if m.group() in keep else f"\\u{ord(m.group()):04x}", text)


__all__ = ["CONTROL", "refuse_control_characters", "visible"]


def count_text(count: float, noun: str) -> str:
    """``count`` and ``noun``, plural unless the count is exactly 1: "1 point", "2 points", "0.5 points",
    "2 threads" (never "point(s)")."""
    return f"{count:g} {noun}{'' if count == 1 else 's'}"
