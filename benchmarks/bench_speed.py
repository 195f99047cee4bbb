"""Does sparsity buy speed? The accuracy-latency frontier of every Speed method, side by side in one run.

Runs the stored speed experiment (:mod:`lotus_core.speed.run`, the same one as the Speed page and
``python -m lotus_core speed``) into a fresh results store on

- the default model (28x28 Fashion-MNIST, 49 patches + CLS, width 96, 6 blocks, 3 heads), and
- vit_small_patch16_224 with random weights (224x224, 196 patches + CLS, width 384, 12 blocks, 6 heads):
  timing only; its rows take the default model's accuracy at the same method and setting.

For each model, batch size and family it prints the best speed-up over dense within 1 point of dense
accuracy (fp32, 1,000 fixed test images), then every row. Latency: torch.utils.benchmark
blocked_autorange (median and IQR over blocks, after warm-up), threads stated.

Usage: python benchmarks/bench_speed.py [--threads 1] [--clock wall|cpu] [--min-run-time 0.5] [--batch-sizes 1,32,256]
       [--small-batch-sizes 8] [--limit 1000] [--finetune-steps 0] [--no-best-batch] [--db FILE]
Each model is also measured at the device's best batch size (the dense model's most images/s, found by
doubling from 1) unless --no-best-batch.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

from lotus_core.context import Context, open_context  # noqa: E402
from lotus_core.models.arch import data_config  # noqa: E402
from lotus_core.results.store import Store  # noqa: E402
from lotus_core.speed.run import SpeedConfig, SpeedResult, run_speed  # noqa: E402


def small_context(default: Context, store: Store) -> Context:
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=10).eval()
    model.lotus_id, model.lotus_arch = "vit_small_patch16_224@random", {"model_name": "vit_small_patch16_224",
                                                                        "num_classes": 10}
    return Context(model, model.lotus_id, default.dataset, data_config(model), default.test, store,
                   _train=default._train)


def with_accuracy_of(result: SpeedResult, reference: SpeedResult) -> SpeedResult:
    """``result`` with the accuracy of ``reference`` at the same method and setting value."""
    acc = reference.frame.drop_duplicates(["method", "value"]).set_index(["method", "value"])["accuracy"]
    frame = result.frame.copy()
    frame["accuracy"] = [acc.get((m, v)) for m, v in zip(frame["method"], frame["value"])]
    return SpeedResult(frame, reference.dense, result.run_id, result.config, result.best_batch)


def report(name: str, result: SpeedResult) -> None:
    dense = result.dense["accuracy"]
    print(f"\n### {name} (dense accuracy {100 * dense:.2f}%)\n")
    if result.best_batch:
        trace = ", ".join(f"{b}: {ips:,.0f}" for b, ips in result.best_batch["trace"])
        print(f"the device's best batch size: {result.best_batch['best']} (dense images/s by batch size: {trace}; "
              f"stopped: {result.best_batch['stopped']})\n")
    print("| batch | family | best within 1 point | speed-up | latency (ms) | accuracy |")
    print("|---:|---|---|---:|---:|---:|")
    best = result.best(0.01)
    for bs in result.batch_sizes:
        part = best[best["batch_size"] == bs].set_index("family")
        for family in ("masked dense", "sparse kernels", "structural", "token reduction"):
            if family in part.index:
                r = part.loc[family]
                print(f"| {bs} | {family} | {r['method']} {r['setting']} | {r['speedup']:.2f}x | {r['latency_ms']:.3g} | "
                      f"{100 * r['accuracy']:.1f}% |")
            else:
                print(f"| {bs} | {family} | none within 1 point | - | - | - |")
    print("\n| batch | method | setting | latency (ms) | IQR | speed-up | GFLOPs/img | params | MB | peak MB | accuracy |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _, r in result.frame.iterrows():
        if isinstance(r["unavailable"], str):
            print(f"| {r['batch_size']} | {r['method']} | {r['setting']} | unavailable: {r['unavailable']} |||||||| ")
            continue
        print(f"| {r['batch_size']} | {r['method']} | {r['setting']} | {r['latency_ms']:.3g} | {r['iqr_ms']:.2g} | "
              f"{r['speedup']:.2f}x | {r['flops'] / 1e9:.3f} | {int(r['params']):,} | {r['bytes'] / 1e6:.2f} | "
              f"{r['peak_mem_bytes'] / 1e6:.1f} | {100 * r['accuracy']:.1f}% |"
              + (f" fine-tuned {100 * r['accuracy_finetuned']:.1f}%" if r["accuracy_finetuned"] == r["accuracy_finetuned"]
                 and r["accuracy_finetuned"] is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--min-run-time", type=float, default=0.5)
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="cpu: process CPU time, for a machine shared with other jobs (use with --threads 1)")
    parser.add_argument("--batch-sizes", default="1,32,256", help="default model")
    parser.add_argument("--small-batch-sizes", default="8", help="vit_small at 224")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--finetune-steps", type=int, default=0,
                        help="structural rows: also the accuracy after this many AdamW steps (default model)")
    parser.add_argument("--no-best-batch", action="store_true", help="skip the search for the device's best batch size")
    parser.add_argument("--db", default=None, help="results store (default: a fresh temporary one); a finished "
                                                   "measurement in it is served, not repeated")
    args = parser.parse_args()
    sizes = lambda text: tuple(int(x) for x in text.split(","))  # noqa: E731
    store = Store(args.db or Path(tempfile.mkdtemp()) / "bench-speed.db")
    default = open_context("default")
    default.store = store
    config = SpeedConfig(batch_sizes=sizes(args.batch_sizes), limit=args.limit, min_run_time=args.min_run_time,
                         threads=args.threads, clock=args.clock, finetune_steps=args.finetune_steps,
                         best_batch=not args.no_best_batch)
    t0 = time.perf_counter()
    result = run_speed(default, config)
    t1 = time.perf_counter()
    small = small_context(default, store)
    # vit_small costs 75x the default model per image: one or two settings per method
    small_config = SpeedConfig(**{**config.__dict__, "batch_sizes": sizes(args.small_batch_sizes), "limit": 10,
                                  "sparsities": (0.5, 0.9), "ratios": (0.5,), "keep_rates": (0.7,), "tome_r": (8,),
                                  "drops": (0.5,), "finetune_steps": 0})
    small_result = with_accuracy_of(run_speed(small, small_config), result)
    t2 = time.perf_counter()
    print(f"device: {config.device} ({config.device_name}), {config.threads} thread(s), {config.clock} clock, torch "
          f"{config.torch_version}, fp32; min_run_time {config.min_run_time} s per row; wall time {t1 - t0:.0f} s (default) + {t2 - t1:.0f} s "
          "(vit_small)")
    pd.set_option("display.width", 200)
    report("default model", result)
    report("vit_small_patch16_224, random weights (accuracy: the default model's at the same setting)", small_result)


if __name__ == "__main__":
    main()
