"""The speed command: latency, FLOPs, size and memory of each method beside its accuracy."""
from __future__ import annotations

import argparse

from ..core.config import from_args
from ..core.errors import LotusError
from ..core.tolerance import Tolerance
from . import progress_stream
from . import arg, comma_list, command, config_args, output_path, positive_int, tolerance


def _methods(text: str) -> tuple[str, ...]:
    from ..speed import METHODS

    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METHODS] or ([] if names else [text])
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}")
    return names


_FRACTIONS = comma_list(float, lambda v: 0 <= v < 1, "fractions in [0, 1) (not percentages)")


def _speed_args() -> list:
    """The speed command's flags (SpeedConfig's fields; built only when it is parsed: they import torch).
    ``--min-run-time`` and ``--rounds`` are checked by SpeedConfig itself (finite, bounded), before a run is
    recorded."""
    from ..speed.run import EPS, SpeedConfig

    return [*config_args(
    SpeedConfig, skip=("device", "device_name", "torch_version", "take"), methods=_methods,
    batch_sizes=comma_list(int, lambda v: v >= 1, "batch sizes >= 1"), sparsities=_FRACTIONS, ratios=_FRACTIONS,
    drops=_FRACTIONS, keep_rates=comma_list(float, lambda v: 0 < v <= 1, "keep rates in (0, 1]"),
    tome_r=comma_list(int, lambda v: v >= 0, "whole numbers >= 0"), limit=positive_int, threads=positive_int,
    importance={"choices": ["magnitude", "taylor"]},
    clock={"choices": ["wall", "cpu"]}),
    arg("--eps", type=tolerance, default=EPS, help="tolerance below dense accuracy for 'best' (absolute fraction)"),
    arg("--again", action="store_true", help="measure again: a new measurement, stored beside the earlier ones "
        "(without it, the last finished measurement of these settings is read back)"),
    arg("--no-cache", action="store_true", help="delete the last measurement of these settings and measure it afresh"),
    arg("--out", default=None, help="folder to write the fastest structural model within eps (safetensors + ONNX)"),
    ]


@command("speed", "does sparsity buy speed? latency, FLOPs, size, memory and accuracy per method (one row each)",
         _speed_args)
def speed_cmd(args, ctx) -> dict:
    from ..speed.run import SpeedConfig, progress_text, run_speed
    from ..speed.history import history, latest, measure_again

    if args.again and args.no_cache:
        raise LotusError("--again keeps the earlier measurements and --no-cache deletes the last one: give one of them")
    if args.out and not {"heads", "channels"} & set(args.methods):
        raise LotusError("--out exports a structurally pruned model: add heads or channels to --methods")
    output_path(args.out, "--out", folder=True)
    # the device measured is the one the model is on (the common --device; SpeedConfig keeps its type)
    config = from_args(SpeedConfig, {**vars(args), "device": ctx.device.type})
    config = measure_again(ctx, config) if args.again else latest(ctx, config)
    result = run_speed(ctx, config, refresh=args.no_cache, here=args.again, on_progress=lambda p: print(
        f"{progress_text(p)} ({p['done']}/{p['planned']})", file=progress_stream(), flush=True))
    summary = ctx.store.get_run(result.run_id)["summary"]
    takes = history(ctx, config).drop_duplicates("take")
    out = {"run_id": result.run_id, "take": config.take, "dense_accuracy": result.dense["accuracy"],
           "device": config.device, "device_name": config.device_name, "threads": config.threads,
           "clock": config.clock, "torch": config.torch_version, "rounds": config.rounds,
           "provenance": summary.get("provenance"), "rows": result.rows(), "eps": args.eps,
           "best": result.best(args.eps).to_dict(orient="records"), "best_batch": result.best_batch,
           "measurements": takes[["take", "run_id", "status", "measured", "load"]].to_dict(orient="records")}
    if args.out:
        out["exported"] = _export_best(ctx, result, config, args.eps, args.out)
    return out


def _export_best(ctx, result, config, eps: float, folder: str) -> dict:
    """Write the fastest reliably measured structural configuration within eps at the largest batch size measured
    (else the most accurate structural one) as safetensors + ONNX."""
    from ..speed.export import write
    from ..speed.run import export_structural

    rows = result.at(max(result.batch_sizes))  # the device's best batch too, when the run searched for it
    rows = rows[rows["family"] == "structural"]
    if rows.empty:
        raise LotusError("--out exports a structurally pruned model: add heads or channels to --methods")
    within = rows[Tolerance(result.dense["accuracy"], eps).within(rows["accuracy"]) & rows["reliable"]]
    row = within.loc[within["speedup"].idxmax()] if len(within) else rows.loc[rows["accuracy"].idxmax()]
    exported = export_structural(ctx, row["method"], float(row["value"]), config.importance, config.seed)
    paths = write(exported, folder, f"{row['method']}-{row['value']:g}")
    return {"method": row["method"], "ratio": float(row["value"]), "within_eps": bool(len(within)),
            "speedup": float(row["speedup"]), "accuracy": float(row["accuracy"]), "files": [str(p) for p in paths],
            "arch": exported.arch, "onnx_max_abs_diff": exported.onnx_max_abs_diff}
