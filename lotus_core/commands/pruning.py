"""Pruning commands: prune, sweep, essential, sensitivity."""
from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import LotusError
from . import arg, command, fraction, positive_int


def _common() -> list:
    """Options shared by prune and sweep (the scope and limit defaults come from modules that import torch)."""
    from ..pruning import SCOPES
    from ..training.evaluate import DEFAULT_LIMIT

    return [
        arg("--scope", default="blocks", choices=list(SCOPES), help="which weights are pruned"),
        arg("--limit", type=positive_int, default=DEFAULT_LIMIT, help="test images (fixed seeded subset)"),
        arg("--seed", type=int, default=0),
        arg("--n", type=positive_int, default=2, help="N of the N:M pattern (nm)"),
        arg("--m", type=positive_int, default=4, help="M of the N:M pattern (nm)"),
        arg("--finetune-steps", type=int, default=0, help="fine-tune each pruned model this many steps first"),
        arg("--fp32", action="store_true", help="evaluate in fp32 (default: bf16 autocast where the hardware makes it fast)"),
    ]


def _progress(fields: dict) -> None:
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()),
          file=sys.stderr, flush=True)


def _prune_args() -> list:
    from ..pruning import PRUNERS

    return [arg("--method", required=True, choices=list(PRUNERS)),
            arg("--sparsity", type=fraction, default=0.5, help="fraction of scoped weights to prune, in [0, 1)"),
            arg("--mask-out", default=None, help="write the mask as safetensors"),
            *_common()]


@command("prune", "prune once and evaluate", _prune_args)
def prune_cmd(args, ctx) -> dict:
    from ..pruning import PRUNERS
    from ..pruning.sweep import PointEvaluator, SweepConfig

    config = SweepConfig(methods=(args.method,), scope=args.scope, limit=args.limit, seed=args.seed, n=args.n,
                         m=args.m, finetune_steps=args.finetune_steps, bf16=not args.fp32)
    evaluator = PointEvaluator(ctx, config)
    sparsity = round(1 - args.n / args.m, 6) if PRUNERS[args.method].fixed_sparsity else args.sparsity
    point = evaluator.evaluate(args.method, sparsity)
    mask = evaluator.mask(args.method, sparsity)
    if args.mask_out:
        mask.save(args.mask_out)
    dense = ctx.dense_accuracy(limit=args.limit, seed=args.seed)
    return {"method": args.method, "sparsity": mask.sparsity, "sparsity_requested": sparsity,
            "accuracy": point["accuracy"], "ci95": [point["ci_low"], point["ci_high"]], "n": point["n"],
            "dense_accuracy": dense["accuracy"], "mask_out": args.mask_out,
            "per_layer": mask.layer_sparsity()}


def _sweep_args() -> list:
    from ..pruning import PRUNERS
    from ..pruning.sweep import SEARCHES

    return [
        arg("--methods", default="omp", help=f"comma-separated, from: {', '.join(PRUNERS)}"),
        arg("--sparsities", default="0:0.9:0.1",
            help="start:stop:step or a comma list of fractions (with --search bisect: the range's end and the coarse check)"),
        arg("--search", default="grid", choices=list(SEARCHES), help="; ".join(f"{k}: {v}" for k, v in SEARCHES.items())),
        arg("--full-eval", action="store_true", help="--search bisect: evaluate every image of each point (same answer)"),
        arg("--refine", action="store_true", help="bisect each turning point's bracket down to --resolution"),
        arg("--resolution", type=float, default=0.01),
        arg("--eps", type=float, default=0.01, help="tolerance below dense accuracy (absolute fraction)"),
        arg("--no-cache", action="store_true", help="recompute instead of reading the results store"),
        arg("--stop-at-drop", action="store_true",
            help="end each method's grid at its first point below dense - eps (enough to locate the turning point)"),
        *_common(),
    ]


@command("sweep", "sparsity-accuracy curves and the essential-sparsity turning point", _sweep_args)
def sweep_cmd(args, ctx) -> dict:
    from ..pruning import PRUNERS
    from ..pruning.sweep import SweepConfig, parse_sparsities, run_sweep

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods:
        raise LotusError(f"no methods given; choose from {', '.join(PRUNERS)}")
    unknown = [m for m in methods if m not in PRUNERS]
    if unknown:
        raise LotusError(f"unknown method {unknown[0]!r}; choose from {', '.join(PRUNERS)}")
    config = SweepConfig(methods=methods, sparsities=parse_sparsities(args.sparsities), limit=args.limit,
                         seed=args.seed, scope=args.scope, refine=args.refine, resolution=args.resolution,
                         eps=args.eps, finetune_steps=args.finetune_steps, n=args.n, m=args.m,
                         stop_at_drop=args.stop_at_drop, bf16=not args.fp32, search=args.search,
                         early=not args.full_eval)
    result = run_sweep(ctx, config, on_progress=_progress, refresh=args.no_cache)
    return {"run_id": result.run_id, "dense": result.dense, "points": result.frame.to_dict(orient="records"),
            "essential": result.essential}


@command("essential", "turning point of a curve read from a CSV with columns sparsity,accuracy", [
    arg("--curve", required=True, help="CSV file; the row with sparsity 0 is the dense model"),
    arg("--eps", type=float, default=0.01, help="tolerance below dense accuracy (absolute fraction)"),
], context=False)
def essential_cmd(args, ctx) -> dict:
    import pandas as pd

    from ..essential import essential_sparsity

    path = Path(args.curve)
    if not path.is_file():
        raise LotusError(f"curve file {path} does not exist; write a CSV with columns sparsity,accuracy")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LotusError(f"{path} is not a readable CSV ({str(exc).splitlines()[0][:100]})") from None
    missing = {"sparsity", "accuracy"} - set(frame.columns)
    if missing:
        raise LotusError(f"{path} lacks column(s) {', '.join(sorted(missing))}; it needs sparsity,accuracy")
    if frame[["sparsity", "accuracy"]].isna().any().any() or not pd.api.types.is_numeric_dtype(frame["sparsity"]) \
            or not pd.api.types.is_numeric_dtype(frame["accuracy"]):
        raise LotusError(f"{path} has non-numeric or empty sparsity/accuracy values")
    dense = frame.loc[frame["sparsity"] == 0, "accuracy"]
    if dense.empty:
        raise LotusError(f"{path} has no row with sparsity 0 (the dense model's accuracy)")
    if frame["accuracy"].max() > 1.0:
        raise LotusError(f"{path} has accuracies above 1; give fractions in [0, 1], not percentages")
    ess = essential_sparsity(frame, float(dense.iloc[0]), args.eps)
    return {"essential_sparsity": ess.essential_sparsity, "bracket": list(ess.bracket), "monotone": ess.monotone,
            "dense_accuracy": float(dense.iloc[0]), "eps": args.eps}


@command("sensitivity", "accuracy drop when one layer alone is pruned", [
    arg("--sparsities", default="0.5,0.7,0.9"),
    arg("--limit", type=positive_int, default=1000),
    arg("--seed", type=int, default=0),
])
def sensitivity_cmd(args, ctx) -> dict:
    from ..pruning.sensitivity import SensitivityConfig, run_sensitivity
    from ..pruning.sweep import parse_sparsities

    table = run_sensitivity(ctx, SensitivityConfig(parse_sparsities(args.sparsities), args.limit, args.seed),
                            on_progress=_progress)
    return {"drop": {layer: {str(s): v for s, v in row.items()} for layer, row in table.iterrows()}}

