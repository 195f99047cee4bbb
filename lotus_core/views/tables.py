"""Tables as a reader sees them: no "None" cells.

Streamlit draws a missing number as an empty cell but a missing text value as the word "None". A
table a stakeholder reads shows neither a column that is empty on every row nor "None": text cells
that do not apply read :data:`NOT_APPLICABLE`, numbers stay numbers (missing ones empty), so the
columns still sort numerically.
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

NOT_APPLICABLE = "—"  # a text cell that does not apply to its row


def percent_text(column: pd.Series, digits: int = 2) -> pd.Series:
    """Fractions as percent text ("88.12%") and missing ones :data:`NOT_APPLICABLE`: for columns where a missing
    number is common and means "this run has none" (Streamlit draws a missing number as "None", issue 28)."""
    return pd.Series([NOT_APPLICABLE if pd.isna(v) else f"{100 * float(v):.{digits}f}%" for v in column],
                     index=column.index, dtype=object)


def readable(table: pd.DataFrame, keep: Iterable[str] = ()) -> pd.DataFrame:
    """``table`` for display: columns missing on every row dropped (those in ``keep`` stay, empty); object
    columns whose values are all numbers (or missing) made numeric; other missing text cells
    :data:`NOT_APPLICABLE`."""
    keep, out = set(keep), {}
    for name, column in table.items():
        missing = column.isna()
        if missing.all():
            if name in keep:  # kept, with nothing in it: empty number cells
                out[name] = pd.Series(float("nan"), index=table.index)
            continue
        if not (pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column)):
            present = column[~missing]
            if len(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
                column = pd.to_numeric(column)
            else:
                column = column.astype(object).where(~missing, NOT_APPLICABLE)
        out[name] = column
    return pd.DataFrame(out, index=table.index)
