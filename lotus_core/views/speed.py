"""What the Speed page shows for the user's choices: which measurement to draw (:func:`shown_measurement`:
the chosen settings once measured, else the last one shown) and, at one batch size, its rows, the table
with the columns a reader compares first, what is unreliable or unavailable, and where it was measured
(:func:`speed_view`). Accuracies and drops are fractions in the rows; the table shows percent and points.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.text import count_text
from ..context import Context
from ..results.runs import stored_summary
from ..speed.run import SpeedConfig, SpeedResult, measured_with, speedup_text
from ..speed.history import history, latest


@dataclass(frozen=True)
class Shown:
    """The measurement a Speed page draws: ``config`` (the chosen settings when they are ``stored``, else the
    one shown before) and the ``chosen`` settings at their last measurement."""

    config: SpeedConfig
    chosen: SpeedConfig
    stored: bool


def shown_measurement(ctx: Context, chosen: SpeedConfig, before: SpeedConfig) -> Shown:
    """The chosen settings at their last measurement on this machine if one is stored (or another machine's,
    served labelled), else the measurement shown ``before`` (on first load: the page's first view)."""
    chosen = latest(ctx, chosen)
    stored = stored_summary(ctx, "speed", chosen) is not None
    return Shown(chosen if stored else before, chosen, stored)


COMPARE = ["method", "setting", "accuracy (%)", "speed-up"]
"""The table's columns shown at once: they fit a 390 px phone, accuracy among them (issue 28 §5)."""
DETAILS = ["latency_ms", "iqr_ms", "images_per_s", "95% interval", "unreliable", "FLOPs (M/image)", "params",
           "size (MB)", "peak memory (MB)", "drop (points)", "pareto", "tokens per block"]
"""Every other column of a row, in the table's expander."""


@dataclass
class SpeedView:
    """One batch size of a measurement: its measured ``rows`` (SpeedResult.at), the ``table`` (every column;
    :attr:`compare` first, :attr:`details` after), the ``title`` saying where it was measured, a ``warning``
    when rows are unreliable, and one line per method not measured here (``unavailable``)."""

    rows: pd.DataFrame
    table: pd.DataFrame
    compare: list[str]
    details: list[str]
    title: str
    warning: str | None
    unavailable: list[tuple[str, str]]


def speed_table(rows: pd.DataFrame, finetuned: bool) -> tuple[pd.DataFrame, list[str], list[str]]:
    """``rows`` (SpeedResult.at) as a table a person reads: percent and points, MB and M FLOPs, the speed-up
    interval in words; with the compared columns and the detail columns (the fine-tuned accuracy among the
    compared ones when the run fine-tuned)."""
    table = rows.assign(**{
        "FLOPs (M/image)": rows["flops"] / 1e6, "params": rows["params"].astype(int), "size (MB)": rows["bytes"] / 1e6,
        "peak memory (MB)": rows["peak_mem_bytes"] / 1e6, "speed-up": rows["speedup"],
        "95% interval": [speedup_text(r).partition(" ")[2] or "-" for r in rows.to_dict(orient="records")],
        "accuracy (%)": 100 * rows["accuracy"], "drop (points)": 100 * rows["drop"],
        "tokens per block": rows["tokens"].map(lambda t: "" if t is None else str(t))})
    compare = list(COMPARE)
    if finetuned:
        table["fine-tuned (%)"] = 100 * rows["accuracy_finetuned"]
        compare.insert(compare.index("accuracy (%)") + 1, "fine-tuned (%)")
    return table, compare, list(DETAILS)


def speed_view(ctx: Context, result: SpeedResult, config: SpeedConfig, batch: int) -> SpeedView:
    """The rows, table, title and notes of ``result`` at ``batch`` (see :class:`SpeedView`)."""
    rows = result.at(batch)
    doubtful = rows[~rows["reliable"]]
    warning = None
    if len(doubtful):
        reasons = "; ".join(dict.fromkeys(doubtful["unreliable"].dropna())) or "measured once, without an interval"
        warning = (f"{len(doubtful)} of {len(rows)} measurements at this batch size are unreliable ({reasons}): they "
                   "are drawn, but never on the frontier, never the best within eps, and never in the Report. "
                   "**Measure again** when the machine is quieter.")
    where = rows[rows["method"] == "dense"].iloc[0] if (rows["method"] == "dense").any() else rows.iloc[0]
    title = (f"batch {batch} · {where['device']} · {count_text(int(where['threads']), 'thread')} · torch "
             f"{measured_with(ctx.store.get_run(result.run_id) or {}, 'torch_version')}")
    frame = result.frame
    missing = frame[frame["unavailable"].notna() & (frame["batch_size"] == batch)]
    table, compare, details = speed_table(rows, bool(config.finetune_steps))
    return SpeedView(rows, table, compare, details, title, warning,
                     list(zip(missing["method"], missing["unavailable"])))


def measurements(ctx: Context, config: SpeedConfig, batch: int) -> pd.DataFrame:
    """Every stored measurement of ``config``'s settings on this machine at ``batch``, as the page lists them:
    take, when, the load averages before/after, method, setting, the speed-up with its interval, unreliable."""
    past = history(ctx, config)
    past = past[past["batch_size"] == batch]
    return past.assign(**{
        "speed-up": [speedup_text(r) for r in past.to_dict(orient="records")],
        "load": past["load"].map(lambda v: " / ".join(f"{x:g}" for x in v) if isinstance(v, list) else "")})[
        ["take", "measured", "load", "method", "setting", "speed-up", "unreliable"]]
