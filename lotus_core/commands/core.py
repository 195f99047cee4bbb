"""Core commands: info, evaluate, train-default, runs, export."""
from __future__ import annotations

import platform

from . import arg, command, output_path, positive_int, seed


@command("info", "model, dataset, device, and the executor with its cluster's resources")
def info(args, ctx) -> dict:
    import torch

    from ..core.device import bf16_available, describe
    from ..data import split_sizes
    from ..models.loading import count_parameters
    from ..results.executors import get_executor

    device = ctx.device
    return {
        "model": ctx.model_id,
        "parameters": count_parameters(ctx.model),
        "input_size": list(ctx.data_config["input_size"]),
        "dataset": ctx.dataset,
        **split_sizes(ctx.test, ctx.train),  # train_images, test_images and how they were told apart
        "classes": ctx.test.classes,
        "data_source": ctx.test.source,
        "device": str(device),
        "device_detail": describe(device),
        "head": ctx.head_problem or f"{ctx.head.state}" + (f" on {ctx.head.dataset}" if ctx.head.dataset else ""),
        "bf16": bf16_available(device),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "store": str(ctx.store.path),
        **get_executor(ctx.executor).resources(),
    }


def _evaluate_args() -> list:
    from ..training.evaluate import DEFAULT_LIMIT

    return [arg("--limit", type=positive_int, default=DEFAULT_LIMIT, help=f"number of test images (default {DEFAULT_LIMIT})"),
            arg("--seed", type=seed, default=0, help="seed of the fixed test subset"),
            arg("--fp32", action="store_true", help="evaluate in fp32 (default: bf16 autocast where the CPU or GPU "
                                                    "is fast at it), as sweep --fp32 does"),
            arg("--no-cache", action="store_true", help="recompute instead of reading the results store")]


@command("evaluate", "top-1 accuracy with a 95% CI on a fixed test subset", _evaluate_args)
def evaluate_cmd(args, ctx) -> dict:
    from ..data import split_sizes

    summary = ctx.dense_accuracy(limit=args.limit, seed=args.seed, bf16=not args.fp32, refresh=args.no_cache)
    head = {"head": ctx.head_problem} if ctx.head_problem else {}  # an untrained classifier is said so
    return {"model": ctx.model_id, "dataset": ctx.dataset, **{k: v for k, v in summary.items() if k != "run_id"},
            **split_sizes(ctx.test, ctx.train), **head}


@command("train-default", "train the embedded default ViT from a seed and write data/default_vit.*", [
    arg("--epochs", type=positive_int, default=20),
    arg("--seed", type=seed, default=0),
    arg("--out", default=None, help="weights path (default data/default_vit.safetensors)"),
    arg("--dataset", default="fashion-mnist",
        help="training data (the transfer demo's upstream model: fashion-mnist-0to4 --out data/transfer_vit.safetensors)"),
], context=False)
def train_default_cmd(args, ctx) -> dict:
    import sys

    from ..training.default_model import train_default
    from ..models.loading import DEFAULT_CARD, DEFAULT_WEIGHTS

    out = output_path(args.out, "--out") or DEFAULT_WEIGHTS
    card = out.with_suffix(".json") if args.out else DEFAULT_CARD
    return train_default(epochs=args.epochs, seed=args.seed, out=out, card=card, dataset=args.dataset,
                         on_progress=lambda p: print(f"step {p.step}/{p.steps} loss {p.loss:.3f} "
                                                     f"{p.elapsed_s:.0f}s", file=sys.stderr, flush=True))


@command("runs", "list stored runs", [arg("--kind", default=None, help="only runs of this kind")], context=False)
def runs_cmd(args, ctx) -> dict:
    from ..results.store import Store

    frame = Store(args.db, create=False).runs(kind=args.kind)
    cols = ["id", "name", "note", "kind", "model", "dataset", "status", "duration_s", "summary", "provenance"]
    frame = frame[cols].astype(object)
    return {"runs": frame.where(frame.notna(), None).to_dict(orient="records")}  # a missing name is null, not NaN


@command("export", "write a stored run's table as CSV, or runs to MLflow (--mlflow URI)", [
    arg("run_id", nargs="+", help="run id (see `runs`); several with --mlflow"),
    arg("--out", default=None, help="CSV file to write (one run)"),
    arg("--mlflow", default=None, metavar="URI", help="MLflow tracking URI (sqlite:///FILE or http://HOST:PORT): "
                                                      "one MLflow run per run, never duplicated (docs: views/mlflow_export.py)"),
    arg("--mlflow-experiment", default="LOTUS", help="MLflow experiment the runs go to"),
], context=False)
def export_cmd(args, ctx) -> dict:
    from ..core.errors import LotusError
    from ..results.store import Store

    if args.mlflow:
        from ..views.mlflow_export import export_runs

        return {"mlflow": args.mlflow, "runs": export_runs(Store(args.db, create=False), args.run_id, args.mlflow,
                                                           args.mlflow_experiment)}
    if args.out is None or len(args.run_id) != 1:
        raise LotusError("give one run and --out FILE (a CSV), or runs and --mlflow URI")
    (run_id,) = args.run_id
    output_path(args.out, "--out")
    text = Store(args.db, create=False).export_csv(run_id, args.out)
    return {"run": run_id, "out": args.out, "rows": max(0, text.count("\n") - 1)}


@command("worker", "consume the background job queue of a results store (started by the dashboard)", [
    arg("--exit-with-parent", action="store_true", help="stop when the process that started it exits"),
    arg("--stop", action="store_true", help="stop this store's live workers instead (SIGTERM) and exit"),
], context=False)
def worker_cmd(args, ctx) -> dict:
    from ..jobs import run_worker, stop_workers
    from ..results.store import Store

    if args.stop:
        return {"stopped": stop_workers(Store(args.db, create=False))}
    run_worker(Store(args.db).path, exit_with_parent=args.exit_with_parent)
    return {}
