"""RigL: sparse fine-tuning that rewires its mask by dropping small weights and growing large gradients.

Evci, Gale, Menick, Castro & Elsen, "Rigging the Lottery: Making All Tickets Winners" (ICML 2020),
run as sparse fine-tuning of the pre-trained model: start from a mask at ``target`` (``omp``: the
global magnitude mask of the pre-trained weights; ``random``: a random mask with OMP's per-layer
counts) and fine-tune with it held fixed, except every ``update_every`` steps until ``end`` of the
run, when each layer drops the ``f_t`` fraction of its active weights with the smallest |w| and
grows as many inactive ones with the largest |dL/dw| (the dense gradient of that step; just-dropped
weights may be grown back, as in the paper's Algorithm 1). Grown weights start at zero with zero
optimizer moments, and an update iteration takes no optimizer step (the mask update replaces it), as
in the authors' code (google-research/rigl ``sparse_optimizers_base.py``,
``SparseRigLOptimizerBase.apply_gradients`` and ``reset_momentum``). The update
fraction decays as ``f_t = drop_fraction / 2 * (1 + cos(pi t / (end * steps)))``. Every layer keeps
exactly its number of active weights, so the sparsity is exact at every update. Deliberate
deviations (``round`` instead of the reference's count rule, no tie-breaking noise, AdamW): docs/audit.md.

The N:M variant (``m > 0``; after SRigL, Lasby et al., ICLR 2024): the start is the N:M magnitude
mask and an update swaps one weight in the ``f_t`` fraction of groups (of M consecutive inputs)
whose best grow candidate has the largest gradient, so every group keeps exactly N.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..context import Context
from ..core.errors import LotusError
from ..pruning import prune, random_like
from ..core.mask import Mask
from ..pruning.scope import scoped_parameters
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run
from ..training.train import TrainConfig, train

INITS = {"omp": "the global magnitude mask of the pre-trained weights",
         "random": "a random mask with the OMP mask's per-layer counts"}


@dataclass(frozen=True)
class RigLConfig:
    """RigL sparse fine-tuning. Sparsities and fractions are fractions; steps are training iterations (an
    update iteration changes the mask instead of taking an optimizer step)."""

    revision: ClassVar[int] = 1  # 1: no optimizer step on update iterations, grown moments reset (enters the key)

    target: float = 0.8  # sparsity of the scoped weights (ignored by the N:M variant: 1 - n/m)
    init: str = "omp"  # starting mask: omp | random (see INITS)
    steps: int = 100  # fine-tuning steps
    update_every: int = 10  # steps between drop-and-grow updates (the paper's Delta T)
    drop_fraction: float = 0.3  # f at the first update (the paper's alpha), cosine-decayed
    end: float = 0.75  # no updates after this fraction of the steps (the paper's T_end / T)
    n: int = 0  # N:M variant when m > 0: every group of m inputs keeps n
    m: int = 0
    lr: float = 1e-4  # peak AdamW learning rate (cosine decay, no weight decay)
    batch_size: int = 128  # training images per step
    scope: str = "blocks"  # which weights are pruned (lotus_core.pruning.scope.SCOPES)
    seed: int = 0  # batch order, the random start and the fixed test subset
    limit: int = 1000  # test images in the final evaluation


def update_fraction(step: int, cfg: RigLConfig) -> float:
    """f_t of the cosine schedule (0 outside update steps and after ``end``)."""
    horizon = cfg.end * cfg.steps
    if step == 0 or step % cfg.update_every or step >= horizon:
        return 0.0
    return cfg.drop_fraction / 2 * (1 + math.cos(math.pi * step / horizon))


def _smallest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool tensor marking the ``k`` smallest entries of ``scores`` (ties by position)."""
    out = torch.zeros(scores.numel(), dtype=torch.bool)
    out[torch.argsort(scores.reshape(-1), stable=True)[:k]] = True
    return out.reshape(scores.shape)


def drop_grow(weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], keep: Mask, fraction: float) -> Mask:
    """RigL's update: per tensor, drop the ``fraction`` of active entries with the smallest |w|, grow as
    many with the largest |grad| among the rest; the count of active entries per tensor is unchanged."""
    out = {}
    for name, active in keep.items():
        w, g = weights[name].detach().abs().float().cpu(), grads[name].detach().abs().float().cpu()
        k = round(fraction * int(active.sum()))  # grow candidates: the inactive plus the k dropped, always >= k
        drop = _smallest(torch.where(active, w, torch.full_like(w, math.inf)), k)
        after = active & ~drop
        grow = _smallest(torch.where(after, torch.full_like(g, math.inf), -g), k)
        out[name] = after | grow
    return Mask(out)


def drop_grow_nm(weights: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], keep: Mask, fraction: float,
                 m: int) -> Mask:
    """The N:M update: in the ``fraction`` of groups of ``m`` with the largest grow gradient, the smallest
    active |w| is dropped and the largest |grad| among the group's other entries grown."""
    out = {}
    for name, active in keep.items():
        a = active.reshape(-1, m)
        w = weights[name].detach().abs().float().cpu().reshape(-1, m)
        g = grads[name].detach().abs().float().cpu().reshape(-1, m)
        drop = torch.where(a, w, torch.full_like(w, math.inf)).argmin(dim=1)  # (groups,)
        after = a.clone()
        after[torch.arange(len(a)), drop] = False
        cand = torch.where(after, torch.full_like(g, -1.0), g)
        grow, best = cand.argmax(dim=1), cand.max(dim=1).values
        chosen = torch.argsort(-best, stable=True)[: round(fraction * len(a))]
        new = a.clone()
        new[chosen, drop[chosen]] = False
        new[chosen, grow[chosen]] = True
        out[name] = new.reshape(active.shape)
    return Mask(out)


def start_mask(ctx: Context, cfg: RigLConfig) -> Mask:
    """The mask RigL starts from (see INITS); N:M: the N:M magnitude mask."""
    if cfg.init not in INITS:
        raise LotusError(f"unknown RigL start {cfg.init!r}; choose one of {', '.join(INITS)}")
    if cfg.m:
        mask = prune(ctx.model, "nm", 0.0, scope=cfg.scope, n=cfg.n, m=cfg.m)
    else:
        mask = prune(ctx.model, "omp", cfg.target, scope=cfg.scope)
    return random_like(mask, cfg.seed) if cfg.init == "random" and not cfg.m else mask


def run_rigl(ctx: Context, cfg: RigLConfig, run: Run) -> dict:
    """Experiment: RigL fine-tuning from the start mask, then one evaluation.

    Point ``final``: accuracy with its Wilson 95% interval, sparsity, the sparsity after every
    update (all equal to the start's), updates, and the fraction of the start's kept weights that
    were rewired away. Blob ``mask.safetensors``: the final mask.
    """
    if cfg.update_every < 1 or not 0 <= cfg.drop_fraction <= 1 or not 0 < cfg.end <= 1:
        raise LotusError("RigL needs update_every >= 1, drop_fraction in [0, 1] and end in (0, 1]")
    if not run.has("final"):
        mask = start_mask(ctx, cfg)
        model = ctx.copy_model()
        params = scoped_parameters(model, cfg.scope)
        state = {"keep": mask, "sparsities": []}

        def update(step: int, net) -> Mask | None:
            f = update_fraction(step, cfg)
            if f == 0.0:
                return None
            grads = {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in params.items()}
            keep = (drop_grow_nm(params, grads, state["keep"], f, cfg.m) if cfg.m
                    else drop_grow(params, grads, state["keep"], f))
            state["keep"] = keep
            state["sparsities"].append(keep.sparsity)
            return keep

        train(model, ctx.train, TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0,
                                            seed=cfg.seed), ctx.data_config, mask=mask, update_mask=update,
              on_progress=lambda p: run.progress(step=p.step, steps=p.steps, loss=p.loss), should_stop=run.stopped)
        run.check()
        final = state["keep"]
        res = ctx.evaluate(final.apply(model), limit=cfg.limit, seed=cfg.seed)
        moved = sum(int((mask[n] & ~final[n]).sum()) for n in mask) / max(1, mask.numel() - mask.num_pruned())
        run.blob("mask.safetensors", final.to_bytes())
        run.point("final", {"accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n,
                            "sparsity": final.sparsity, "start_sparsity": mask.sparsity,
                            "update_sparsities": state["sparsities"], "updates": len(state["sparsities"]),
                            "rewired": moved, "steps": cfg.steps})
    return {k: v for k, v in run.get("final").items() if k != "update_sparsities"}


def rigl_headline(s: dict) -> Headline:
    """Headline of a RigL run."""
    return Headline(s["accuracy"], s["sparsity"], f"RigL at {pct(s['sparsity'])}: {pct(s['accuracy'])}, "
                    f"{s['updates']} updates rewired {pct(s['rewired'])} of the kept weights")


register_experiment(ExperimentSpec("rigl", RigLConfig, run_rigl, rigl_headline, job=True))
