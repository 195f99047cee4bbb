"""Lottery-ticket commands: lth, lth-control, soup (ISSP), soup-sweep, similarity.

``lth``, ``lth-control`` and ``soup`` run through :func:`lotus_core.results.runs.run_experiment`, the
function the dashboard's background jobs call: a finished run is read back from the store and
an interrupted one resumes at its next round.
"""
from __future__ import annotations

import dataclasses

from ..core.errors import LotusError
from . import arg, command, fraction, positive_int
from .pruning import _progress


def _shared() -> list:
    from ..pruning import SCOPES

    return [
        arg("--target", type=fraction, default=0.8, help="final sparsity (fraction of scoped weights)"),
        arg("--lr", type=float, default=1e-4, help="peak AdamW learning rate"),
        arg("--batch-size", type=positive_int, default=128),
        arg("--scope", default="blocks", choices=list(SCOPES), help="which weights are pruned"),
        arg("--seed", type=int, default=0),
        arg("--limit", type=positive_int, default=1000, help="test images per evaluation (fixed seeded subset)"),
    ]


def _lth() -> list:
    return [
        *_shared(),
        arg("--prune-fraction", type=fraction, default=0.2, help="fraction of the remaining weights pruned per round"),
        arg("--steps", type=positive_int, default=100, help="fine-tuning steps per round"),
        arg("--rewind", default="pretrained", help="'pretrained' or 'step:K' (late rewinding to K fine-tuning steps)"),
    ]


def _issp() -> list:
    from ..lottery.issp import MERGES

    return [
        *_shared(),
        arg("--per-round", type=fraction, default=0.15, help="fraction of the remaining weights pruned per round"),
        arg("--denoisers", type=positive_int, default=5, help="N look-ahead models per round"),
        arg("--lookahead-steps", type=positive_int, default=50, help="C steps per look-ahead"),
        arg("--data-fraction", type=float, default=0.1, help="f: fraction of the training set each look-ahead sees"),
        arg("--merge", choices=list(MERGES), default="union"),
        arg("--finetune-steps", type=int, default=100, help="fine-tuning steps after the last round"),
    ]


_MASK_OUT = arg("--mask-out", default=None, help="write the final mask as safetensors")


def _config(cls, args):
    """``cls`` (a config dataclass) from the parsed arguments of the same names."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def _run_ticket(ctx, args, kind: str, cls, fn) -> dict:
    """Run (or read back) a ticket experiment; its summary, per-round points and, with
    ``--mask-out``, the last round's mask written to that file."""
    from ..lottery.common import round_masks
    from ..results.runs import run_experiment

    summary = run_experiment(ctx, kind, _config(cls, args), fn, on_progress=_progress)
    points = ctx.store.points(summary["run_id"])
    if args.mask_out:
        masks = round_masks(ctx.store, summary["run_id"])
        masks[max(masks)].save(args.mask_out)
    return {**summary, "points": [p for k, p in points.items() if k.startswith("round-")],
            "final": points.get("final"), "mask_out": args.mask_out}


@command("lth", "lottery tickets: iterative magnitude pruning with rewinding, fine-tuned every round",
         lambda: [*_lth(), _MASK_OUT])
def lth_cmd(args, ctx) -> dict:
    from ..lottery.lth import LTHConfig, run_lth

    return _run_ticket(ctx, args, "lth", LTHConfig, run_lth)


def _control_args() -> list:
    from ..lottery.controls import CONTROLS

    return [*_lth(),
            arg("--round", type=positive_int, required=True, help="the LTH round whose mask is controlled"),
            arg("--kind", choices=list(CONTROLS), default="shuffle",
                help="; ".join(f"{k}: {v}" for k, v in CONTROLS.items())),
            arg("--control-seed", type=int, default=0, help="random draw of the shuffle or re-initialisation")]


@command("lth-control", "a ticket's control: its mask re-initialised or shuffled within layers, same fine-tune",
         _control_args)
def control_cmd(args, ctx) -> dict:
    from ..lottery.controls import ControlConfig, run_control
    from ..lottery.lth import LTHConfig
    from ..results.runs import run_experiment

    cfg = ControlConfig(_config(LTHConfig, args), args.round, args.kind, args.control_seed)
    return run_experiment(ctx, "lth-control", cfg, run_control, on_progress=_progress)


@command("soup", "Instant Sparse Soup Pruning (ISSP): masks from merged look-aheads, then a fine-tune",
         lambda: [*_issp(), _MASK_OUT])
def soup_cmd(args, ctx) -> dict:
    from ..lottery.issp import ISSPConfig, run_issp

    return _run_ticket(ctx, args, "issp", ISSPConfig, run_issp)


@command("soup-sweep", "ISSP at several data fractions (does the ticket collapse at 10%?)", lambda: [
    *[a for a in _issp() if a[0] != ("--data-fraction",)],
    arg("--data-fractions", default="0.1,0.3,1.0", help="comma-separated fractions of the training set"),
])
def soup_sweep_cmd(args, ctx) -> dict:
    from ..lottery.issp import ISSPConfig, data_fraction_sweep

    try:
        fractions = [float(x) for x in args.data_fractions.split(",") if x.strip()]
    except ValueError:
        raise LotusError(f"cannot read data fractions {args.data_fractions!r}; give a list such as 0.1,0.3,1.0") from None
    table = data_fraction_sweep(ctx, _config(ISSPConfig, args), fractions, on_progress=_progress)
    return {"runs": table.to_dict(orient="records")}


@command("similarity", "cosine and Jaccard similarity of two masks, each with its chance level", [
    arg("mask_a", help="safetensors mask (prune/lth/soup --mask-out)"), arg("mask_b"),
], context=False)
def similarity_cmd(args, ctx) -> dict:
    from ..pruning.mask import Mask
    from ..pruning.similarity import mask_similarity

    return mask_similarity(Mask.load(args.mask_a), Mask.load(args.mask_b))
