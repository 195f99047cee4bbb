"""Core commands: info, evaluate, train-default, runs, export."""
from __future__ import annotations

import platform

from . import arg, command, positive_int


@command("info", "model, dataset and device")
def info(args, ctx) -> dict:
    import torch

    from ..core.device import bf16_available, default_device
    from ..models.loading import count_parameters

    device = default_device()
    return {
        "model": ctx.model_id,
        "parameters": count_parameters(ctx.model),
        "input_size": list(ctx.data_config["input_size"]),
        "dataset": ctx.dataset,
        "test_images": len(ctx.test),
        "classes": ctx.test.classes,
        "data_source": ctx.test.source,
        "device": str(device),
        "bf16": bf16_available(device),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "store": str(ctx.store.path),
    }


def _evaluate_args() -> list:
    from ..training.evaluate import DEFAULT_LIMIT

    return [arg("--limit", type=positive_int, default=DEFAULT_LIMIT, help=f"number of test images (default {DEFAULT_LIMIT})"),
            arg("--seed", type=int, default=0, help="seed of the fixed test subset"),
            arg("--no-cache", action="store_true", help="recompute instead of reading the results store")]


@command("evaluate", "top-1 accuracy with a 95% CI on a fixed test subset", _evaluate_args)
def evaluate_cmd(args, ctx) -> dict:
    config = ctx.key(kind="evaluate", limit=args.limit, seed=args.seed)
    summary = ctx.store.cached("evaluate", config, lambda: ctx.evaluate(limit=args.limit, seed=args.seed).summary(),
                               model=ctx.model_id, dataset=ctx.dataset, refresh=args.no_cache)
    return {"model": ctx.model_id, "dataset": ctx.dataset, **summary}


@command("train-default", "train the embedded default ViT from a seed and write data/default_vit.*", [
    arg("--epochs", type=positive_int, default=20),
    arg("--seed", type=int, default=0),
    arg("--out", default=None, help="weights path (default data/default_vit.safetensors)"),
], context=False)
def train_default_cmd(args, ctx) -> dict:
    import sys
    from pathlib import Path

    from ..models.default import train_default
    from ..models.loading import DEFAULT_CARD, DEFAULT_WEIGHTS

    out = Path(args.out) if args.out else DEFAULT_WEIGHTS
    card = out.with_suffix(".json") if args.out else DEFAULT_CARD
    return train_default(epochs=args.epochs, seed=args.seed, out=out, card=card,
                         on_progress=lambda p: print(f"step {p.step}/{p.steps} loss {p.loss:.3f} "
                                                     f"{p.elapsed_s:.0f}s", file=sys.stderr, flush=True))


@command("runs", "list stored runs", [arg("--kind", default=None, help="only runs of this kind")], context=False)
def runs_cmd(args, ctx) -> dict:
    from ..results.store import Store

    frame = Store(args.db).runs(kind=args.kind)
    cols = ["id", "kind", "model", "dataset", "status", "duration_s", "summary"]
    return {"runs": frame[cols].to_dict(orient="records")}


@command("export", "write a stored run's table as CSV", [
    arg("run_id", help="run id (see `runs`)"),
    arg("--out", required=True, help="CSV file to write"),
], context=False)
def export_cmd(args, ctx) -> dict:
    from ..results.store import Store

    text = Store(args.db).export_csv(args.run_id, args.out)
    return {"run": args.run_id, "out": args.out, "rows": max(0, text.count("\n") - 1)}


@command("worker", "consume the background job queue of a results store (started by the dashboard)",
         context=False)
def worker_cmd(args, ctx) -> dict:
    from pathlib import Path

    from ..results.jobs import run_worker
    from ..results.store import Store

    run_worker(Store(args.db).path)
    return {}
