"""Instant Sparse Soup Pruning (ISSP): lottery-ticket masks from cheap, noisy look-aheads.

After Jaiswal et al., "Instant Soup: Cheap Pruning Ensembles in A Single Pass Can Draw Lottery
Tickets from Large Models" (ICML 2023): Algorithm 1 (Instant Soup Pruning: weak masks from
short trainings on data subsets, superposed to average out their noise) with the weight
averaging of its Algorithm 2 (the instant model soup), as LOTUS used it. The compression
schedule prunes ``per_round`` of the remaining scoped weights per round (default 15%), with
pruned counts as in :func:`~lotus_core.lottery.common.prune_counts`. Round r, from the current
weights theta and mask m_{r-1} (all ones before round 1), to k_r pruned weights (sparsity s_r):

1. the starting point is the magnitude mask of theta at s_r (the IMP step, recorded to
   show how much the soup changes it);
2. each of N denoisers (default 5) draws a random fraction f of the training set (default
   10%), runs C look-ahead steps (default 50) from theta *under m_{r-1}*, and takes its own
   magnitude mask at s_r (the round's increment pruned among m_{r-1}'s survivors).
   Look-aheads run under m_{r-1}, not under the s_r mask: pruned weights stay exactly zero,
   so a model trained under the s_r mask hands that very mask back and the soup would be a
   no-op. The authors' code does the same (weak models under the previous mask, pruned after);
3. the N masks are merged: ``union`` (a weight survives if any denoiser keeps it: the
   paper's), ``intersection`` (if all do) or ``majority`` (if more than half do);
4. the N look-ahead models' weights are averaged: the soup is the next theta;
5. the merge is re-projected to exactly k_r pruned weights by soup magnitude: a union
   prunes too few, so its smallest soup weights go; an intersection prunes too many, so the
   largest soup weights it lost (among m_{r-1}'s survivors) come back. Masks stay nested.
   (The authors' code lets the union lag the schedule and prunes the remainder at the end;
   re-projecting each round keeps every round at its scheduled sparsity, comparable with LTH.)

After the last round the soup with the final mask is fine-tuned for ``finetune_steps`` and
evaluated. Round points record the masked soup's accuracy *before* that fine-tune; the
``final`` point the fine-tuned ticket's. Each round stores its mask and soup weights the
moment it ends, so a stopped run resumes at the next round and equals an uninterrupted one.
Cost (training steps, wall time) is N x C per round plus the final fine-tune.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from ..context import Context
from ..core.errors import LotusError
from ..training.finetune import finetune
from ..core.mask import Mask, apply_mask_
from ..pruning.scope import scoped_parameters
from ..results.executors.base import Pool
from ..results.executors import get_executor, run_together, track
from ..results.registry import ExperimentSpec, register_experiment
from ..results.runs import Run, run_experiment, run_id_for
from ..training.train import TrainConfig, train
from .common import ticket_curve, ticket_headline, load_state_bytes, mask_blob, prune_counts, prune_remaining, regrow, state_bytes

MERGES = {
    "union": "a weight survives if any denoiser keeps it (the paper's)",
    "intersection": "a weight survives if every denoiser keeps it",
    "majority": "a weight survives if more than half of the denoisers keep it",
}


@dataclass(frozen=True)
class ISSPConfig:
    """Instant Sparse Soup Pruning. Sparsities and the data fraction are fractions."""

    target: float = 0.8  # final sparsity of the scoped weights
    per_round: float = 0.15  # fraction of the remaining scoped weights pruned per round
    denoisers: int = 5  # N look-ahead models per round
    lookahead_steps: int = 50  # C training steps of each look-ahead
    data_fraction: float = 0.1  # f: each look-ahead draws its batches from this random fraction of the training set
    merge: str = "union"  # union | intersection | majority (see MERGES)
    finetune_steps: int = 100  # after the last round, with the final mask held fixed
    lr: float = 1e-4  # peak AdamW learning rate of look-aheads and fine-tune (cosine decay, no weight decay)
    batch_size: int = 128  # training images per step
    scope: str = "blocks"  # which weights are pruned (lotus_core.pruning.scope.SCOPES)
    seed: int = 0  # data subsets, batch orders and the fixed test subset
    limit: int = 1000  # test images per evaluation

    def __post_init__(self) -> None:  # refused before any run is recorded (no 'failed' rows for bad input)
        check_config(self)


def merge_masks(masks: Sequence[Mask], rule: str) -> Mask:
    """Union, intersection or majority vote (more than half) of keep-masks."""
    if rule not in MERGES:
        raise LotusError(f"unknown merge rule {rule!r}; choose one of {', '.join(MERGES)}")
    out = {}
    for name in masks[0]:
        votes = torch.stack([m[name] for m in masks]).sum(0)  # (N, ...) -> keep votes per weight
        out[name] = votes > 0 if rule == "union" else votes == len(masks) if rule == "intersection" \
            else votes * 2 > len(masks)
    return Mask(out)


def reproject(merged: Mask, soup: nn.Module, previous: Mask, num_pruned: int, scope: str = "blocks") -> Mask:
    """``merged`` brought to exactly ``num_pruned`` pruned weights by soup magnitude (step 5)."""
    if merged.num_pruned() <= num_pruned:
        return prune_remaining(soup, merged, num_pruned, scope)
    return regrow(soup, merged, previous, num_pruned, scope)


def check_config(cfg: ISSPConfig) -> None:
    if not 0 < cfg.data_fraction <= 1:
        raise LotusError(f"data fraction {cfg.data_fraction} is outside (0, 1]; give a fraction such as 0.1")
    if cfg.denoisers < 1 or cfg.lookahead_steps < 1:
        raise LotusError("ISSP needs at least one denoiser and one look-ahead step")
    if cfg.finetune_steps < 0:
        raise LotusError(f"fine-tuning steps {cfg.finetune_steps} must not be negative")
    if cfg.merge not in MERGES:
        raise LotusError(f"unknown merge rule {cfg.merge!r}; choose one of {', '.join(MERGES)}")


def issp_counts(ctx: Context, cfg: ISSPConfig) -> list[int]:
    """Pruned scoped weights after rounds 1, 2, ..."""
    check_config(cfg)
    total = sum(p.numel() for p in scoped_parameters(ctx.model, cfg.scope).values())
    return prune_counts(total, cfg.target, cfg.per_round)


def lookahead(ctx: Context, cfg: ISSPConfig, theta: dict[str, torch.Tensor], mask: Mask, r: int, i: int,
              should_stop: Callable[[], bool] | None = None) -> nn.Module:
    """Denoiser ``i`` of round ``r``: C steps from weights ``theta`` under ``mask`` on a random fraction f of the data."""
    seed = cfg.seed * 1_000_003 + r * 1_009 + i
    subset = torch.randperm(len(ctx.train), generator=torch.Generator().manual_seed(seed))
    subset = subset[: max(1, round(cfg.data_fraction * len(ctx.train)))]
    model = ctx.copy_model()
    model.load_state_dict(theta)
    train(model, ctx.train, TrainConfig(steps=cfg.lookahead_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                        weight_decay=0.0, seed=seed), ctx.data_config, mask=mask, indices=subset,
          should_stop=should_stop)
    return model


def denoiser_state(ctx: Context, cfg: ISSPConfig) -> tuple[Context, ISSPConfig]:
    """Executor state of an ISSP run: the base model and the training split, shipped once."""
    return ctx, cfg


def denoiser(state: tuple[Context, ISSPConfig], unit: tuple) -> dict:
    """Executor unit: denoiser ``i`` of round ``r`` (step 2): its look-ahead weights and weak mask."""
    ctx, cfg = state
    r, i, num_pruned, theta, mask = unit
    model = lookahead(ctx, cfg, theta, mask, r, i)
    return {"i": i, "state": model.state_dict(), "mask": prune_remaining(model, mask, num_pruned, cfg.scope)}


def issp_round(ctx: Context, cfg: ISSPConfig, run: Run, pool: Pool, theta: nn.Module, mask: Mask, r: int,
               num_pruned: int, rounds: int) -> tuple[nn.Module, Mask, dict]:
    """Steps 1-5 of round ``r``: the soup (masked), its mask and round statistics.

    The N denoisers are units on ``pool``; their weights are summed in denoiser order (as
    they become contiguous), so the soup is the same whatever order they arrive in.
    """
    start = prune_remaining(theta, mask, num_pruned, cfg.scope)
    theta_ref, mask_ref = pool.share(theta.state_dict()), pool.share(mask)
    units = {f"denoiser-{i}": (r, i, num_pruned, theta_ref, mask_ref) for i in range(cfg.denoisers)}
    weak, total, arrived = [], None, {}
    batch = pool.map(denoiser, units)
    for outcome in track(run, batch, pool.slots, 0, cfg.denoisers,
                         describe=lambda res: {"round": r, "of": rounds, "denoiser": res["i"] + 1,
                                               "denoisers": cfg.denoisers}):
        arrived[outcome.result["i"]] = outcome.result
        while len(weak) in arrived:  # the next denoiser in order
            res = arrived.pop(len(weak))
            weak.append(res["mask"])
            state = {k: v.detach().double() for k, v in res["state"].items()}
            total = state if total is None else {k: total[k] + v for k, v in state.items()}
    soup = ctx.copy_model()
    soup.load_state_dict({k: (v / cfg.denoisers).to(theta.state_dict()[k].dtype) for k, v in total.items()})
    merged = merge_masks(weak, cfg.merge)
    new = reproject(merged, soup, mask, num_pruned, cfg.scope)
    apply_mask_(soup, new)
    stats = {"merged_sparsity": merged.sparsity,
             "changed_vs_magnitude": sum(int((new[n] != start[n]).sum()) for n in new) / new.numel()}
    return soup, new, stats


def state_after(ctx: Context, cfg: ISSPConfig, run: Run, r: int) -> tuple[nn.Module, Mask]:
    """The (masked) soup and mask stored after round ``r``; round 0: the base model, nothing pruned."""
    if r == 0:
        return ctx.copy_model(), Mask.ones(scoped_parameters(ctx.model, cfg.scope))
    return (load_state_bytes(ctx.copy_model(), run.blob(f"soup-round-{r}.safetensors")),
            Mask.from_bytes(run.blob(mask_blob(r))))


def run_issp(ctx: Context, cfg: ISSPConfig, run: Run) -> dict:
    """Experiment: the ISSP rounds, then the final fine-tune (see the module docstring).

    Points ``round-r``: round, sparsity, num_pruned, accuracy (masked soup, before the final
    fine-tune) with its Wilson 95% interval, merged_sparsity (the merge before re-projection),
    changed_vs_magnitude (fraction of scoped weights whose keep/prune differs from plain
    magnitude pruning of the same weights), steps, elapsed_s. Point ``final``: the fine-tuned
    ticket. Blobs: ``mask-round-r`` and ``soup-round-r`` (weights).
    """
    counts = issp_counts(ctx, cfg)
    theta, mask, at = None, None, None  # the soup and mask after round `at`
    pool = get_executor(ctx.executor).pool(denoiser_state, ctx, cfg, train=True)
    for r, num_pruned in enumerate(counts, start=1):
        if run.has(f"round-{r}"):
            continue
        if at != r - 1:
            theta, mask = state_after(ctx, cfg, run, r - 1)
        t0 = time.perf_counter()
        theta, mask, stats = issp_round(ctx, cfg, run, pool, theta, mask, r, num_pruned, len(counts))
        at = r
        res = ctx.evaluate(theta, limit=cfg.limit, seed=cfg.seed)
        run.blob(f"soup-round-{r}.safetensors", state_bytes(theta))
        run.blob(mask_blob(r), mask.to_bytes())
        run.point(f"round-{r}", {"round": r, "sparsity": mask.sparsity, "num_pruned": mask.num_pruned(),
                                 "accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n,
                                 **stats, "steps": cfg.denoisers * cfg.lookahead_steps,
                                 "elapsed_s": time.perf_counter() - t0})
        run.progress(round=r, of=len(counts), sparsity=mask.sparsity, accuracy=res.accuracy)
    if not run.has("final"):
        t0 = time.perf_counter()
        if at != len(counts):
            theta, mask = state_after(ctx, cfg, run, len(counts))
        trained = finetune(theta, mask, ctx.train, ctx.data_config, cfg.finetune_steps, cfg.lr, cfg.batch_size,
                           cfg.seed, should_stop=run.stopped,
                           on_progress=lambda p: run.progress(round=len(counts), of=len(counts), step=p.step,
                                                              steps=p.steps, loss=p.loss))
        run.check()
        res = ctx.evaluate(theta, limit=cfg.limit, seed=cfg.seed)
        run.point("final", {"sparsity": mask.sparsity, "num_pruned": mask.num_pruned(), "accuracy": res.accuracy,
                            "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n, "steps": cfg.finetune_steps,
                            "elapsed_s": time.perf_counter() - t0, "losses": [round(x, 5) for x in trained.losses]})
    points = [run.get(f"round-{r}") for r in range(1, len(counts) + 1)] + [run.get("final")]
    return {"rounds": len(counts), "final_sparsity": points[-1]["sparsity"], "final_accuracy": points[-1]["accuracy"],
            "before_finetune_accuracy": points[-2]["accuracy"], "train_steps": sum(p["steps"] for p in points),
            "train_time_s": sum(p["elapsed_s"] for p in points)}


def data_fraction_sweep(ctx: Context, cfg: ISSPConfig, fractions: Sequence[float] = (0.1, 0.3, 1.0),
                        on_progress: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """ISSP at each data fraction f (all else as ``cfg``): does the ticket collapse at 10%?

    Each fraction is its own stored, resumable run; on a Ray executor the runs go together
    (:func:`~lotus_core.results.executors.run_together`). Columns: data_fraction, final_sparsity,
    final_accuracy, before_finetune_accuracy, train_steps, train_time_s, run_id.
    """
    configs = [dataclasses.replace(cfg, data_fraction=float(f)) for f in fractions]
    summaries = run_together(ctx, [(run_id_for(ctx, "issp", c), functools.partial(
        run_experiment, ctx, "issp", c, run_issp, on_progress)) for c in configs])
    return pd.DataFrame([{"data_fraction": c.data_fraction, **{k: summary[k] for k in (
        "final_sparsity", "final_accuracy", "before_finetune_accuracy", "train_steps", "train_time_s", "run_id")}}
        for c, summary in zip(configs, summaries)])


register_experiment(ExperimentSpec("issp", ISSPConfig, run_issp, ticket_headline, ticket_curve, job=True))
