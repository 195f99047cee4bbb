"""Instant Sparse Soup Pruning (ISSP).

After "Instant Soup: Cheap Pruning Ensembles in A Single Pass Can Draw Lottery Tickets from
Large Models" (Jaiswal et al., ICML 2023), Algorithms 1 and 2, as LOTUS used it. Per round
of the compression schedule (``per_round`` of the remaining weights, default 15%):

1. start from the magnitude mask of the current weights at the round's sparsity s_r;
2. for each of N denoisers (default 5): draw a random fraction f of the training data
   (default 10%), run C look-ahead steps (default 50) from the current weights with that
   mask, and take the trained model's magnitude mask at s_r;
3. merge the N masks: ``union`` (the paper's), ``intersection`` or ``majority`` vote, and
   average the N trained models' weights (the soup);
4. re-project to exactly s_r: the merged set's entries rank above all others, ties broken by
   the soup's magnitudes (a union is denser than s_r, so its weakest soup weights go; an
   intersection is sparser, so the strongest remaining soup weights come back);
5. the soup, masked, is the current model of the next round.

After the last round the ticket is fine-tuned for ``finetune_steps`` and evaluated. Each
round stores its point (accuracy before the final fine-tune) and mask; the soup weights
are stored too, so a stopped run resumes at the next round.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..context import Context
from ..errors import LotusError
from ..jobs import JOBS, JobSpec
from ..pruning.mask import Mask
from ..pruning.ranking import GlobalRanking
from ..pruning.scope import scoped_parameters
from ..runs import Run
from ..training import TrainConfig, apply_mask_, train
from .common import load_state_bytes, magnitude_mask, schedule, state_bytes

MERGES = ("union", "intersection", "majority")


@dataclass(frozen=True)
class ISSPConfig:
    """Instant Sparse Soup Pruning. Sparsities and the data fraction are fractions."""

    target: float = 0.8  # final sparsity
    per_round: float = 0.15  # fraction of the remaining weights pruned per round
    denoisers: int = 5  # N weak models per round
    lookahead_steps: int = 50  # C steps per denoiser
    data_fraction: float = 0.1  # f: each denoiser sees this random fraction of the training set
    merge: str = "union"  # union | intersection | majority
    finetune_steps: int = 100  # after the last round
    lr: float = 1e-4
    batch_size: int = 128
    scope: str = "blocks"
    seed: int = 0
    limit: int = 1000  # test images per evaluation


def merge_masks(masks: list[Mask], rule: str) -> Mask:
    """Union, intersection or majority vote of keep-masks."""
    if rule not in MERGES:
        raise LotusError(f"unknown merge rule {rule!r}; choose one of {', '.join(MERGES)}")
    out = {}
    for name in masks[0]:
        stack = torch.stack([m[name] for m in masks])
        out[name] = stack.any(0) if rule == "union" else stack.all(0) if rule == "intersection" \
            else stack.sum(0) * 2 > len(masks)
    return Mask(out)


def reproject(merged: Mask, soup, sparsity: float, scope: str) -> Mask:
    """Exactly ``sparsity``: merged entries first, then by soup magnitude (see module docstring)."""
    params = scoped_parameters(soup, scope)
    scores = {n: p.detach().abs().float() / (p.detach().abs().max() * len(params) + 1e-12) + merged[n].float()
              for n, p in params.items()}
    return GlobalRanking(scores).mask(sparsity)


def run_issp(ctx: Context, cfg: ISSPConfig, run: Run) -> dict:
    """Experiment: the ISSP rounds, then the final fine-tune (see the module docstring)."""
    if not 0 < cfg.data_fraction <= 1:
        raise LotusError(f"data fraction {cfg.data_fraction} is outside (0, 1]")
    if cfg.denoisers < 1 or cfg.lookahead_steps < 1:
        raise LotusError("ISSP needs at least one denoiser and one look-ahead step")
    merge_masks([Mask()], cfg.merge)
    levels = schedule(cfg.target, cfg.per_round)
    current = ctx.copy_model()
    mask = None
    steps = 0
    for r, sparsity in enumerate(levels, start=1):
        key = f"round-{r}"
        if run.has(key):
            current = load_state_bytes(current, run.blob(f"soup-round-{r}.safetensors"))
            mask = Mask.from_bytes(run.blob(f"mask-round-{r}.safetensors"))
            steps += cfg.denoisers * cfg.lookahead_steps
            continue
        t0 = time.perf_counter()
        start = magnitude_mask(current, sparsity, cfg.scope, within=mask)
        g = torch.Generator().manual_seed(cfg.seed * 1000 + r)
        n_sub = max(cfg.batch_size, round(cfg.data_fraction * len(ctx.train)))
        weak, states = [], []
        for i in range(cfg.denoisers):
            model = ctx.copy_model()
            model.load_state_dict(current.state_dict())
            subset = torch.randperm(len(ctx.train), generator=g)[:n_sub]
            train(model, ctx.train, TrainConfig(steps=cfg.lookahead_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                                weight_decay=0.0, seed=cfg.seed * 1000 + r * 10 + i),
                  ctx.data_config, mask=start, indices=subset, should_stop=run.stopped)
            run.check()
            weak.append(magnitude_mask(model, sparsity, cfg.scope))
            states.append(model.state_dict())
            steps += cfg.lookahead_steps
            run.progress(round=r, of=len(levels), denoiser=i + 1, denoisers=cfg.denoisers)
        soup = {k: torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype) for k in states[0]}
        current.load_state_dict(soup)
        mask = reproject(merge_masks(weak, cfg.merge), current, sparsity, cfg.scope)
        apply_mask_(current, mask)
        res = ctx.evaluate(current, limit=cfg.limit, seed=cfg.seed)
        run.blob(f"soup-round-{r}.safetensors", state_bytes(current))
        run.blob(f"mask-round-{r}.safetensors", mask.to_bytes())
        agreement = float(sum((w[n] == mask[n]).sum() for w in weak for n in mask)) / (len(weak) * mask.numel())
        run.point(key, {"round": r, "sparsity": mask.sparsity, "accuracy": res.accuracy, "ci_low": res.ci95[0],
                        "ci_high": res.ci95[1], "denoiser_agreement": agreement, "elapsed_s": time.perf_counter() - t0})
        run.progress(round=r, of=len(levels), sparsity=mask.sparsity, accuracy=res.accuracy)
    final = run.get("final")
    if final is None:
        t0 = time.perf_counter()
        train(current, ctx.train, TrainConfig(steps=cfg.finetune_steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                              weight_decay=0.0, seed=cfg.seed), ctx.data_config, mask=mask,
              should_stop=run.stopped)
        run.check()
        res = ctx.evaluate(current, limit=cfg.limit, seed=cfg.seed)
        final = {"sparsity": mask.sparsity, "accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1],
                 "elapsed_s": time.perf_counter() - t0}
        run.point("final", final)
    rounds = [run.get(f"round-{r}") for r in range(1, len(levels) + 1)]
    return {"rounds": len(levels), "final_sparsity": final["sparsity"], "final_accuracy": final["accuracy"],
            "train_steps": steps + cfg.finetune_steps,
            "train_time_s": sum(p["elapsed_s"] for p in rounds) + final["elapsed_s"]}


JOBS["issp"] = JobSpec(ISSPConfig, run_issp)
