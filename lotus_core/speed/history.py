"""Every speed measurement is kept: ``take`` numbers the measurements of the same settings on the same machine,
each its own stored run. :func:`latest` is the last finished one (what the Speed page and ``speed`` show),
:func:`measure_again` a new take, :func:`history` all of them with the load they were measured under."""
from __future__ import annotations

import dataclasses
import time

import pandas as pd

from ..context import Context
from ..results.keys import config_id, experiment_config
from ..results.store import RunStatus
from .run import SpeedConfig, rows_frame


def _measurements(ctx: Context, config: SpeedConfig) -> pd.DataFrame:
    """Stored speed runs of ``config``'s settings on this machine, any take (store.runs columns plus ``take``),
    first take first."""
    same = config_id({**experiment_config(ctx, "speed", config), "take": 0})
    runs = ctx.store.runs(kind="speed", model=ctx.model_id)
    runs = runs[runs["config"].map(lambda c: config_id({**c, "take": 0}) == same).astype(bool)].copy()
    runs["take"] = runs["config"].map(lambda c: int(c.get("take", 1)))
    return runs.sort_values("take")


def latest(ctx: Context, config: SpeedConfig) -> SpeedConfig:
    """``config`` at the last finished measurement of its settings on this machine (itself when none is)."""
    runs = _measurements(ctx, config)
    runs = runs[runs["status"] == RunStatus.DONE]
    return dataclasses.replace(config, take=int(runs["take"].max())) if len(runs) else config


def measure_again(ctx: Context, config: SpeedConfig) -> SpeedConfig:
    """``config`` as a new measurement: the take after the last one stored (finished or not), so that every
    earlier measurement is kept."""
    runs = _measurements(ctx, config)
    return dataclasses.replace(config, take=int(runs["take"].max()) + 1 if len(runs) else 1)


HISTORY_FIELDS = ["take", "run_id", "status", "measured", "load", "method", "setting", "batch_size", "speedup",
                  "speedup_low", "speedup_high", "unreliable"]


def history(ctx: Context, config: SpeedConfig) -> pd.DataFrame:
    """Every stored measurement of ``config``'s settings on this machine, one row per take and measured
    configuration (:data:`HISTORY_FIELDS`; ``load``: the load averages recorded while it was measured)."""
    out = []
    for _, run in _measurements(ctx, config).iterrows():
        summary = run["summary"] or {}
        prov = summary.get("provenance") or {}
        measured = prov.get("measured") or time.strftime("%Y-%m-%d %H:%M", time.localtime(run["created"]))
        frame = rows_frame(ctx.store.points(run["id"]))
        for row in frame[frame["unavailable"].isna()].to_dict(orient="records"):
            out.append({"take": run["take"], "run_id": run["id"], "status": run["status"], "measured": measured,
                        "load": prov.get("load"), **{k: row[k] for k in HISTORY_FIELDS[5:]}})
    return pd.DataFrame(out, columns=HISTORY_FIELDS)
