"""When a timing is not to be trusted. A measurement is *unreliable* (its rows carry the reason) when the machine
was busy (the 1-minute load average above the cores before or after timing, or another LOTUS run being computed
in the same store by a live process: the dashboard's worker, a CLI run) or when a speed-up's 95% interval spans
more than :data:`MAX_SPREAD` of it. Unreliable rows are shown, but never feed a headline."""
from __future__ import annotations

from ..context import Context
from ..results.lease import lease_s
from . import measure


MAX_SPREAD = 0.2  # a speed-up whose 95% interval is wider than this fraction of it is unreliable



def busy_reason(ctx: Context, load: measure.Load, own_run: str | None = None) -> str | None:
    """Why the machine is too busy for a trusted timing now, or None: the load average above the cores, or
    another LOTUS run being computed in this store by a live process (the dashboard's worker, a CLI run)."""
    if load.busy:
        return f"the machine was busy (load average {load.load:g} on {load.cores} cores)"
    store = ctx.store
    runs = store.runs()
    for _, other in runs[runs["status"].isin(["running", "cancelling"]) & (runs["id"] != own_run)].iterrows():
        if store.live_owner(other["id"], lease_s()) is not None:
            return f"another LOTUS run was computing ({other['kind']} {other['id'][:6]})"
    return None


def timing_rows(times: dict[str, list[float]], batch_size: int, busy: str | None) -> dict[str, dict]:
    """Per configuration (the keys of ``times``, dense first): latency and images/s (medians over rounds), the
    speed-up over dense with its interval, and why it is unreliable (``busy``, or an interval wider than
    :data:`MAX_SPREAD` of the speed-up), or None."""
    import numpy as np

    dense = next(iter(times.values()))
    out = {}
    for key, t in times.items():
        ratio = measure.ratio_interval(dense, t)
        median = float(np.median(t))
        q1, q3 = np.percentile(t, [25, 75])
        wide = (f"the speed-up's 95% interval spans {100 * ratio.spread:.0f}% of it (more than "
                f"{100 * MAX_SPREAD:.0f}%)") if ratio.spread > MAX_SPREAD else None
        out[key] = {"latency_ms": 1e3 * median, "iqr_ms": 1e3 * float(q3 - q1), "images_per_s": batch_size / median,
                    "speedup": ratio.median, "speedup_low": ratio.low, "speedup_high": ratio.high,
                    "rounds": ratio.rounds, "unreliable": busy or wide}
    return out
