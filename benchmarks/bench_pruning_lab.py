"""The pruning lab's chart in numbers: accuracy at 50/70/90% sparsity per one-shot method on the
default model, each beside its layer-wise shuffled control (Frankle et al., ICLR 2021), and the
SparseGPT gap over magnitude pruning. No fine-tuning: the instant one-shot accuracy.

Every point is a stored sweep point (``python -m lotus_core sweep --methods ... --controls shuffle``
computes the same ones); the script prints a Markdown table for docs/figures-pruning-lab.md and the wall time.
Usage: python benchmarks/bench_pruning_lab.py [--limit 2000] [--db /tmp/lab.db]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lotus_core.context import open_context  # noqa: E402
from lotus_core.pruning.sweep import SweepConfig, curve_name, run_sweep  # noqa: E402

METHODS = ("omp", "omp-layerwise", "wanda", "sparsegpt", "snip", "snip-reinit", "grasp", "grasp-reinit",
           "synflow", "synflow-reinit")
LEVELS = (0.5, 0.7, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2000, help="test images (fixed seeded subset)")
    parser.add_argument("--db", default=None, help="results store (default: the project's)")
    args = parser.parse_args()
    ctx = open_context(db=args.db)
    config = SweepConfig(methods=METHODS, sparsities=LEVELS, limit=args.limit, controls=("shuffle",))
    t0 = time.perf_counter()
    result = run_sweep(ctx, config)
    wall = time.perf_counter() - t0
    acc = {(r.method, round(r.sparsity, 2)): r.accuracy for r in result.frame.itertuples()}
    print(f"dense accuracy {100 * result.dense['accuracy']:.1f}% on {args.limit} test images; "
          f"{len(result.frame)} points in {wall:.0f} s (0 s when served from the store)\n")
    print("| method | " + " | ".join(f"{100 * s:.0f}% (shuffled)" for s in LEVELS) + " |")
    print("|---|" + "---|" * len(LEVELS))
    for m in METHODS:
        cells = [f"{100 * acc[(m, s)]:.1f} ({100 * acc[(curve_name(m, 'shuffle'), s)]:.1f})" for s in LEVELS]
        print(f"| {m} | " + " | ".join(cells) + " |")
    for s in LEVELS:
        gap = acc[("sparsegpt", s)] - acc[("omp", s)]
        gap_l = acc[("sparsegpt", s)] - acc[("omp-layerwise", s)]
        print(f"\nSparseGPT - OMP at {100 * s:.0f}%: {100 * gap:+.1f} points (vs layer-wise magnitude {100 * gap_l:+.1f})",
              end="")
    print()


if __name__ == "__main__":
    main()
