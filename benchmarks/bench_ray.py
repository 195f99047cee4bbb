"""The same sweep on the local executor and on Ray, side by side in one run.

A 20-point OMP + random sweep (sparsities 0.05, 0.15, ..., 0.95 for each method) of the
embedded default ViT, every point recomputed (``refresh``), each run on its own empty store:

(a) local executor: the points one after another in this process (torch uses all cores);
(b) Ray on a local 2-worker cluster (``ray.init(num_cpus=2)``, one CPU per unit), timed with
    the cluster already up, and Ray's fixed overhead: cluster start, plus what a 1-point sweep
    costs on Ray beyond the same point locally (object-store transfer of model and data,
    worker start and set-up);
(c) units/s against the number of Ray workers (1, 2): a fresh cluster of that many CPUs each.

Usage: python benchmarks/bench_ray.py [--limit 500] [--workers 1,2]
Prints one JSON object; the README quotes it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lotus_core.core.context import open_context  # noqa: E402
from lotus_core.pruning.sweep import SweepConfig, run_sweep  # noqa: E402
from lotus_core.results.executors import ExecutorConfig  # noqa: E402
from lotus_core.results.store import Store  # noqa: E402

SPARSITIES = tuple(round(0.05 + 0.1 * i, 2) for i in range(10))


def timed_sweep(ctx, config: SweepConfig, store_dir: str, executor: ExecutorConfig) -> tuple[float, list]:
    """Wall seconds of ``config`` recomputed on a fresh store with ``executor``, and its accuracies."""
    run_ctx = dataclasses.replace(ctx, store=Store(Path(store_dir) / f"{time.monotonic_ns()}.db"), executor=executor)
    run_ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=config.bf16)  # the same for both: not timed
    t0 = time.perf_counter()
    result = run_sweep(run_ctx, config, refresh=True)
    return time.perf_counter() - t0, result.frame["accuracy"].tolist()


def start_ray(cpus: int) -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=500, help="test images per point")
    parser.add_argument("--workers", default="1,2", help="Ray worker counts for units/s")
    args = parser.parse_args()
    import ray

    ctx = open_context()
    full = SweepConfig(methods=("omp", "random"), sparsities=SPARSITIES, limit=args.limit)
    one = dataclasses.replace(full, methods=("omp",), sparsities=(0.5,))
    ray_cfg, local_cfg = ExecutorConfig("ray"), ExecutorConfig()
    out: dict = {"points": 20, "limit": args.limit, "cores": os.cpu_count(), "torch_threads_local": torch.get_num_threads(),
                 "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        local_s, local_acc = timed_sweep(ctx, full, tmp, local_cfg)
        local_one, _ = timed_sweep(ctx, one, tmp, local_cfg)
        start = start_ray(2)
        ray_one, _ = timed_sweep(ctx, one, tmp, ray_cfg)  # first pool on a cold cluster: put + worker start
        ray_s, ray_acc = timed_sweep(ctx, full, tmp, ray_cfg)
        ray.shutdown()
        out.update({"local_s": round(local_s, 2), "ray_2_workers_s": round(ray_s, 2),
                    "speedup_local_over_ray": round(local_s / ray_s, 2),
                    "ray_cluster_start_s": round(start, 2),
                    "ray_first_unit_extra_s": round(ray_one - local_one, 2),
                    "ray_fixed_overhead_s": round(start + ray_one - local_one, 2),
                    "same_accuracies": local_acc == ray_acc})
        scaling = {}
        for n in (int(w) for w in args.workers.split(",")):
            start_ray(n)
            timed_sweep(ctx, one, tmp, ray_cfg)  # warm the workers up, as a long run would be
            seconds, acc = timed_sweep(ctx, full, tmp, ray_cfg)
            ray.shutdown()
            scaling[n] = {"s": round(seconds, 2), "units_per_s": round(20 / seconds, 3), "same_accuracies": acc == local_acc}
        out["units_per_s_local"] = round(20 / local_s, 3)
        out["ray_workers"] = scaling
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
