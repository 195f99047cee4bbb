"""Locating the OMP essential sparsity to within 0.01: the paper's way against this project's sweep.

(a) As the paper's code does it: for every sparsity on the 0.01 grid from 0.01 to 0.99,
    deep-copy the model, torch.nn.utils.prune.global_unstructured (L1Unstructured) over the
    scoped weights, evaluate in fp32.
(b) lotus_core.sweep in fp32: a 0.1 grid, then bisection of the bracket down to 0.01, one
    working copy, scores sorted once per mask; nothing read from the store. Same precision
    as (a), so only the search differs and the turning points must agree.
(c) the same sweep with bf16 autocast, as the dashboard runs it.
All on the same test images. Also the peak memory (RSS growth) of a sweep against a single
evaluation, each measured in a fresh subprocess.
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

from lotus_core.context import open_context  # noqa: E402
from lotus_core.evaluate import evaluate  # noqa: E402
from lotus_core.pruning.scope import scoped_parameters  # noqa: E402
from lotus_core.sweep import SweepConfig, essential_sparsity, run_sweep  # noqa: E402


def paper_way(ctx, limit: int, eps: float) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    dense = evaluate(ctx.model, ctx.test, ctx.data_config, limit=limit, bf16=False).accuracy
    curve = []
    for i in range(1, 100):
        s = i / 100
        model = copy.deepcopy(ctx.model)
        modules = dict(model.named_modules())
        targets = [(modules[n.rsplit(".", 1)[0]], "weight") for n in scoped_parameters(model)]
        tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=s)
        curve.append((s, evaluate(model, ctx.test, ctx.data_config, limit=limit, bf16=False).accuracy))
    elapsed = time.perf_counter() - t0
    return essential_sparsity(curve, dense, eps).essential_sparsity, len(curve), elapsed


def lotus_way(ctx, limit: int, eps: float, bf16: bool) -> tuple[float, int, float]:
    t0 = time.perf_counter()
    res = run_sweep(ctx, SweepConfig(methods=("omp",), limit=limit, refine=True, eps=eps, bf16=bf16), refresh=True)
    ess = res.essential["omp"]
    return ess["essential_sparsity"], ess["evaluations"], time.perf_counter() - t0


def memory_probe(mode: str, limit: int) -> None:
    """Subprocess entry: print the RSS growth (MiB) of one evaluation or one sweep."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = open_context("default", db=Path(tmp) / "m.db")
        ctx.evaluate(limit=limit)  # warm-up: allocator, kernels
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if mode == "eval":
            ctx.evaluate(limit=limit)
        else:
            run_sweep(ctx, SweepConfig(methods=("omp",), limit=limit, refine=True), refresh=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"base_mib": base / 1024, "peak_mib": peak / 1024}))


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
        torch.manual_seed(0)
        p_s, p_n, p_t = paper_way(ctx, args.limit, args.eps)
        f_s, f_n, f_t = lotus_way(ctx, args.limit, args.eps, bf16=False)
        l_s, l_n, l_t = lotus_way(ctx, args.limit, args.eps, bf16=True)
    mem = {m: json.loads(subprocess.run([sys.executable, __file__, "--probe", m, "--limit", str(args.limit)],
                                        capture_output=True, text=True, check=True).stdout) for m in ("eval", "sweep")}
    print(f"OMP essential sparsity on {args.limit} test images, eps {args.eps}, {torch.get_num_threads()} threads\n")
    print("| way | turning point | evaluations | wall time (s) |")
    print("|---|---|---|---|")
    print(f"| paper's code (0.01 grid, deepcopy + torch prune, fp32) | {p_s:.4f} | {p_n} | {p_t:.1f} |")
    print(f"| lotus sweep, fp32 (0.1 grid + bisection) | {f_s:.4f} | {f_n} | {f_t:.1f} |")
    print(f"| lotus sweep, bf16 autocast (as the dashboard) | {l_s:.4f} | {l_n} | {l_t:.1f} |")
    print(f"\nsame turning point within 0.01 (fp32 vs fp32): {abs(p_s - f_s) <= 0.01 + 1e-9}; "
          f"speed-up {p_t / f_t:.1f}x (fp32), {p_t / l_t:.1f}x (bf16)")
    ev, sw = mem["eval"], mem["sweep"]
    print(f"peak RSS: single evaluation {ev['peak_mib']:.0f} MiB, sweep {sw['peak_mib']:.0f} MiB "
          f"(ratio {sw['peak_mib'] / ev['peak_mib']:.2f}x)")


if __name__ == "__main__":
    main()
