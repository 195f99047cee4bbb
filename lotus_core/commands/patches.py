"""Patch commands: patches (scores and data lottery tickets), fidelity, lottery-train."""
from __future__ import annotations

import argparse

from . import arg, command, fraction, positive_int
from .pruning import _progress


def _score_options() -> list:
    from ..patches import FUSES

    return [
        arg("--block", type=int, default=-1, help="cls: attention block read (-1 = last)"),
        arg("--fuse", choices=FUSES, default="mean", help="cls/rollout: how heads are fused"),
        arg("--discard-ratio", type=fraction, default=0.0, help="rollout: fraction of each attention row discarded"),
    ]


def _scorer_list(text: str) -> tuple[str, ...]:
    from ..patches import SCORERS

    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [n for n in names if n not in SCORERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown patch scorer {unknown[0] if unknown else text!r}; "
                                         f"choose from {', '.join(SCORERS)}")
    return names


def _patches_args() -> list:
    from ..patches import SCORERS

    return [
        arg("--index", type=int, action="append", help="test-set index (repeat for several images; default 0)"),
        arg("--score", choices=list(SCORERS), default="cls", help="patch scorer"),
        arg("--drop", type=fraction, default=0.1, help="fraction of patches dropped per image, in [0, 1)"),
        arg("--seed", type=int, default=0, help="random scorer's seed"),
        arg("--ig-steps", type=positive_int, default=32, help="captum-ig: path steps"),
        *_score_options(),
    ]


@command("patches", "patch scores of test images and their data lottery tickets (kept and dropped patches)",
         _patches_args)
def patches_cmd(args, ctx) -> dict:
    from ..patches import ScoreOptions
    from ..patches.analysis import explain_images

    options = ScoreOptions(block=args.block, fuse=args.fuse, discard_ratio=args.discard_ratio, seed=args.seed,
                           ig_steps=args.ig_steps)
    report = explain_images(ctx, args.score, args.drop, options, indices=args.index or [0])
    return {"images": report.records(), "grid": list(report.grid.shape), "scorer": args.score, "drop": args.drop,
            "dropped_per_image": report.grid.num_patches - report.kept_count, "classes": ctx.test.classes}


def _fidelity_args() -> list:
    from ..patches import SCORERS

    return [
        arg("--score", type=_scorer_list, default=tuple(SCORERS), help=f"comma-separated, from: {', '.join(SCORERS)}"),
        arg("--limit", type=positive_int, default=100, help="test images (fixed seeded subset)"),
        arg("--steps", type=positive_int, default=10, help="curve points: fractions 0, 1/steps, ..., 1"),
        arg("--top-k", type=float, default=0.2, help="fraction of patches compared by the top-k overlap"),
        arg("--drop", type=fraction, default=0.1, help="drop ratio of the dropped-set overlap"),
        arg("--seed", type=int, default=0),
        arg("--ig-steps", type=positive_int, default=32, help="captum-ig: path steps"),
        arg("--curves", action="store_true", help="include every curve point in the output"),
        *_score_options(),
    ]


@command("fidelity", "deletion/insertion curves (with AUC) and agreement of patch scorers", _fidelity_args)
def fidelity_cmd(args, ctx) -> dict:
    from ..patches.fidelity import FidelityConfig, fidelity

    cfg = FidelityConfig(scorers=args.score, limit=args.limit, steps=args.steps, top_k=args.top_k, drop=args.drop,
                         block=args.block, fuse=args.fuse, discard_ratio=args.discard_ratio, ig_steps=args.ig_steps,
                         seed=args.seed)
    result = fidelity(ctx, cfg, on_progress=_progress)
    out = {"images": result.summary["images"], "grid": result.summary["grid"], "auc": result.auc.to_dict(orient="records"),
           "agreement": result.agreement.to_dict(orient="records"), "run_id": result.summary["run_id"]}
    if args.curves:
        out["curves"] = result.curves.to_dict(orient="records")
    return out


def _lottery_train_args() -> list:
    from ..patches import SCORERS
    from ..patches.ticket_training import APPLIES, STARTS

    return [
        arg("--score", choices=list(SCORERS), default="cls", help="patch scorer (run on the base model)"),
        arg("--drop", type=fraction, default=0.1, help="fraction of patches dropped per training image"),
        arg("--epochs", type=positive_int, default=5),
        arg("--steps-per-epoch", type=int, default=0, help="optimizer steps per epoch (0 = one pass over the pool)"),
        arg("--fraction", type=float, default=0.2, help="fraction of the training split used"),
        arg("--lr", type=float, default=1e-3),
        arg("--weight-decay", type=float, default=0.05),
        arg("--warmup-steps", type=int, default=0),
        arg("--batch-size", type=positive_int, default=128),
        arg("--seed", type=int, default=0),
        arg("--start", choices=STARTS, default="scratch", help="re-initialised architecture or the base model"),
        arg("--limit", type=positive_int, default=1000, help="test images per evaluation"),
        arg("--apply", choices=list(APPLIES), default="pixels",
            help="; ".join(f"{k}: {v}" for k, v in APPLIES.items())),
        *_score_options(),
    ]


@command("lottery-train", "train on data lottery tickets and on full images side by side, epoch by epoch",
         _lottery_train_args)
def lottery_train_cmd(args, ctx) -> dict:
    from ..patches.ticket_training import LotteryTrainConfig, epoch_frame, run_lottery_train
    from ..results.runs import run_experiment

    cfg = LotteryTrainConfig(scorer=args.score, drop=args.drop, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                             fraction=args.fraction, lr=args.lr, weight_decay=args.weight_decay,
                             warmup_steps=args.warmup_steps, batch_size=args.batch_size, seed=args.seed,
                             start=args.start, limit=args.limit, block=args.block, fuse=args.fuse,
                             discard_ratio=args.discard_ratio, apply=args.apply)
    summary = run_experiment(ctx, "lottery-train", cfg, run_lottery_train, on_progress=_progress)
    return {**summary, "points": epoch_frame(ctx, summary["run_id"]).to_dict(orient="records")}
