"""Evaluation speed of the default model: bf16 autocast against fp32, side by side in one run.

Target (issue 3): evaluating 2,000 test images takes about a second on 2 CPU cores.
Usage: python benchmarks/bench_evaluate.py [--limit 2000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from lotus_core.context import open_context  # noqa: E402
from lotus_core.core.device import bf16_available, default_device  # noqa: E402
from lotus_core.training.evaluate import evaluate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ctx = open_context("default", db="/tmp/lotus-bench-eval.db")
    rows = []
    results = {}
    for bf16 in (False, True):
        evaluate(ctx.model, ctx.test, ctx.data_config, limit=args.limit, bf16=bf16)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = evaluate(ctx.model, ctx.test, ctx.data_config, limit=args.limit, bf16=bf16)
            times.append(time.perf_counter() - t0)
        results[bf16] = res
        rows.append((("bf16 autocast" if bf16 else "fp32"), statistics.median(times), res.accuracy))
    agree = float((results[True].predictions == results[False].predictions).float().mean())
    print(f"device: {default_device()}, bf16 fast here: {bf16_available(default_device())}, "
          f"threads: {torch.get_num_threads()}, images: {args.limit}, median of {args.repeats}")
    print("| precision | time for 2,000 images (s) | images/s | accuracy |")
    print("|---|---|---|---|")
    for name, t, acc in rows:
        print(f"| {name} | {t:.3f} | {args.limit / t:,.0f} | {100 * acc:.2f}% |")
    print(f"\nbf16 speed-up: {rows[0][1] / rows[1][1]:.2f}x; prediction agreement bf16 vs fp32: {100 * agree:.2f}%")


if __name__ == "__main__":
    main()
