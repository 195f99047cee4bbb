"""Measured once, reused everywhere: a new eps on a curve whose points are stored (issue 28, section 2).

On a fresh results store, the dashboard's default question is asked as the Sparsity curves page asks it:
the scouted turning-point search (the answer) and the curve (the 0.1 grid, then its bracket refined to 0.01),
at eps = 1 point. Then eps moves to 2 points, and back to 1.5 points: each new question is answered from
the stored points (full evaluations, and each point's furthest early decision, whatever threshold it was
asked with), computing only what it lacks. Then the sweeps themselves (whose keys hold eps) are deleted and
every question asked again: answered from the point-level results alone. Reported: wall and CPU time, the
stored results each question added, and the load average beside each timing (the machine is shared).

Target: at most 2 s for a new eps when the points it needs are stored.

Usage: python benchmarks/bench_eps_reuse.py [--limit 2000] [--eps 0.01 0.02 0.015]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path


def ask(ctx, config) -> dict:
    """The page's two questions at ``config``'s eps: the search's answer, then the curve; the wall and CPU
    time each took (CPU time is the fairer figure on a shared machine) and the stored results they added."""
    from lotus_core.pruning.sweep import run_sweep, turning_point_search

    before = {k: len(ctx.store.runs(kind=k)) for k in ("prune-eval", "prune-decide", "prune-prefix")}
    out = {}
    for name, cfg in (("search", turning_point_search(config)), ("curve", config)):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run_sweep(ctx, cfg)
        out[f"{name}_s"] = round(time.perf_counter() - t0, 3)
        out[f"{name}_cpu_s"] = round(time.process_time() - c0, 3)
        out[f"{name}_turning_point"] = result.essential["omp"]["essential_sparsity"]
    after = {k: len(ctx.store.runs(kind=k)) for k in before}
    out.update({f"new_{k}": after[k] - before[k] for k in before}, load=os.getloadavg()[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02, 0.015])
    args = parser.parse_args()
    from lotus_core.context import open_context
    from lotus_core.pruning.sweep import SweepConfig

    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("LOTUS_CPU_BUDGET_DIR", str(Path(tmp) / "budget"))  # other work on the host never waits
        ctx = open_context("default", db=Path(tmp) / "bench.db")
        base = SweepConfig(methods=("omp",), limit=args.limit, refine=True)
        for eps in args.eps:
            print(json.dumps({"eps": eps, **ask(ctx, dataclasses.replace(base, eps=eps))}), flush=True)
        # every point each question needs is stored now: drop the sweeps themselves (their keys hold eps) and ask
        # again, so that only the point-level results (never keyed by eps) can answer
        from lotus_core.pruning.sweep import turning_point_search
        from lotus_core.results.runs import run_id_for

        for eps in args.eps:
            config = dataclasses.replace(base, eps=eps)
            for cfg in (turning_point_search(config), config):
                ctx.store.delete_run(run_id_for(ctx, "sweep", cfg))
            print(json.dumps({"eps": eps, "sweeps_deleted": True, **ask(ctx, config)}), flush=True)


if __name__ == "__main__":
    main()
