"""Locating the OMP essential sparsity to within 0.01: the paper's way against this project's sweep.

(a) As the paper's code does it: for every sparsity on the 0.01 grid from 0.01 to 0.99,
    deep-copy the model, torch.nn.utils.prune.global_unstructured (L1Unstructured) over the
    scoped weights, evaluate in fp32.
(b) lotus_core.pruning.sweep in fp32: a 0.1 grid up to the first drop below dense - eps, then bisection
    of the bracket on the 0.01 grid, one working copy of the model, the scores sorted once for
    the whole sweep; nothing read from the store. Same precision as (a), so only the search
    differs and the turning points must agree.
(c) the same sweep with bf16 autocast, as the dashboard runs it.
All on the same test images. Also the peak resident memory of a sweep against that of a single
evaluation, each measured in a fresh subprocess (Linux: /proc/self/status, peak reset after loading).
Usage: python benchmarks/bench_essential.py [--limit 2000]
"""
from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.utils.prune as tprune  # noqa: E402

from lotus_core.core.context import open_context  # noqa: E402
from lotus_core.training.evaluate import evaluate  # noqa: E402
from lotus_core.pruning.scope import scoped_parameters  # noqa: E402
from lotus_core.pruning.sweep import SweepConfig, essential_sparsity, run_sweep  # noqa: E402


def timed(fn, *args, **kwargs) -> dict:
    """``fn``'s result dict plus its wall time and this process's CPU time (s); the CPU time is
    the fairer figure on a machine shared with other jobs."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return {**out, "time": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def paper_way(ctx, limit: int, eps: float) -> dict:
    """The paper's loop: deepcopy, torch global L1 pruning, fp32 evaluation, every 0.01."""
    dense = evaluate(ctx.model, ctx.test, ctx.data_config, limit=limit, bf16=False).accuracy
    curve = []
    for i in range(1, 100):
        s = i / 100
        model = copy.deepcopy(ctx.model)
        modules = dict(model.named_modules())
        targets = [(modules[n.rsplit(".", 1)[0]], "weight") for n in scoped_parameters(model)]
        tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=s)
        curve.append((s, evaluate(model, ctx.test, ctx.data_config, limit=limit, bf16=False).accuracy))
        del model
    ess = essential_sparsity(curve, dense, eps)
    return {"point": ess.essential_sparsity, "evaluations": len(curve), "dense": dense, "curve": dict(curve)}


def lotus_way(ctx, limit: int, eps: float, bf16: bool) -> dict:
    """This project's sweep: 0.1 grid to the first drop + bisection, one working copy, nothing read from the store."""
    res = run_sweep(ctx, SweepConfig(methods=("omp",), limit=limit, refine=True, eps=eps, bf16=bf16,
                                     stop_at_drop=True), refresh=True)
    ess = res.essential["omp"]
    return {"point": ess["essential_sparsity"], "evaluations": ess["evaluations"],
            "dense": res.dense["accuracy"], "curve": dict(zip(res.frame["sparsity"], res.frame["accuracy"]))}


def rss_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(mode: str, limit: int) -> None:
    """Subprocess entry: resident memory once loaded, and the peak during one evaluation or one sweep (MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context("default", db=Path(tmp) / "m.db")
        ctx.evaluate(limit=10)  # load the kernels, so only the working memory of the measured call counts
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        base = rss_mib("VmRSS")
        if mode == "eval":
            ctx.evaluate(limit=limit)
        else:
            run_sweep(ctx, SweepConfig(methods=("omp",), limit=limit, refine=True, stop_at_drop=True), refresh=True)
        print(json.dumps({"base_mib": base, "peak_mib": rss_mib("VmHWM")}))


def past_turning_points(paper: dict, sweeps: dict[str, dict], limit: int, eps: float) -> str:
    """Correct images just past each turning point, against each precision's floor (dense - eps)."""
    lines = []
    for s in sorted({round(r["point"] + 0.01, 2) for r in [paper, *sweeps.values()]}):
        parts = [f"fp32 grid {round(paper['curve'][s] * limit)}/{(paper['dense'] - eps) * limit:.0f}"]
        parts += [f"{name} {round(r['curve'][s] * limit)}/{(r['dense'] - eps) * limit:.0f}"
                  for name, r in sweeps.items() if s in r["curve"]]
        lines.append(f"at {s:.2f}: " + ", ".join(parts))
    return "; ".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--probe", choices=["eval", "sweep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        memory_probe(args.probe, args.limit)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context("default", db=Path(tmp) / "bench.db")
        ctx.evaluate(limit=args.limit, bf16=False)  # warm-up, outside every timing
        paper = timed(paper_way, ctx, args.limit, args.eps)
        fp32 = timed(lotus_way, ctx, args.limit, args.eps, bf16=False)
        bf16 = timed(lotus_way, ctx, args.limit, args.eps, bf16=True)
    mem = {m: json.loads(subprocess.run([sys.executable, __file__, "--probe", m, "--limit", str(args.limit)],
                                        capture_output=True, text=True, check=True).stdout) for m in ("eval", "sweep")}
    print(f"OMP essential sparsity of the default model on {args.limit} test images, eps {args.eps}, "
          f"{torch.get_num_threads()} threads\n")
    print("| way | turning point | evaluations | wall time (s) | CPU time (s) | speed-up (wall / CPU) |")
    print("|---|---|---|---|---|---|")
    for name, r in [("paper's code (0.01 grid, deepcopy + torch prune, fp32)", paper),
                    ("lotus sweep --refine --stop-at-drop, fp32 (0.1 grid to the first drop + bisection)", fp32),
                    ("the same sweep with bf16 autocast (as the dashboard)", bf16)]:
        print(f"| {name} | {r['point']:.2f} | {r['evaluations']} | {r['time']:.1f} | {r['cpu']:.1f} | "
              f"{paper['time'] / r['time']:.1f}x / {paper['cpu'] / r['cpu']:.1f}x |")
    for name, r in [("fp32", fp32), ("bf16", bf16)]:
        gap = abs(r["point"] - paper["point"])
        same = "equal to" if gap < 1e-9 else "within 0.01 of" if gap <= 0.01 + 1e-9 else "NOT within 0.01 of"
        print(f"\n{name} sweep: turning point {same} the paper's ({r['point']:.2f} vs {paper['point']:.2f}), "
              f"{paper['time'] / r['time']:.1f}x faster in wall time, {paper['cpu'] / r['cpu']:.1f}x in CPU time")
    if any(abs(r["point"] - paper["point"]) > 1e-9 for r in (fp32, bf16)):
        print("correct images / floor just past each turning point: "
              + past_turning_points(paper, {"fp32 sweep": fp32, "bf16 sweep": bf16}, args.limit, args.eps))
    ev, sw = mem["eval"], mem["sweep"]
    print(f"\nresident memory once loaded {ev['base_mib']:.0f} MiB; peak during one evaluation {ev['peak_mib']:.0f} MiB "
          f"(+{ev['peak_mib'] - ev['base_mib']:.0f}), during a whole sweep {sw['peak_mib']:.0f} MiB "
          f"(+{sw['peak_mib'] - sw['base_mib']:.0f}); sweep/evaluation peak ratio {sw['peak_mib'] / ev['peak_mib']:.2f}x")


if __name__ == "__main__":
    main()
