"""A stored run's progress in words, with how far it is, how long it has run and how long is left.

Every page's job list reads it (``app/jobs.py``). The fraction done comes from the counters a run
reports: executor units (``done``/``planned``), rounds (``round``/``of``, LTH's round 0 included)
with the steps of the current round (``step``/``steps``), or steps alone. The time left is measured,
not a constant: the seconds the run has computed (``elapsed_s``, stored by
:meth:`lotus_core.results.runs.Run.progress`) times the part left over the part done.
"""
from __future__ import annotations

COUNTERS = {"round": "of", "step": "steps", "done": "planned"}  # a count and its total
HIDDEN = {"elapsed_s", "running", "queued", "failed", "planned", "of", "steps"}


def fraction_done(progress: dict, kind: str = "") -> float | None:
    """How far the run is, in [0, 1] (None when its progress names no counter). LTH counts rounds 0..of
    (``of`` + 1 rounds, each ``steps`` long); ISSP rounds 1..of; a round's steps move the bar within it."""
    if progress.get("planned"):
        return min(1.0, progress.get("done", 0) / progress["planned"])
    within = progress["step"] / progress["steps"] if progress.get("steps") and "step" in progress else None
    if progress.get("of") and "round" in progress:
        rounds, first = (progress["of"] + 1, 0) if kind == "lth" else (progress["of"], 1)
        finished = progress["round"] - first + (within if within is not None else 1.0)
        if within is not None and within >= 1.0:  # the round's training is over; its evaluation is not
            finished -= 0.01
        return max(0.0, min(1.0, finished / rounds))
    return None if within is None else min(1.0, within)


def duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def describe(progress: dict | None, kind: str = "") -> str:
    """One line: 'round 3 of 8, step 60 of 100, loss 0.312; 1 min 20 s elapsed, about 3 min 05 s left'."""
    if not progress:
        return "waiting for the worker"
    parts = []
    for key, value in progress.items():
        if key in HIDDEN:
            continue
        total = progress.get(COUNTERS[key]) if key in COUNTERS else None
        if key == "done" and total is not None:
            units = f", {progress.get('running', 0)} running, {progress.get('queued', 0)} queued" \
                if "running" in progress else ""
            failed = f", {progress['failed']} failed" if progress.get("failed") else ""
            parts.append(f"{value} of {total} done{units}{failed}")
        elif total is not None:
            parts.append(f"{key} {value} of {total}")
        else:
            parts.append(f"{key} {value:.3g}" if isinstance(value, float) else f"{key} {value}")
    text = ", ".join(parts)
    elapsed, frac = progress.get("elapsed_s"), fraction_done(progress, kind)
    if elapsed is not None:
        text += f"; {duration(elapsed)} elapsed"
        if frac:
            text += f", about {duration(elapsed * (1 - frac) / frac)} left"
    return text


def last_duration(store, kind: str) -> float | None:
    """Seconds the newest finished run of ``kind`` in ``store`` took (None when there is none): what a page
    quotes before it queues another, instead of a constant."""
    runs = store.runs(kind=kind)
    done = runs[(runs["status"] == "done") & runs["duration_s"].notna()] if len(runs) else runs
    return None if done.empty else float(done.sort_values("created").iloc[-1]["duration_s"])
