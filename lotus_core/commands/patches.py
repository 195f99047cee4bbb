"""Patch commands: patches (scores and data lottery tickets), fidelity, lottery-train."""
from __future__ import annotations

import argparse

from ..core.config import from_args
from . import (arg, command, config_args, enough_images, fraction, learning_rate, non_negative_int, positive_int, seed,
               share, weight_decay)
from .pruning import _progress


def _scoring() -> dict:
    """Validators of the patch-scoring fields (and of drop and limit)."""
    from ..patches import FUSES

    return dict(fuse={"choices": FUSES}, discard_ratio=fraction, ig_steps=positive_int, drop=fraction,
                limit=positive_int, seed=seed)


def _scorer_list(text: str) -> tuple[str, ...]:
    from ..patches import SCORERS

    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [n for n in names if n not in SCORERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown patch scorer {unknown[0] if unknown else text!r}; "
                                         f"choose from {', '.join(SCORERS)}")
    return names


def _patches_args() -> list:
    from ..patches import SCORERS, ScoreOptions

    return [
        arg("--index", type=int, action="append", help="test-set index (repeat for several images; default 0)"),
        arg("--score", choices=list(SCORERS), default="cls", help="patch scorer"),
        arg("--drop", type=fraction, default=0.1, help="fraction of patches dropped per image, in [0, 1)"),
        *config_args(ScoreOptions, **_scoring()),
    ]


@command("patches", "patch scores of test images and their data lottery tickets (kept and dropped patches)",
         _patches_args)
def patches_cmd(args, ctx) -> dict:
    from ..patches import ScoreOptions
    from ..patches.analysis import explain_images

    options = from_args(ScoreOptions, vars(args))
    report = explain_images(ctx, args.score, args.drop, options, indices=args.index or [0])
    return {"images": report.records(), "grid": list(report.grid.shape), "scorer": args.score, "drop": args.drop,
            "dropped_per_image": report.grid.num_patches - report.kept_count, "classes": ctx.test.classes}


def _fidelity_args() -> list:
    from ..patches import SCORERS
    from ..patches.fidelity import FidelityConfig

    return [
        *config_args(FidelityConfig, steps=positive_int, top_k=share, **_scoring(),
                     scorers={"flags": ("--score",), "type": _scorer_list,
                              "help": f"comma-separated, from: {', '.join(SCORERS)}"}),
        arg("--curves", action="store_true", help="include every curve point in the output"),
    ]


@command("fidelity", "deletion/insertion curves (with AUC) and agreement of patch scorers", _fidelity_args)
def fidelity_cmd(args, ctx) -> dict:
    from ..patches.fidelity import FidelityConfig, fidelity

    cfg = from_args(FidelityConfig, vars(args))
    result = fidelity(ctx, cfg, on_progress=_progress)
    out = {"images": result.summary["images"], "grid": result.summary["grid"], "auc": result.auc.to_dict(orient="records"),
           "agreement": result.agreement.to_dict(orient="records"), "run_id": result.summary["run_id"]}
    if args.curves:
        out["curves"] = result.curves.to_dict(orient="records")
    return out


def _lottery_train_args() -> list:
    from ..patches import SCORERS
    from ..patches.ticket_training import APPLIES, STARTS, LotteryTrainConfig

    return config_args(LotteryTrainConfig, epochs=positive_int, batch_size=positive_int, fraction=share,
                       lr=learning_rate, weight_decay=weight_decay, warmup_steps=non_negative_int,
                       steps_per_epoch=non_negative_int, **_scoring(),
                       scorer={"flags": ("--score",), "choices": list(SCORERS)}, start={"choices": STARTS},
                       apply={"choices": list(APPLIES), "help": "; ".join(f"{k}: {v}" for k, v in APPLIES.items())},
                       exclude_from_decay={"flags": ("--decay-all",),
                                           "help": "decay norms, biases and embeddings too (not timm's convention)"})


@command("lottery-train", "train on data lottery tickets and on full images side by side, epoch by epoch",
         _lottery_train_args)
def lottery_train_cmd(args, ctx) -> dict:
    from ..patches.ticket_training import LotteryTrainConfig, epoch_frame
    from ..results.runs import run_experiment

    cfg = from_args(LotteryTrainConfig, vars(args))
    enough_images(ctx, cfg.fraction, "--fraction")
    summary = run_experiment(ctx, "lottery-train", cfg, on_progress=_progress)
    return {**summary, "points": epoch_frame(ctx, summary["run_id"]).to_dict(orient="records")}
