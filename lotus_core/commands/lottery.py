"""Lottery-ticket commands: lth, soup (ISSP), lth-control, similarity."""
from __future__ import annotations

from ..lottery.controls import CONTROLS, ControlConfig, run_control
from ..lottery.issp import MERGES, ISSPConfig, run_issp
from ..lottery.lth import LTHConfig, round_masks, run_lth
from ..pruning.mask import Mask
from ..runs import run_experiment
from ..similarity import mask_similarity
from . import arg, command, fraction, positive_int
from .pruning import _progress

_SHARED = [
    arg("--target", type=fraction, default=0.8, help="final sparsity"),
    arg("--lr", type=float, default=1e-4),
    arg("--batch-size", type=positive_int, default=128),
    arg("--seed", type=int, default=0),
    arg("--limit", type=positive_int, default=1000, help="test images per evaluation"),
    arg("--mask-out", default=None, help="write the final mask as safetensors"),
]


def _lth_config(args) -> LTHConfig:
    return LTHConfig(target=args.target, prune_fraction=args.prune_fraction, steps=args.steps, lr=args.lr,
                     batch_size=args.batch_size, rewind=args.rewind, seed=args.seed, limit=args.limit)


def _rounds(ctx, run_id: str) -> list[dict]:
    return [p for k, p in ctx.store.points(run_id).items() if k.startswith("round-")]


def _write_final_mask(ctx, run_id: str, path: str | None) -> None:
    if path:
        masks = round_masks(ctx, run_id)
        masks[max(masks)].save(path)


_LTH_ARGS = [
    arg("--prune-fraction", type=fraction, default=0.2, help="fraction of the remaining weights pruned per round"),
    arg("--steps", type=positive_int, default=100, help="fine-tuning steps per round"),
    arg("--rewind", default="pretrained", help="'pretrained' or 'step:K' (late rewinding)"),
]


@command("lth", "lottery tickets by iterative magnitude pruning with rewinding", [*_SHARED, *_LTH_ARGS])
def lth_cmd(args, ctx) -> dict:
    summary = run_experiment(ctx, "lth", _lth_config(args), run_lth, on_progress=_progress)
    _write_final_mask(ctx, summary["run_id"], args.mask_out)
    return {**summary, "points": _rounds(ctx, summary["run_id"]), "mask_out": args.mask_out}


@command("lth-control", "fine-tune a ticket's mask re-initialised or shuffled within layers", [
    *_SHARED, *_LTH_ARGS,
    arg("--round", type=int, required=True, help="LTH round whose mask is controlled"),
    arg("--control", choices=CONTROLS, default="shuffle"),
])
def control_cmd(args, ctx) -> dict:
    return run_experiment(ctx, "lth-control", ControlConfig(_lth_config(args), args.round, args.control), run_control)


@command("soup", "Instant Sparse Soup Pruning (ISSP)", [
    *_SHARED,
    arg("--per-round", type=fraction, default=0.15, help="fraction of the remaining weights pruned per round"),
    arg("--denoisers", type=positive_int, default=5),
    arg("--lookahead-steps", type=positive_int, default=50),
    arg("--data-fraction", type=float, default=0.1, help="fraction of the training set each denoiser sees"),
    arg("--merge", choices=MERGES, default="union"),
    arg("--finetune-steps", type=int, default=100),
])
def soup_cmd(args, ctx) -> dict:
    cfg = ISSPConfig(target=args.target, per_round=args.per_round, denoisers=args.denoisers,
                     lookahead_steps=args.lookahead_steps, data_fraction=args.data_fraction, merge=args.merge,
                     finetune_steps=args.finetune_steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                     limit=args.limit)
    summary = run_experiment(ctx, "issp", cfg, run_issp, on_progress=_progress)
    _write_final_mask(ctx, summary["run_id"], args.mask_out)
    return {**summary, "points": _rounds(ctx, summary["run_id"]), "mask_out": args.mask_out}


@command("similarity", "cosine and Jaccard similarity of two masks, with chance levels", [
    arg("mask_a"), arg("mask_b"),
], context=False)
def similarity_cmd(args, ctx) -> dict:
    return mask_similarity(Mask.load(args.mask_a), Mask.load(args.mask_b))
