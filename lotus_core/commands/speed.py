"""The speed command: latency, FLOPs, size and memory of each method beside its accuracy."""
from __future__ import annotations

import sys

from ..core.errors import LotusError
from . import arg, command, positive_int


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise LotusError(f"cannot read {what} {text!r}; give a comma list such as 0.25,0.5") from None
    if not values:
        raise LotusError(f"no {what} in {text!r}")
    return values


def _ints(text: str, what: str) -> tuple[int, ...]:
    values = _floats(text, what)
    if any(v != int(v) or v < 0 for v in values):
        raise LotusError(f"{what} must be whole numbers >= 0, got {text!r}")
    return tuple(int(v) for v in values)


@command("speed", "does sparsity buy speed? latency, FLOPs, size, memory and accuracy per method (one row each)", [
    arg("--methods", default="dense,masked,csr,nm-2:4,heads,channels,evit,tome,patch-dropout",
        help="comma-separated methods (see the Speed page); dense is always measured"),
    arg("--batch-sizes", default="1,32,256", help="comma list of batch sizes"),
    arg("--sparsities", default="0.5,0.7,0.9,0.95", help="masked/csr: global magnitude sparsities"),
    arg("--ratios", default="0.25,0.5", help="heads/channels: fraction removed in every block"),
    arg("--importance", default="magnitude", choices=["magnitude", "taylor"], help="structural ranking"),
    arg("--keep-rates", default="0.7,0.5", help="evit: fraction of patch tokens kept"),
    arg("--no-fuse", action="store_true", help="evit: drop the inattentive tokens instead of fusing them"),
    arg("--tome-r", default="4,8", help="tome: tokens merged per block"),
    arg("--drops", default="0.25,0.5", help="patch-dropout: fraction of patch tokens dropped at random"),
    arg("--limit", type=positive_int, default=1000, help="test images for the accuracies"),
    arg("--seed", type=int, default=0),
    arg("--finetune-steps", type=int, default=0, help="structural: also the accuracy after this many steps"),
    arg("--eps", type=float, default=0.01, help="tolerance below dense accuracy (absolute fraction)"),
    arg("--min-run-time", type=float, default=0.5, help="seconds of timing per configuration and batch size"),
    arg("--clock", default="wall", choices=["wall", "cpu"],
        help="wall: latency; cpu: process CPU time (steadier on a machine shared with other jobs)"),
    arg("--threads", type=positive_int, default=None, help="torch threads while timing (default: torch's)"),
    arg("--device", default=None, choices=["cpu", "cuda"], help="where to measure (default: CUDA when present)"),
    arg("--no-cache", action="store_true", help="measure again instead of reading the results store"),
    arg("--out", default=None, help="folder to write the fastest structural model within eps (safetensors + ONNX)"),
])
def speed_cmd(args, ctx) -> dict:
    from ..speed import METHODS
    from ..speed.run import SpeedConfig, run_speed

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise LotusError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}" if unknown
                         else f"no methods given; choose from {', '.join(METHODS)}")
    batch_sizes = _ints(args.batch_sizes, "batch sizes")
    if min(batch_sizes) < 1:
        raise LotusError("batch sizes must be at least 1")
    fractions = {name: _floats(getattr(args, name), name.replace("_", " ")) for name in ("sparsities", "ratios", "drops")}
    for name, values in fractions.items():
        if any(not 0 <= v < 1 for v in values):
            raise LotusError(f"{name} must be fractions in [0, 1), got {getattr(args, name)!r} (not percentages)")
    keep = _floats(args.keep_rates, "keep rates")
    if any(not 0 < v <= 1 for v in keep):
        raise LotusError(f"keep rates must be in (0, 1], got {args.keep_rates!r}")
    if args.min_run_time <= 0:
        raise LotusError("--min-run-time must be positive (seconds)")
    extra = {"threads": args.threads} if args.threads else {}
    extra.update({"device": args.device} if args.device else {})
    config = SpeedConfig(methods=methods, batch_sizes=batch_sizes, importance=args.importance, keep_rates=keep,
                         fuse=not args.no_fuse, tome_r=_ints(args.tome_r, "ToMe r"), limit=args.limit, seed=args.seed,
                         finetune_steps=args.finetune_steps, min_run_time=args.min_run_time, clock=args.clock,
                         **fractions, **extra)
    result = run_speed(ctx, config, refresh=args.no_cache, on_progress=lambda p: print(
        f"{p['method']} {p['setting']} batch {p['batch_size']} ({p['done']}/{p['planned']})", file=sys.stderr, flush=True))
    out = {"run_id": result.run_id, "dense_accuracy": result.dense["accuracy"], "device": config.device,
           "device_name": config.device_name, "threads": config.threads, "clock": config.clock,
           "torch": config.torch_version,
           "rows": result.rows(), "eps": args.eps,
           "best": result.best(args.eps).to_dict(orient="records")}
    if args.out:
        out["exported"] = _export_best(ctx, result, config, args.eps, args.out)
    return out


def _export_best(ctx, result, config, eps: float, folder: str) -> dict:
    """Write the fastest structural configuration within eps at the largest batch size (else the most
    accurate structural one) as safetensors + ONNX."""
    from ..speed.export import write
    from ..speed.run import export_structural

    rows = result.at(max(config.batch_sizes))
    rows = rows[rows["family"] == "structural"]
    if rows.empty:
        raise LotusError("--out exports a structurally pruned model: add heads or channels to --methods")
    within = rows[rows["drop"] <= eps + 1e-12]
    row = within.loc[within["speedup"].idxmax()] if len(within) else rows.loc[rows["accuracy"].idxmax()]
    exported = export_structural(ctx, row["method"], float(row["value"]), config.importance, config.seed)
    paths = write(exported, folder, f"{row['method']}-{row['value']:g}")
    return {"method": row["method"], "ratio": float(row["value"]), "within_eps": bool(len(within)),
            "speedup": float(row["speedup"]), "accuracy": float(row["accuracy"]), "files": [str(p) for p in paths],
            "arch": exported.arch, "onnx_max_abs_diff": exported.onnx_max_abs_diff}
