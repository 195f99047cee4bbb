"""A stored sweep as a table (:class:`SweepResult`), the curve so far while one computes, and the fast search
the dashboard shows first."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ...context import Context
from ...core.mask import Mask
from ...results.runs import run_experiment, run_id_for
from .config import SweepConfig, curves, grid
from .points import complete_point
from .search import sweep

if TYPE_CHECKING:
    import pandas as pd

FRAME_COLUMNS = ["method", "sparsity", "sparsity_reached", "accuracy", "ci_low", "ci_high", "n", "refined", "early",
                 "seen", "acc_low", "acc_high"]
"""A sweep table's columns: accuracy/ci are NaN where ``early`` (decided after ``seen`` of ``n`` images; the
full-subset accuracy lies in [acc_low, acc_high]); otherwise acc_low = acc_high = accuracy and seen = n."""


@dataclass
class SweepResult:
    rows: list[dict]  # FRAME_COLUMNS, one row per point, sorted by method and sparsity (accuracy None where early)
    dense: dict
    essential: dict[str, dict]
    run_id: str
    config: SweepConfig = field(repr=False, default=None)

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        """:attr:`rows` as a table, accuracy and its interval as floats (NaN where early); pandas is imported
        here, not by a command that prints the rows (docs/responsive.md)."""
        import pandas as pd

        frame = pd.DataFrame(self.rows, columns=FRAME_COLUMNS)
        frame[["accuracy", "ci_low", "ci_high"]] = frame[["accuracy", "ci_low", "ci_high"]].astype(float)
        return frame


def run_sweep(ctx: Context, config: SweepConfig, on_progress: Callable[[dict], None] | None = None,
              refresh: bool = False) -> SweepResult:
    """Run (or read back) a stored sweep and return its curve as a table."""
    fn = functools.partial(sweep, refresh=True) if refresh else sweep
    summary = run_experiment(ctx, "sweep", config, fn, on_progress=on_progress, refresh=refresh)
    return sweep_result(ctx, summary, config)


def _points(stored: dict) -> list[dict]:
    """A run's stored sweep points as table rows (an open scout decided nothing and is left out)."""
    return [p if "early" in p else complete_point(p) for p in stored.values() if "method" in p and not p.get("open")]


def sweep_result(ctx: Context, summary: dict, config: SweepConfig | None = None) -> SweepResult:
    """The stored sweep as a :class:`SweepResult`; its frame has a row per point, those decided
    early with a NaN accuracy (and ``early`` True), which charts leave out."""
    points = sorted(_points(ctx.store.points(summary["run_id"])), key=lambda p: (p["method"], p["sparsity"]))
    rows = [{c: p.get(c) for c in FRAME_COLUMNS} for p in points]
    return SweepResult(rows, summary["dense"], summary["essential"], summary["run_id"], config)


def curve_so_far(ctx: Context, config: SweepConfig, search: SweepResult) -> tuple[pd.DataFrame, int]:
    """While ``config``'s curve is computed in the background: the points it has (those its run stored so far,
    and those ``search``, the turning-point search, decided; a full evaluation wins over a bound) and how
    many grid points the curve has in all. A chart draws them as points with "n of N points"."""
    import pandas as pd

    run = ctx.store.get_run(run_id_for(ctx, "sweep", config))
    stored = [] if run is None else _points(ctx.store.points(run["id"]))
    frame = pd.concat([pd.DataFrame(stored, columns=FRAME_COLUMNS), search.frame], ignore_index=True)
    frame = frame.assign(_bound=frame["accuracy"].isna()).sort_values(["method", "sparsity", "_bound"])
    frame = frame.drop_duplicates(["method", "sparsity"]).drop(columns="_bound").reset_index(drop=True)
    return frame, sum(len(grid(c, config)) for c in curves(config))


def turning_point_search(config: SweepConfig) -> SweepConfig | None:
    """The fast way to ``config``'s turning point: the same sweep as a ``scout`` search over the
    same range, or None when ``config`` does not refine, already is a search, or fine-tunes every
    point (``finetune_steps`` or the essential protocol: that runs as one background job). The dashboard shows
    this search's answer at once and computes ``config``'s curve in the background: the answer does not wait
    for the curve."""
    if not config.refine or config.search != "grid" or config.finetune_steps or config.protocol == "essential":
        return None
    return dataclasses.replace(config, search="scout", refine=False, stop_at_drop=False)


def layer_sparsity_table(mask: Mask) -> pd.DataFrame:
    """Per-layer sparsity of a mask: layer, block index, kind (qkv/proj/fc1/fc2/head), numel, sparsity."""
    import pandas as pd

    rows = []
    for name, t in mask.items():
        parts = name.split(".")
        block = int(parts[1]) if parts[0] == "blocks" and parts[1].isdigit() else None
        kind = parts[-2] if len(parts) >= 2 else name
        rows.append({"layer": name, "block": block, "kind": kind, "numel": t.numel(),
                     "sparsity": float((~t).sum()) / t.numel()})
    return pd.DataFrame(rows)
