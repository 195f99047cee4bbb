"""Lottery-ticket commands: lth, lth-control, soup (ISSP), soup-sweep, instability, rigl, supermask, lota,
core-ticket, similarity.

``lth``, ``lth-control`` and ``soup`` run through :func:`lotus_core.results.runs.run_experiment`, the
function the dashboard's background jobs call: a finished run is read back from the store and
an interrupted one resumes at its next round.
"""
from __future__ import annotations

import dataclasses

from ..core.config import from_mapping
from ..core.errors import LotusError
from . import (arg, command, config_args, fraction, learning_rate, non_negative_int, positive_int, seed,  # noqa: F401
               share)
from .pruning import _progress


def _shared_types() -> dict:
    from ..pruning import SCOPES

    return dict(target=fraction, batch_size=positive_int, limit=positive_int, scope={"choices": list(SCOPES)},
                lr=learning_rate, seed=seed)


def _issp_types() -> dict:
    from ..lottery.issp import MERGES

    return dict(per_round=fraction, denoisers=positive_int, lookahead_steps=positive_int, data_fraction=share,
                finetune_steps=non_negative_int, merge={"choices": list(MERGES)}, **_shared_types())


def _lth() -> list:
    from ..lottery.lth import LTHConfig

    return config_args(LTHConfig, prune_fraction=fraction, steps=positive_int, **_shared_types())


def _issp() -> list:
    from ..lottery.issp import ISSPConfig

    return config_args(ISSPConfig, **_issp_types())


_MASK_OUT = arg("--mask-out", default=None, help="write the final mask as safetensors")


def _config(cls, args):
    """``cls`` (a config dataclass) from the parsed arguments of the same names."""
    return from_mapping(cls, vars(args))


def _run_ticket(ctx, args, kind: str) -> dict:
    """Run (or read back) the ticket experiment ``kind``; its summary, per-round points and, with
    ``--mask-out``, the last round's mask written to that file."""
    from ..lottery.common import round_masks
    from ..results.registry import get_experiment
    from ..results.runs import run_experiment

    summary = run_experiment(ctx, kind, _config(get_experiment(kind).config_cls, args), on_progress=_progress)
    points = ctx.store.points(summary["run_id"])
    if args.mask_out:
        masks = round_masks(ctx.store, summary["run_id"])
        masks[max(masks)].save(args.mask_out)
    return {**summary, "points": [p for k, p in points.items() if k.startswith("round-")],
            "final": points.get("final"), "mask_out": args.mask_out}


@command("lth", "lottery tickets: iterative magnitude pruning with rewinding, fine-tuned every round",
         lambda: [*_lth(), _MASK_OUT])
def lth_cmd(args, ctx) -> dict:
    return _run_ticket(ctx, args, "lth")


def _control_args() -> list:
    from ..lottery.controls import CONTROLS

    return [*_lth(),
            arg("--round", type=positive_int, required=True, help="the LTH round whose mask is controlled"),
            arg("--kind", choices=list(CONTROLS), default="shuffle",
                help="; ".join(f"{k}: {v}" for k, v in CONTROLS.items())),
            arg("--control-seed", type=seed, default=0, help="random draw of the shuffle or re-initialisation")]


@command("lth-control", "a ticket's control: its mask re-initialised or shuffled within layers, same fine-tune",
         _control_args)
def control_cmd(args, ctx) -> dict:
    from ..lottery.controls import ControlConfig, run_control
    from ..lottery.lth import LTHConfig
    from ..results.runs import run_experiment

    cfg = ControlConfig(_config(LTHConfig, args), args.round, args.kind, args.control_seed)
    return run_experiment(ctx, "lth-control", cfg, on_progress=_progress)


@command("soup", "Instant Sparse Soup Pruning (ISSP): masks from merged look-aheads, then a fine-tune",
         lambda: [*_issp(), _MASK_OUT])
def soup_cmd(args, ctx) -> dict:
    return _run_ticket(ctx, args, "issp")


def _soup_sweep_args() -> list:
    from ..lottery.issp import ISSPConfig

    return config_args(ISSPConfig, skip=("data_fraction",), **_issp_types())


@command("soup-sweep", "ISSP at several data fractions (does the ticket collapse at 10%?)", lambda: [
    *_soup_sweep_args(),
    arg("--data-fractions", default="0.1,0.3,1.0", help="comma-separated fractions of the training set"),
])
def soup_sweep_cmd(args, ctx) -> dict:
    from ..lottery.issp import ISSPConfig, data_fraction_sweep

    try:
        fractions = [float(x) for x in args.data_fractions.split(",") if x.strip()]
    except ValueError:
        raise LotusError(f"cannot read data fractions {args.data_fractions!r}; give a list such as 0.1,0.3,1.0") from None
    base = _config(ISSPConfig, args)
    for f in fractions:  # every fraction is checked before the first run is recorded
        dataclasses.replace(base, data_fraction=f)
    table = data_fraction_sweep(ctx, base, fractions, on_progress=_progress)
    return {"runs": table.to_dict(orient="records")}


@command("similarity", "cosine and Jaccard similarity of two masks, each with its chance level", [
    arg("mask_a", help="safetensors mask (prune/lth/soup --mask-out)"), arg("mask_b"),
], context=False)
def similarity_cmd(args, ctx) -> dict:
    from ..pruning.mask import Mask
    from ..pruning.similarity import mask_similarity

    return mask_similarity(Mask.load(args.mask_a), Mask.load(args.mask_b))


def _steps_list(text: str) -> tuple[int, ...]:
    """The rewinding points of ``0,10,25`` (a LotusError on anything else)."""
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise LotusError(f"cannot read rewinding points {text!r}; give whole steps such as 0,10,25,50") from None
    if not ks:
        raise LotusError("no rewinding points given; give whole steps such as 0,10,25,50")
    return ks


def _instability_args() -> list:
    from ..lottery.instability import InstabilityConfig

    return config_args(InstabilityConfig, ks={"type": str, "default": "0,10,25,50"}, steps=positive_int,
                       batch_size=positive_int, alphas=positive_int, sparsity=fraction, limit=positive_int)


@command("instability", "error barrier between two copies trained from step k with different data orders",
         _instability_args)
def instability_cmd(args, ctx) -> dict:
    from ..lottery.instability import InstabilityConfig
    from ..results.runs import run_experiment

    cfg = from_mapping(InstabilityConfig, {**vars(args), "ks": _steps_list(args.ks)})
    summary = run_experiment(ctx, "instability", cfg, on_progress=_progress)
    points = ctx.store.points(summary["run_id"])
    return {**summary, "points": sorted(points.values(), key=lambda p: p["k"])}


def _experiment_command(name: str, help: str, config: str, types) -> None:
    """Register CLI command ``name``: flags from the fields of the config class ``config`` (``module:Class``,
    imported only when the command is parsed; ``types()``: their argparse types or keywords), run (or read
    back) as experiment kind ``name``; prints its summary."""
    def cls():
        import importlib

        module, name_ = config.split(":")
        return getattr(importlib.import_module(module, __package__), name_)

    def run(args, ctx):
        from ..results.runs import run_experiment

        return run_experiment(ctx, name, _config(cls(), args), on_progress=_progress)

    command(name, help, lambda: config_args(cls(), **types()))(run)


def _training() -> dict:
    from ..pruning import SCOPES

    return dict(steps=positive_int, batch_size=positive_int, limit=positive_int, scope={"choices": list(SCOPES)})


def _rigl_types() -> dict:
    from ..lottery.rigl import INITS

    return dict(target=fraction, init={"choices": list(INITS)}, update_every=positive_int, drop_fraction=fraction,
                **_training())


def _supermask_types() -> dict:
    from ..lottery.supermask import WEIGHTS

    return dict(init={"choices": list(WEIGHTS)}, **_training())


_experiment_command("rigl", "RigL sparse fine-tuning: drop small weights, grow large gradients, sparsity exact",
                    "..lottery.rigl:RigLConfig", _rigl_types)
_experiment_command("supermask", "edge-popup: train only scores that pick the top-k weights of frozen weights",
                    "..lottery.supermask:SupermaskConfig", _supermask_types)
_experiment_command("lota", "LoTA: fine-tune only the weights inside a task-vector mask, against dense fine-tuning",
                    "..lottery.lota:LoTAConfig", lambda: dict(sparsity=fraction, calibrate_steps=positive_int,
                                                             **_training()))
_experiment_command("core-ticket", "the intersection of masks found on disjoint data partitions, against chance",
                    "..lottery.core_ticket:CoreTicketConfig", lambda: dict(partitions=positive_int, target=fraction,
                                                                          **_training()))
