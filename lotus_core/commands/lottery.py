"""Lottery-ticket commands: lth, lth-control, soup (ISSP), soup-sweep, instability, rigl, supermask, lota,
core-ticket, similarity.

``lth``, ``lth-control`` and ``soup`` run through :func:`lotus_core.results.runs.run_experiment`, the
function the dashboard's background jobs call: a finished run is read back from the store and
an interrupted one resumes at its next round.
"""
from __future__ import annotations

import dataclasses

from ..core.errors import LotusError
from ..lottery.common import round_masks
from ..lottery.controls import CONTROLS, ControlConfig, run_control
from ..lottery.core_ticket import CoreTicketConfig, run_core_ticket
from ..lottery.instability import InstabilityConfig, run_instability
from ..lottery.issp import MERGES, ISSPConfig, data_fraction_sweep, run_issp
from ..lottery.lota import LoTAConfig, run_lota
from ..lottery.rigl import INITS, RigLConfig, run_rigl
from ..lottery.supermask import WEIGHTS, SupermaskConfig, run_supermask
from ..lottery.lth import LTHConfig, run_lth
from ..pruning import SCOPES
from ..pruning.mask import Mask
from ..results.runs import run_experiment
from ..pruning.similarity import mask_similarity
from . import arg, command, fraction, positive_int
from .pruning import _progress

_SHARED = [
    arg("--target", type=fraction, default=0.8, help="final sparsity (fraction of scoped weights)"),
    arg("--lr", type=float, default=1e-4, help="peak AdamW learning rate"),
    arg("--batch-size", type=positive_int, default=128),
    arg("--scope", default="blocks", choices=list(SCOPES), help="which weights are pruned"),
    arg("--seed", type=int, default=0),
    arg("--limit", type=positive_int, default=1000, help="test images per evaluation (fixed seeded subset)"),
]
_LTH = [
    *_SHARED,
    arg("--prune-fraction", type=fraction, default=0.2, help="fraction of the remaining weights pruned per round"),
    arg("--steps", type=positive_int, default=100, help="fine-tuning steps per round"),
    arg("--rewind", default="pretrained", help="'pretrained' or 'step:K' (late rewinding to K fine-tuning steps)"),
]
_ISSP = [
    *_SHARED,
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
    summary = run_experiment(ctx, kind, _config(cls, args), fn, on_progress=_progress)
    points = ctx.store.points(summary["run_id"])
    if args.mask_out:
        masks = round_masks(ctx.store, summary["run_id"])
        masks[max(masks)].save(args.mask_out)
    return {**summary, "points": [p for k, p in points.items() if k.startswith("round-")],
            "final": points.get("final"), "mask_out": args.mask_out}


@command("lth", "lottery tickets: iterative magnitude pruning with rewinding, fine-tuned every round",
         [*_LTH, _MASK_OUT])
def lth_cmd(args, ctx) -> dict:
    return _run_ticket(ctx, args, "lth", LTHConfig, run_lth)


@command("lth-control", "a ticket's control: its mask re-initialised or shuffled within layers, same fine-tune", [
    *_LTH,
    arg("--round", type=positive_int, required=True, help="the LTH round whose mask is controlled"),
    arg("--kind", choices=list(CONTROLS), default="shuffle",
        help="; ".join(f"{k}: {v}" for k, v in CONTROLS.items())),
    arg("--control-seed", type=int, default=0, help="random draw of the shuffle or re-initialisation"),
])
def control_cmd(args, ctx) -> dict:
    cfg = ControlConfig(_config(LTHConfig, args), args.round, args.kind, args.control_seed)
    return run_experiment(ctx, "lth-control", cfg, run_control, on_progress=_progress)


@command("soup", "Instant Sparse Soup Pruning (ISSP): masks from merged look-aheads, then a fine-tune",
         [*_ISSP, _MASK_OUT])
def soup_cmd(args, ctx) -> dict:
    return _run_ticket(ctx, args, "issp", ISSPConfig, run_issp)


@command("soup-sweep", "ISSP at several data fractions (does the ticket collapse at 10%?)", [
    *[a for a in _ISSP if a[0] != ("--data-fraction",)],
    arg("--data-fractions", default="0.1,0.3,1.0", help="comma-separated fractions of the training set"),
])
def soup_sweep_cmd(args, ctx) -> dict:
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
    return mask_similarity(Mask.load(args.mask_a), Mask.load(args.mask_b))


def _steps_list(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise LotusError(f"cannot read rewinding points {text!r}; give whole steps such as 0,10,25,50") from None
    if not ks:
        raise LotusError("no rewinding points given; give whole steps such as 0,10,25,50")
    return ks


@command("instability", "error barrier between two copies trained from step k with different data orders", [
    arg("--ks", default="0,10,25,50", help="rewinding points k (steps of the dense run), comma-separated"),
    arg("--steps", type=positive_int, default=100, help="length of the dense run and training steps of each copy"),
    arg("--lr", type=float, default=1e-4, help="peak AdamW learning rate"),
    arg("--batch-size", type=positive_int, default=128),
    arg("--alphas", type=positive_int, default=11, help="interpolation points from 0 to 1"),
    arg("--sparsity", type=fraction, default=0.0, help="> 0: a ticket (the OMP mask at this sparsity, held fixed)"),
    arg("--tolerance", type=float, default=0.02, help="largest barrier counted as stable (fraction)"),
    arg("--seed", type=int, default=0),
    arg("--limit", type=positive_int, default=1000, help="test images per evaluation (fixed seeded subset)"),
])
def instability_cmd(args, ctx) -> dict:
    cfg = InstabilityConfig(ks=_steps_list(args.ks), steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                            seed=args.seed, alphas=args.alphas, limit=args.limit, sparsity=args.sparsity,
                            tolerance=args.tolerance)
    summary = run_experiment(ctx, "instability", cfg, run_instability, on_progress=_progress)
    points = ctx.store.points(summary["run_id"])
    return {**summary, "points": sorted(points.values(), key=lambda p: p["k"])}


_TRAINING = [
    arg("--steps", type=positive_int, default=100, help="training steps"),
    arg("--batch-size", type=positive_int, default=128),
    arg("--scope", default="blocks", choices=list(SCOPES), help="which weights are pruned"),
    arg("--seed", type=int, default=0),
    arg("--limit", type=positive_int, default=1000, help="test images (fixed seeded subset)"),
]


def _experiment_command(name: str, help: str, cls, fn, arguments: list) -> None:
    """Register CLI command ``name``: ``cls`` from the arguments of the same names, run (or read back) as
    experiment kind ``name`` with ``fn``; prints its summary."""
    command(name, help, [*_TRAINING, *arguments])(
        lambda args, ctx: run_experiment(ctx, name, _config(cls, args), fn, on_progress=_progress))


_experiment_command("rigl", "RigL sparse fine-tuning: drop small weights, grow large gradients, sparsity exact",
                    RigLConfig, run_rigl, [
    arg("--target", type=fraction, default=0.8, help="sparsity of the scoped weights"),
    arg("--init", choices=list(INITS), default="omp", help="; ".join(f"{k}: {v}" for k, v in INITS.items())),
    arg("--update-every", type=positive_int, default=10, help="steps between drop-and-grow updates"),
    arg("--drop-fraction", type=fraction, default=0.3, help="fraction updated at the first update (cosine decayed)"),
    arg("--end", type=float, default=0.75, help="fraction of the steps after which the mask is fixed"),
    arg("--n", type=int, default=0, help="N:M variant: N kept in every group of M (with --m)"),
    arg("--m", type=int, default=0),
    arg("--lr", type=float, default=1e-4, help="peak AdamW learning rate"),
])
_experiment_command("supermask", "edge-popup: train only scores that pick the top-k weights of frozen weights",
                    SupermaskConfig, run_supermask, [
    arg("--density", type=float, default=0.5, help="fraction of each layer's weights kept, in (0, 1]"),
    arg("--init", choices=list(WEIGHTS), default="pretrained", help="; ".join(f"{k}: {v}" for k, v in WEIGHTS.items())),
    arg("--lr", type=float, default=1e-2, help="peak AdamW learning rate of the scores"),
])
_experiment_command("lota", "LoTA: fine-tune only the weights inside a task-vector mask, against dense fine-tuning",
                    LoTAConfig, run_lota, [
    arg("--sparsity", type=fraction, default=0.9, help="fraction of scoped weights frozen at pre-trained values"),
    arg("--calibrate-steps", type=positive_int, default=50, help="dense steps whose task vector picks the mask"),
    arg("--lr", type=float, default=1e-4, help="peak AdamW learning rate"),
])
_experiment_command("core-ticket", "the intersection of masks found on disjoint data partitions, against chance",
                    CoreTicketConfig, run_core_ticket, [
    arg("--partitions", type=positive_int, default=3, help="disjoint parts of the training set (at least 2)"),
    arg("--target", type=fraction, default=0.5, help="sparsity of each part's magnitude mask"),
    arg("--lr", type=float, default=1e-4, help="peak AdamW learning rate"),
])
