"""The report's speed section: does it run faster? The fastest reliably measured configuration within eps of the
dense accuracy (the Speed page's stored run; :mod:`lotus_core.speed.run`), never an unreliable measurement."""
from __future__ import annotations

import pandas as pd

from ...context import Context
from ...core.tolerance import Tolerance
from ...core.text import count_text
from ..figures import speed_frontier
from .model import ReportOptions, Section, pct, points
from .stored import NotStored, Stored, read


def speed_section(ctx: Context, options: ReportOptions, stored: Stored) -> Section:
    from ...speed.run import EPS, measured_with, speed_result

    run = stored.speed
    if run is None:
        raise NotStored("no speed measurement is stored for this model yet")
    result = read(run, lambda r: speed_result(ctx, r["summary"]))
    eps, batch = EPS, max(result.batch_sizes)  # the device's best batch too, when the run searched for it
    rows = result.at(batch)
    dense = rows[rows["method"] == "dense"].iloc[0]
    # only reliable measurements are quoted (speed/run.py: interleaved rounds, an interval, a machine not busy)
    fast = rows[Tolerance(result.dense["accuracy"], eps).within(rows["accuracy"]) & (rows["method"] != "dense")
                & rows["reliable"]]
    where = f"On {dense['device']} with {count_text(int(dense['threads']), 'thread')}, at batch {batch}"
    sentence, value = _verdict(rows, fast, dense, result.dense["accuracy"], eps, where)
    masked = rows[(rows["method"] == "masked") & rows["reliable"]]
    if len(masked):
        sentence += (f" Zeros alone do not help: the masked dense model runs at {masked['speedup'].min():.2f}x to "
                     f"{masked['speedup'].max():.2f}x.")
    fig = speed_frontier(rows, result.dense["accuracy"], eps, title=f"Accuracy against measured latency, batch {batch} "
                         f"({dense['device']}, {count_text(int(dense['threads']), 'thread')}, torch "
                         f"{measured_with(run, 'torch_version')})")
    return Section.of("speed", sentence, fig, value)


def _verdict(rows: pd.DataFrame, fast: pd.DataFrame, dense: pd.Series, dense_accuracy: float, eps: float,
             where: str) -> tuple[str, float | None]:
    """The sentence and headline speed-up: the fastest reliable configuration within ``eps`` (a fraction, stated
    in points), 1.0 when none is faster at that accuracy, None when unreliable measurements leave nothing to quote."""
    from ...speed.run import speedup_text

    doubt = rows[~rows["reliable"]]
    if fast.empty and len(doubt):
        reason = next(iter(doubt["unreliable"].dropna()), "measured once, without an interval")
        return (f"{where}, {len(doubt)} of {len(rows)} measurements are unreliable ({reason}) and no reliable one "
                f"within {points(eps)} of the dense accuracy runs faster: nothing is quoted; measure again on the Speed "
                "page when the machine is quieter.", None)
    if fast.empty:
        return (f"{where}, no measured configuration stays within {points(eps)} of the dense {pct(dense_accuracy)}: "
                "none runs faster at that accuracy.", 1.0)
    best = fast.loc[fast["speedup"].idxmax()]
    return (f"{where}, the fastest configuration within {points(eps)} of the dense accuracy is {best['method']} "
            f"{best['setting']}: {best['speedup']:.2f}x the dense speed (95% interval "
            f"{speedup_text(best).partition('(')[2].rstrip(')')}, median of "
            f"{count_text(int(best['rounds']), 'interleaved round')}; "
            f"{best['latency_ms']:.3g} ms against {dense['latency_ms']:.3g} ms per batch) at "
            f"{pct(best['accuracy'])} against {pct(dense_accuracy)}.", float(best["speedup"]))
