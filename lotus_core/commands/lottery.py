"""Lottery-ticket commands: lth, lth-control, soup (ISSP), soup-sweep, instability, rigl, supermask, lota,
core-ticket, ticket-transfer, similarity.

``lth``, ``lth-control`` and ``soup`` run through :func:`lotus_core.results.runs.run_experiment`, the
function the dashboard's background jobs call: a finished run is read back from the store and
an interrupted one resumes at its next round.
"""
from __future__ import annotations

import argparse
import dataclasses

from ..core.config import from_args
from ..core.errors import LotusError
from . import (arg, comma_list, command, config_args, enough_images, fraction, learning_rate,  # noqa: F401
               non_negative_int, output_path, positive_int, seed, share)
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
    return from_args(cls, vars(args))


def _run_ticket(ctx, args, kind: str) -> dict:
    """Run (or read back) the ticket experiment ``kind``; its summary, per-round points and, with
    ``--mask-out``, the last round's mask written to that file."""
    from ..results.registry import get_experiment
    from ..results.runs import run_experiment

    output_path(args.mask_out, "--mask-out")
    config = _config(get_experiment(kind).config_cls, args)
    if kind == "issp":
        enough_images(ctx, config.data_fraction, "--data-fraction")
    summary = run_experiment(ctx, kind, config, on_progress=_progress)
    return _ticket_output(ctx, summary, args.mask_out)


def _ticket_output(ctx, summary: dict, mask_out: str | None = None) -> dict:
    """A stored ticket run's summary with its per-round points; with ``mask_out``, its last mask written there."""
    from ..lottery.common import round_masks

    points = ctx.store.points(summary["run_id"])
    if mask_out:
        masks = round_masks(ctx.store, summary["run_id"])
        masks[max(masks)].save(mask_out)
    return {**summary, "points": [p for k, p in points.items() if k.startswith("round-")],
            "final": points.get("final"), "mask_out": mask_out}


def _lth_args() -> list:
    return [*_lth(), _MASK_OUT,
            arg("--seeds", type=comma_list(int, lambda v: 0 <= v < 2 ** 32, "seeds in 0..4294967295"), default=None,
                help="several runs submitted together, one per seed (e.g. 0,1,2; with --executor ray they share the "
                     "cluster); replaces --seed"),
            arg("--rewinds", type=comma_list(str, bool, "rewinding points"), default=None,
                help="several runs, one per rewinding point (e.g. pretrained,step:50); replaces --rewind")]


@command("lth", "lottery tickets: iterative magnitude pruning with rewinding, fine-tuned every round", _lth_args)
def lth_cmd(args, ctx) -> dict:
    from ..lottery.lth import LTHConfig, run_lths

    seeds, rewinds = args.seeds or (args.seed,), args.rewinds or (args.rewind,)
    if len(seeds) * len(rewinds) == 1:
        return _run_ticket(ctx, argparse.Namespace(**{**vars(args), "seed": seeds[0], "rewind": rewinds[0]}), "lth")
    if args.mask_out:
        raise LotusError("--mask-out writes one run's mask: give one seed and one rewinding point, or leave it out")
    base = _config(LTHConfig, args)
    configs = [dataclasses.replace(base, seed=s, rewind=w) for w in rewinds for s in seeds]  # each checked here
    summaries = run_lths(ctx, configs, on_progress=_progress)
    return {"runs": [{"seed": c.seed, "rewind": c.rewind, **_ticket_output(ctx, s)} for c, s in zip(configs, summaries)]}


def _control_args() -> list:
    from ..lottery.controls import CONTROLS

    return [*_lth(),
            arg("--round", type=positive_int, required=True, help="the LTH round whose mask is controlled"),
            arg("--kind", choices=list(CONTROLS), default="shuffle",
                help="; ".join(f"{k}: {v}" for k, v in CONTROLS.items())),
            arg("--control-seed", type=seed, default=0, help="random draw of the shuffle or re-initialisation"),
            arg("--kinds", type=comma_list(str, lambda v: v in CONTROLS, f"controls ({', '.join(CONTROLS)})"),
                default=None, help="several controls submitted together, one per kind (e.g. reinit,shuffle; with "
                                   "--executor ray they share the cluster); replaces --kind"),
            arg("--control-seeds", type=comma_list(int, lambda v: 0 <= v < 2 ** 32, "seeds in 0..4294967295"),
                default=None, help="several controls, one per random draw (e.g. 0,1,2); replaces --control-seed")]


@command("lth-control", "a ticket's control: its mask re-initialised or shuffled within layers, same fine-tune",
         _control_args)
def control_cmd(args, ctx) -> dict:
    from ..lottery.controls import ControlConfig, run_controls
    from ..lottery.lth import LTHConfig
    from ..results.runs import run_experiment

    lth = _config(LTHConfig, args)
    kinds, seeds = args.kinds or (args.kind,), args.control_seeds or (args.control_seed,)
    configs = [ControlConfig(lth, args.round, k, s) for k in kinds for s in seeds]
    if len(configs) == 1:
        return run_experiment(ctx, "lth-control", configs[0], on_progress=_progress)
    summaries = run_controls(ctx, configs, on_progress=_progress)
    return {"runs": [{"kind": c.control, "control_seed": c.seed, **s} for c, s in zip(configs, summaries)]}


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
        enough_images(ctx, f, "--data-fractions")
    table = data_fraction_sweep(ctx, base, fractions, on_progress=_progress)
    return {"runs": table.to_dict(orient="records")}


@command("similarity", "cosine and Jaccard similarity of two masks, each with its chance level", [
    arg("mask_a", help="safetensors mask (prune/lth/soup --mask-out)"), arg("mask_b"),
], context=False)
def similarity_cmd(args, ctx) -> dict:
    from ..core.mask import Mask
    from ..pruning.similarity import mask_similarity

    return mask_similarity(Mask.load(args.mask_a), Mask.load(args.mask_b))


def _steps_list(text: str, steps: int | None = None) -> tuple[int, ...]:
    """The rewinding points of ``0,10,25`` (a LotusError on anything else)."""
    try:
        ks = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise LotusError(f"cannot read rewinding points {text!r}; give whole steps such as 0,10,25,50") from None
    if not ks:
        raise LotusError("no rewinding points given; give whole steps such as 0,10,25,50")
    if ks[0] < 0 or (steps is not None and ks[-1] > steps):
        bad = ks[0] if ks[0] < 0 else ks[-1]
        raise LotusError(f"rewinding point {bad} is outside 0..{steps if steps is not None else 'steps'}; "
                         "give steps of the dense run such as 0,10,25,50")
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

    cfg = from_args(InstabilityConfig, {**vars(args), "ks": _steps_list(args.ks, args.steps)})
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
_experiment_command("ticket-transfer", "does a ticket transfer? a mask found on --source, trained on --dataset, "
                    "against the dataset's own ticket and a random one", "..lottery.ticket_transfer:TicketTransferConfig",
                    lambda: dict(target=fraction, **_training()))
