"""Locating the OMP essential sparsity to within 0.01, end to end: the paper's way against LOTUS's.

Each way runs as its own process from a cold start (imports, model and data loading
included) on the same 2,000 fixed test images, in fp32 so that only the search differs:

(a) the paper's code: dense, then every sparsity 0.01, 0.02, ..., 0.90 (91 evaluations): deep-copy
    the model, torch.nn.utils.prune.global_unstructured (L1Unstructured) over the scoped weights,
    evaluate every image;
(b) ``python -m lotus_core sweep --search scout`` (the dashboard's search): bisection on the 0.01 grid over
    the whole range, cut where the two answers cost the same per halving, each point first decided from
    a budget of the dense model's hardest images (twice the wrong images a "below" needs), and only the
    bracket's low end from every image it needs, plus the coarse check past the point; a fresh results
    store, so nothing is served from an earlier run; and once more with only the dense accuracy (and its
    image order) already stored, as after any visit of the dashboard;
(c) ``python -m lotus_core sweep --search bisect`` (the previous round's search), the same two ways: the
    same bisection, each point evaluated until "within dense - eps?" is certain, hardest images first;
(d) ``python -m lotus_core sweep --refine`` (the first round's search): the 0.1 grid, then bisection of
    the bracket, every point fully evaluated.

Reported: wall time and CPU time of each process (CPU time is the fairer figure on a shared
machine), evaluations, images evaluated, the turning point and bracket (which must be identical),
and the ratios. Then the start-up time of CLI commands (median of 3 cold processes each), and the
peak resident memory of a scouted sweep against that of one evaluation, each in a fresh process
(Linux: /proc/self/status, peak reset after loading).

Usage: python benchmarks/bench_essential.py [--limit 2000] [--baseline DIR]
    --baseline DIR  also time the CLI start-up with the lotus_core found in DIR (e.g. an older checkout)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def paper_way(limit: int, eps: float) -> dict:
    """Subprocess entry: the paper's loop (deepcopy, torch global L1 pruning, full fp32 evaluation, every 0.01)."""
    import copy

    import torch.nn.utils.prune as tprune

    from lotus_core.context import open_context
    from lotus_core.pruning.essential import essential_sparsity
    from lotus_core.pruning.scope import scoped_parameters
    from lotus_core.training.evaluate import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context("default", db=Path(tmp) / "paper.db")
        dense = evaluate(ctx.model, ctx.test, ctx.data_config, limit=limit, bf16=False)
        curve = []
        for i in range(1, 91):
            model = copy.deepcopy(ctx.model)
            modules = dict(model.named_modules())
            targets = [(modules[n.rsplit(".", 1)[0]], "weight") for n in scoped_parameters(model)]
            tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=i / 100)
            curve.append((i / 100, evaluate(model, ctx.test, ctx.data_config, limit=limit, bf16=False).accuracy))
            del model
    ess = essential_sparsity(curve, dense.accuracy, eps)
    return {"point": ess.essential_sparsity, "bracket": list(ess.bracket), "evaluations": 1 + len(curve),
            "images": dense.n * (1 + len(curve)), "recovers": ess.recovers}


def cli_way(extra: list[str], limit: int, eps: float, dense_stored: bool = False) -> dict:
    """Run ``python -m lotus_core sweep ... --json`` as a process on a fresh store; its answer and counts.
    ``dense_stored``: the store already holds the dense accuracy (an untimed ``evaluate --fp32`` first, as after
    any dashboard visit), so the sweep serves it and its evaluations exclude it."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "lotus.db")
        if dense_stored:
            run([sys.executable, "-m", "lotus_core", "evaluate", "--limit", str(limit), "--fp32", "--db", db])
        out = run([sys.executable, "-m", "lotus_core", "sweep", "--methods", "omp", "--limit", str(limit), "--eps",
                   str(eps), "--fp32", "--json", "--db", db, *extra])
    res = json.loads(out["stdout"])
    ess = res["essential"]["omp"]
    dense = 0 if dense_stored else 1
    points = ess["evaluations"] + ess.get("scouts_open", 0)  # points asked: decided ones and scouts left open
    return {"point": ess["essential_sparsity"], "bracket": ess["bracket"], "recovers": ess["recovers"],
            "evaluations": dense + points, "images": dense * res["dense"]["n"] + ess["images"],
            "decided_early": ess.get("decided_early", 0), "scouts_open": ess.get("scouts_open", 0),
            "search_points": points, "wall": out["wall"], "cpu": out["cpu"]}


def run(cmd: list[str], env: dict | None = None, cwd: Path = ROOT) -> dict:
    """Run ``cmd`` in ``cwd`` to completion: stdout, wall time and the CPU time (user + system) it used (s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env or os.environ.copy())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 2):  # 2: a one-line user error, still a measured start-up
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"stdout": proc.stdout, "wall": wall, "cpu": cpu}


def rss_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(mode: str, limit: int) -> dict:
    """Subprocess entry: resident memory once loaded, and the peak during one evaluation or one sweep (MiB)."""
    from lotus_core.context import open_context
    from lotus_core.pruning.sweep import SweepConfig, run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context("default", db=Path(tmp) / "m.db")
        ctx.evaluate(limit=10)  # load the kernels, so only the working memory of the measured call counts
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        base = rss_mib("VmRSS")
        if mode == "eval":
            ctx.evaluate(limit=limit)
        else:
            run_sweep(ctx, SweepConfig(methods=("omp",), limit=limit, search="scout"))
        return {"base_mib": base, "peak_mib": rss_mib("VmHWM")}


STARTUP = {"--help": ["--help"], "runs": ["runs"], "info": ["info"], "evaluate --limit 10": ["evaluate", "--limit", "10"]}


def startup_times(code_root: Path, repeats: int = 3) -> dict[str, float]:
    """Median wall time (s) of each STARTUP command, a cold process each time, with ``code_root``'s lotus_core."""
    env = {**os.environ, "PYTHONPATH": str(code_root)}  # and the cwd, which `python -m` puts first on sys.path
    times = {}
    with tempfile.TemporaryDirectory() as tmp:
        env["LOTUS_DB"] = str(Path(tmp) / "startup.db")
        run([sys.executable, "-m", "lotus_core", "evaluate", "--limit", "10"], env, code_root)  # warm the file cache
        for name, argv in STARTUP.items():
            # --no-cache: evaluate --limit 10 really evaluates each time instead of reading the store
            extra = ["--no-cache"] if argv[0] == "evaluate" else []
            times[name] = statistics.median(run([sys.executable, "-m", "lotus_core", *argv, *extra], env,
                                                code_root)["wall"] for _ in range(repeats))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--baseline", type=Path, default=None, help="also time start-up with the lotus_core in DIR")
    parser.add_argument("--paper", action="store_true", help=argparse.SUPPRESS)  # subprocess entries
    parser.add_argument("--probe", choices=["eval", "sweep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.paper or args.probe:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(paper_way(args.limit, args.eps) if args.paper else memory_probe(args.probe, args.limit)))
        return
    out = run([sys.executable, __file__, "--paper", "--limit", str(args.limit), "--eps", str(args.eps)])
    paper = {**json.loads(out["stdout"]), "wall": out["wall"], "cpu": out["cpu"]}
    scout = cli_way(["--search", "scout"], args.limit, args.eps)
    served = cli_way(["--search", "scout"], args.limit, args.eps, dense_stored=True)
    bisect = cli_way(["--search", "bisect"], args.limit, args.eps)
    bisect_served = cli_way(["--search", "bisect"], args.limit, args.eps, dense_stored=True)
    refine = cli_way(["--sparsities", "0:0.9:0.1", "--refine"], args.limit, args.eps)
    print(f"OMP essential sparsity of the default model to 0.01, {args.limit} test images, eps {args.eps}, fp32, "
          f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the end); each way one cold process\n")
    print("| way | turning point [bracket] | evaluations | images evaluated | wall (s) | CPU (s) | "
          "speed-up wall / CPU |")
    print("|---|---|---|---|---|---|---|")
    for name, r in [("paper's code: 0.01 grid, deepcopy + torch prune, every image", paper),
                    ("`sweep --search scout` (bisection on scouts of the hardest images, the bracket decided)", scout),
                    ("the same, the dense accuracy already stored (as after any page visit)", served),
                    ("`sweep --search bisect` (every point decided, hard-first early decisions)", bisect),
                    ("the same, the dense accuracy already stored", bisect_served),
                    ("`sweep --refine` (0.1 grid, then bisection; every image)", refine)]:
        print(f"| {name} | {r['point']:.2f} [{r['bracket'][0]:.2f}, {r['bracket'][1]}] | {r['evaluations']} | "
              f"{r['images']:,} | {r['wall']:.1f} | {r['cpu']:.1f} | "
              f"{paper['wall'] / r['wall']:.1f}x / {paper['cpu'] / r['cpu']:.1f}x |")
    same = all(r["point"] == paper["point"] and r["bracket"] == paper["bracket"]
               for r in (scout, served, bisect, bisect_served, refine))
    print(f"\nidentical answer: {'yes' if same else 'NO'}; of the scouted search's {scout['search_points']} points, "
          f"{scout['scouts_open']} were left open after their scout and {scout['decided_early']} decided early; "
          f"the bisection decided {bisect['decided_early']} of {bisect['search_points']} early; recovers (accuracy "
          f"back within tolerance past the point): paper {paper['recovers']}, scout {scout['recovers']}")
    roots = {"this tree": ROOT, **({f"baseline {args.baseline}": args.baseline} if args.baseline else {})}
    starts = {name: startup_times(path) for name, path in roots.items()}
    print("\n| command (cold process, median of 3) | " + " | ".join(f"{n} (s)" for n in starts) + " |")
    print("|---|" + "---|" * len(starts))
    for cmd in STARTUP:
        print(f"| `{cmd}` | " + " | ".join(f"{t[cmd]:.2f}" for t in starts.values()) + " |")
    mem = {m: json.loads(run([sys.executable, __file__, "--probe", m, "--limit", str(args.limit)])["stdout"])
           for m in ("eval", "sweep")}
    ev, sw = mem["eval"], mem["sweep"]
    print(f"\nresident memory once loaded {ev['base_mib']:.0f} MiB; peak during one evaluation {ev['peak_mib']:.0f} MiB "
          f"(+{ev['peak_mib'] - ev['base_mib']:.0f}), during a whole scouted sweep {sw['peak_mib']:.0f} MiB "
          f"(+{sw['peak_mib'] - sw['base_mib']:.0f}); sweep/evaluation peak ratio {sw['peak_mib'] / ev['peak_mib']:.2f}x")


if __name__ == "__main__":
    main()
