"""Lottery tickets by iterative magnitude pruning (IMP) with rewinding.

Frankle & Carbin, "The Lottery Ticket Hypothesis" (ICLR 2019), with the rewinding of Frankle
et al. (2020) and the protocol of the Essential Sparsity paper (Jaiswal et al., NeurIPS
2023), where the rewinding point is the *pre-trained* weights:

round 0: fine-tune the dense model from the rewinding point for ``steps``; record its accuracy;
         prune ``prune_fraction`` of the scoped weights by magnitude of the fine-tuned weights.
round r: the ticket is rewind_weights * mask_r; fine-tune it for ``steps`` with the mask held
         fixed; record its accuracy (the ticket's accuracy at sparsity s_r after the same
         budget as the dense run); prune ``prune_fraction`` of the *remaining* weights by
         magnitude of these fine-tuned weights to get mask_{r+1}.
until the target sparsity is reached (the last step is clipped to land on it exactly).

Each round stores its point, its mask (``mask-round-r.safetensors``) and the next round's
mask before anything else happens, so a stopped run resumes at the next round and equals an
uninterrupted one (every round trains with seed ``seed + r``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..context import Context
from ..errors import LotusError
from ..jobs import JOBS, JobSpec
from ..pruning.mask import Mask
from ..pruning.scope import scoped_parameters
from ..runs import Run
from ..training import TrainConfig, apply_mask_, train
from .common import load_state_bytes, magnitude_mask, schedule, state_bytes


@dataclass(frozen=True)
class LTHConfig:
    """Iterative magnitude pruning with rewinding. Sparsities are fractions of scoped weights."""

    target: float = 0.8  # final sparsity
    prune_fraction: float = 0.2  # fraction of the remaining weights pruned per round
    steps: int = 100  # fine-tuning steps per round (batch_size images each)
    lr: float = 1e-4  # peak AdamW learning rate of each round's fine-tuning
    batch_size: int = 128
    rewind: str = "pretrained"  # "pretrained" or "step:K" (weights after K dense fine-tuning steps)
    scope: str = "blocks"
    seed: int = 0
    limit: int = 1000  # test images per evaluation


def check_config(cfg: LTHConfig) -> None:
    if not 0 < cfg.target < 1:
        raise LotusError(f"target sparsity {cfg.target} is outside (0, 1)")
    if not 0 < cfg.prune_fraction < 1:
        raise LotusError(f"prune fraction {cfg.prune_fraction} is outside (0, 1); the default is 0.2")
    if cfg.rewind != "pretrained" and not (cfg.rewind.startswith("step:") and cfg.rewind[5:].isdigit()):
        raise LotusError(f"rewind {cfg.rewind!r} is not 'pretrained' or 'step:K' (e.g. step:50)")


def _train_config(cfg: LTHConfig, steps: int, seed: int) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0, seed=seed)


def rewind_state(ctx: Context, cfg: LTHConfig, run: Run) -> bytes:
    """The weights every ticket is rewound to (stored, so resumes and controls reuse them)."""
    data = run.blob("rewind.safetensors")
    if data is None:
        model = ctx.copy_model()
        if cfg.rewind.startswith("step:"):
            train(model, ctx.train, _train_config(cfg, int(cfg.rewind[5:]), cfg.seed), ctx.data_config)
        data = run.blob("rewind.safetensors", state_bytes(model))
    return data


def ticket(ctx: Context, rewind: bytes, mask: Mask):
    """A fresh copy of the model at the rewinding point with ``mask`` applied."""
    model = load_state_bytes(ctx.copy_model(), rewind)
    apply_mask_(model, mask)
    return model


def run_lth(ctx: Context, cfg: LTHConfig, run: Run) -> dict:
    """Experiment: IMP rounds until ``cfg.target`` (see the module docstring)."""
    check_config(cfg)
    levels = [0.0] + schedule(cfg.target, cfg.prune_fraction)
    rewind = rewind_state(ctx, cfg, run)
    for r, sparsity in enumerate(levels):
        key = f"round-{r}"
        if run.has(key):
            continue
        t0 = time.perf_counter()
        mask = Mask.from_bytes(run.blob(f"mask-round-{r}.safetensors")) if r else \
            Mask.ones(scoped_parameters(ctx.model, cfg.scope))
        model = ticket(ctx, rewind, mask)
        train(model, ctx.train, _train_config(cfg, cfg.steps, cfg.seed + r), ctx.data_config, mask=mask,
              should_stop=run.stopped)
        run.check()
        res = ctx.evaluate(model, limit=cfg.limit, seed=cfg.seed)
        if r + 1 < len(levels):
            run.blob(f"mask-round-{r + 1}.safetensors",
                     magnitude_mask(model, levels[r + 1], cfg.scope, within=mask).to_bytes())
        run.point(key, {"round": r, "sparsity": mask.sparsity, "accuracy": res.accuracy, "ci_low": res.ci95[0],
                        "ci_high": res.ci95[1], "steps": cfg.steps, "elapsed_s": time.perf_counter() - t0})
        run.progress(round=r, of=len(levels) - 1, sparsity=mask.sparsity, accuracy=res.accuracy)
    points = [run.get(f"round-{r}") for r in range(len(levels))]
    return {"rounds": len(levels) - 1, "final_sparsity": points[-1]["sparsity"], "final_accuracy": points[-1]["accuracy"],
            "dense_finetuned_accuracy": points[0]["accuracy"], "train_steps": cfg.steps * len(levels)
            + (int(cfg.rewind[5:]) if cfg.rewind.startswith("step:") else 0),
            "train_time_s": sum(p["elapsed_s"] for p in points)}


def round_masks(ctx: Context, run_id: str) -> dict[int, Mask]:
    """The stored masks of an LTH or ISSP run, by round."""
    out = {}
    for name in ctx.store.blob_names(run_id):
        if name.startswith("mask-round-"):
            r = int(name[len("mask-round-"):].split(".")[0])
            if ctx.store.get_point(run_id, f"round-{r}") is not None:
                out[r] = Mask.from_bytes(ctx.store.get_blob(run_id, name))
    return dict(sorted(out.items()))


JOBS["lth"] = JobSpec(LTHConfig, run_lth)
