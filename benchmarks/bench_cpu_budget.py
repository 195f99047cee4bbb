"""One CPU budget (issue 28, section 1): the dashboard's search while a background sweep runs.

Three processes' worth of work on one host: the dashboard's scouted turning-point search (the default
model, 2,000 test images, a fresh results store each time, the dense accuracy computed too) is timed

(a) idle,
(b) while a background sweep (another process, marked ``LOTUS_PRIORITY=background`` as the worker's jobs
    are) recomputes a 0.01 grid of OMP points without pause, with the CPU budget (core/device.py), and
(c) the same without the budget (``LOTUS_CPU_BUDGET=off``): both compute at once on more threads than cores.

The background sweep reports each point as it arrives; its throughput (points/s) is measured alone, and over
the window of each search. With the budget it gives the cores to the search while the search runs, so over a
window of W seconds in which the search held them for T it should complete about ``rate_alone x (W - T)``
points: its throughput falls by the share it gave up (T / W), no more. Targets: (b) at most 1.5x (a).

Both processes use a private budget folder (``$LOTUS_CPU_BUDGET_DIR``) so that other work on a shared
machine does not enter the figures; the load average is printed beside every timing.

Usage: python benchmarks/bench_cpu_budget.py [--limit 2000] [--alone-s 30] [--repeats 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def background(db: str, limit: int) -> None:
    """Subprocess entry: recompute a 0.01 OMP grid over and over, one JSON line per point as it arrives."""
    from lotus_core.context import open_context
    from lotus_core.pruning.sweep import SweepConfig, run_sweep

    ctx = open_context("default", db=db)
    config = SweepConfig(methods=("omp",), limit=limit, sparsities=tuple(round(i / 100, 2) for i in range(1, 100)))
    print(json.dumps({"ready": time.time()}), flush=True)
    while True:
        run_sweep(ctx, config, refresh=True,
                  on_progress=lambda p: print(json.dumps({"t": time.time(), "s": p["sparsity"]}), flush=True))


def searches(ctx, limit: int, tmp: Path, repeats: int) -> list[float]:
    """The wall times of ``repeats`` searches, each on a fresh store (a shared machine is noisy: the median is
    reported)."""
    return [search_once(ctx, limit, tmp) for _ in range(repeats)]


def search_once(ctx, limit: int, tmp: Path) -> float:
    """The dashboard's scouted search on a fresh store (dense accuracy included); its wall time in seconds."""
    from lotus_core.pruning.sweep import SweepConfig, run_sweep, turning_point_search
    from lotus_core.results.store import Store

    fresh = dataclasses.replace(ctx, store=Store(tmp / f"search-{time.time_ns()}.db"))
    t0 = time.perf_counter()
    result = run_sweep(fresh, turning_point_search(SweepConfig(methods=("omp",), limit=limit, refine=True)))
    elapsed = time.perf_counter() - t0
    assert result.essential["omp"]["bracket"][1] is not None
    return elapsed


class Background:
    """The background sweep process and the arrival times of its points."""

    def __init__(self, tmp: Path, limit: int, budget: bool):
        env = {**os.environ, "LOTUS_PRIORITY": "background", "LOTUS_CPU_BUDGET": "" if budget else "off"}
        self.proc = subprocess.Popen([sys.executable, __file__, "--background", str(tmp / "bg.db"), "--limit",
                                      str(limit)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.times: list[float] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            row = json.loads(line)
            if "ready" in row:
                self.ready.set()
            else:
                self.times.append(row["t"])

    def points_between(self, t0: float, t1: float) -> int:
        return sum(t0 <= t < t1 for t in self.times)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--alone-s", type=float, default=30.0, help="how long the background throughput is measured alone")
    parser.add_argument("--repeats", type=int, default=3, help="searches per case (the median is reported)")
    parser.add_argument("--background", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.background:
        background(args.background, args.limit)
        return
    from lotus_core.context import open_context
    from lotus_core.core.device import budget_slots, compute_threads, host_cores

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["LOTUS_CPU_BUDGET_DIR"] = str(tmp / "budget")  # private to this benchmark, inherited by the sweep
        ctx = open_context("default", db=tmp / "warm.db")
        print(json.dumps({"cores": host_cores(), "threads": compute_threads(), "slots": budget_slots()}), flush=True)
        search_once(ctx, args.limit, tmp)  # warm-up (imports, first forward)
        idle = statistics.median(searches(ctx, args.limit, tmp, args.repeats))
        print(json.dumps({"case": "idle", "search_s": round(idle, 2), "load": os.getloadavg()[0]}), flush=True)
        for budget in (True, False):
            os.environ["LOTUS_CPU_BUDGET"] = "" if budget else "off"
            bg = Background(tmp, args.limit, budget)
            try:
                bg.ready.wait(300)
                time.sleep(5)  # its first points (rankings, working copy) are under way
                t0 = time.time()
                time.sleep(args.alone_s)
                alone = bg.points_between(t0, time.time()) / args.alone_s
                w0 = time.time()
                times = searches(ctx, args.limit, tmp, args.repeats)
                took = statistics.median(times)
                time.sleep(5)  # the window goes on a little past the search
                w1 = time.time()
                window = w1 - w0
                done = bg.points_between(w0, w1)
                expected = alone * (window - sum(times))  # what it would do in the time the searches left it
                print(json.dumps({"case": "with background sweep, " + ("budget" if budget else "no budget (oversubscribed)"),
                                  "search_s": round(took, 2), "vs_idle": round(took / idle, 2),
                                  "bg_points_per_s_alone": round(alone, 3),
                                  "bg_points_in_window": done, "window_s": round(window, 1),
                                  "bg_expected_at_share_given_up": round(expected, 1),
                                  "bg_throughput_vs_share": round(done / expected, 2) if expected > 0 else None,
                                  "load": os.getloadavg()[0]}), flush=True)
            finally:
                bg.stop()
        os.environ.pop("LOTUS_CPU_BUDGET", None)


if __name__ == "__main__":
    main()
