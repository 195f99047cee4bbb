"""The same sweep on the local executor and on Ray, side by side in one run.

A 20-point OMP + random sweep (sparsities 0.05, 0.15, ..., 0.95 for each method) of the
embedded default ViT, every point recomputed (``refresh``), each run on its own empty store:

(a) local executor: the points one after another in this process (torch uses all cores; and,
    to tell threading from scale-out, with one torch thread);
(b) Ray on a local 2-worker cluster (``ray.init(num_cpus=2)``, one CPU and one torch thread per unit,
    ``--cpus-per-task 1`` with ``LOTUS_THREADS=1``: the default reserves a unit's two threads), timed with
    the cluster already up, and Ray's fixed overhead: cluster start, plus what a 1-point sweep
    costs on Ray beyond the same point locally (object-store transfer of model and data,
    worker start and set-up);
(c) units/s against the number of Ray workers (1, 2): a fresh cluster of that many CPUs each.

Usage: python benchmarks/bench_ray.py [--limit 500] [--workers 1,2] [--repeats 2]
Prints one JSON object; docs/ray.md quotes it.
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

from lotus_core.context import open_context  # noqa: E402
from lotus_core.pruning.sweep import SweepConfig, run_sweep  # noqa: E402
from lotus_core.core.executor import ExecutorConfig  # noqa: E402
from lotus_core.results.store import Store  # noqa: E402

SPARSITIES = tuple(round(0.05 + 0.1 * i, 2) for i in range(10))


def timed_sweep(ctx, config: SweepConfig, store_dir: str, executor: ExecutorConfig) -> tuple[float, float, list]:
    """Wall and this process's CPU seconds of ``config`` recomputed on a fresh store with ``executor``,
    and its accuracies."""
    run_ctx = dataclasses.replace(ctx, store=Store(Path(store_dir) / f"{time.monotonic_ns()}.db"), executor=executor)
    run_ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=config.bf16)  # the same for both: not timed
    t0, c0 = time.perf_counter(), time.process_time()
    result = run_sweep(run_ctx, config, refresh=True)
    return time.perf_counter() - t0, time.process_time() - c0, result.frame["accuracy"].tolist()


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
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of the side-by-side runs (best kept)")
    args = parser.parse_args()
    import ray

    ctx = open_context()
    full = SweepConfig(methods=("omp", "random"), sparsities=SPARSITIES, limit=args.limit)
    one = dataclasses.replace(full, methods=("omp",), sparsities=(0.5,))
    ray_cfg, local_cfg = ExecutorConfig("ray", cpus_per_task=1.0), ExecutorConfig()  # units on 1 thread, 1 CPU each
    out: dict = {"points": 20, "limit": args.limit, "cores": os.cpu_count(), "torch_threads_local": torch.get_num_threads(),
                 "load_average_start": os.getloadavg()[0]}
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        local_one = timed_sweep(ctx, one, tmp, local_cfg)[0]
        start = start_ray(2)
        ray_one = timed_sweep(ctx, one, tmp, ray_cfg)[0]  # first pool on a cold cluster: put + worker start
        best: dict[str, float] = {}
        accuracies = {}
        for _ in range(args.repeats):  # interleaved, best of each: the machine is shared
            for name, executor, n_threads in (("local", local_cfg, threads), ("local_1_thread", local_cfg, 1),
                                              ("ray_2_workers", ray_cfg, 1)):
                torch.set_num_threads(n_threads)
                wall, cpu, accuracies[name] = timed_sweep(ctx, full, tmp, executor)
                if wall < best.get(f"{name}_s", float("inf")):
                    best[f"{name}_s"], best[f"{name}_driver_cpu_s"] = round(wall, 2), round(cpu, 2)
        torch.set_num_threads(threads)
        ray.shutdown()
        out.update({**best, "speedup_local_over_ray": round(best["local_s"] / best["ray_2_workers_s"], 2),
                    "speedup_local_1_thread_over_ray": round(best["local_1_thread_s"] / best["ray_2_workers_s"], 2),
                    "ray_cluster_start_s": round(start, 2),
                    "ray_first_unit_extra_s": round(ray_one - local_one, 2),
                    "ray_fixed_overhead_s": round(start + ray_one - local_one, 2),
                    "same_accuracies_as_local_1_thread": accuracies["ray_2_workers"] == accuracies["local_1_thread"],
                    "same_accuracies_2_threads_vs_1": accuracies["local"] == accuracies["local_1_thread"]})
        scaling = {}
        for n in (int(w) for w in args.workers.split(",")):
            start_ray(n)
            torch.set_num_threads(1)
            timed_sweep(ctx, one, tmp, ray_cfg)  # warm the workers up, as a long run would be
            seconds, _, acc = timed_sweep(ctx, full, tmp, ray_cfg)
            torch.set_num_threads(threads)
            ray.shutdown()
            scaling[n] = {"s": round(seconds, 2), "units_per_s": round(20 / seconds, 3),
                          "same_accuracies": acc == accuracies["local_1_thread"]}
        out["units_per_s_local"] = round(20 / best["local_s"], 3)
        out["ray_workers"] = scaling
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
