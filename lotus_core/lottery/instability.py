"""Instability analysis: which rewinding point k makes training stable to SGD noise?

Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity and the Lottery Ticket Hypothesis"
(ICML 2020). From the weights at step k of one dense fine-tuning run (the run LTH's round 0
makes: ``steps`` AdamW steps, cosine decay, batch order ``seed``), two copies are trained for
``steps`` steps each (the budget of an LTH round) with *different* batch orders (seeds
``seed + 1`` and ``seed + 2``). The error along the straight line between their end points,
``err(a) = 1 - accuracy((1 - a) w_1 + a w_2)`` for ``a`` in ``alphas`` evenly spaced points of
[0, 1], gives the **error barrier** ``max_a err(a) - (err(0) + err(1)) / 2`` (fractions;
0 means linearly mode-connected). Training from k is *stable* when the barrier is at most
``tolerance`` (the paper: 2%); the smallest stable k is the rewinding point to use.

With ``sparsity`` > 0 the analysis is of a ticket: the global magnitude (OMP) mask of the
pre-trained weights at that sparsity is held fixed in the run and in both copies.
Every k's result (and every snapshot of the run) is stored as it is produced; a stopped
analysis resumes at the next k.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..context import Context
from ..core.errors import LotusError
from ..pruning import prune
from ..core.mask import Mask
from ..results.registry import ExperimentSpec, Headline, pct, register_experiment
from ..results.runs import Run
from ..training.train import TrainConfig, train
from .common import load_state_bytes, state_bytes


@dataclass(frozen=True)
class InstabilityConfig:
    """An instability analysis. Steps are optimizer updates; errors and sparsities are fractions."""

    ks: tuple[int, ...] = (0, 10, 25, 50)  # rewinding points: steps of the dense run (each <= steps)
    steps: int = 100  # length of the dense run, and training steps of each copy
    lr: float = 1e-4  # peak AdamW learning rate (cosine decay, no weight decay), as an LTH round
    batch_size: int = 128  # training images per step
    seed: int = 0  # batch order of the run (the copies use seed + 1 and seed + 2) and the test subset
    alphas: int = 11  # interpolation points from 0 to 1 (ends included)
    limit: int = 1000  # test images per evaluation
    sparsity: float = 0.0  # > 0: the OMP mask of the pre-trained weights at this sparsity, held fixed
    tolerance: float = 0.02  # a barrier at most this large counts as stable (the paper's 2%)


def interpolate(a: nn.Module, b: nn.Module, alpha: float) -> nn.Module:
    """A new model with every floating-point tensor of the state ``(1 - alpha) a + alpha b``."""
    out = copy.deepcopy(a)
    sb = b.state_dict()
    out.load_state_dict({k: torch.lerp(v, sb[k], alpha) if v.is_floating_point() else v
                         for k, v in a.state_dict().items()})
    return out


def error_curve(ctx: Context, a: nn.Module, b: nn.Module, alphas: int = 11, limit: int | None = 1000,
                seed: int = 0) -> list[float]:
    """Test error (fraction) at ``alphas`` evenly spaced points from ``a`` (0) to ``b`` (1)."""
    if alphas < 2:
        raise LotusError(f"interpolation needs at least 2 points (the two ends), not {alphas}")
    return [1.0 - ctx.evaluate(interpolate(a, b, float(t)), limit=limit, seed=seed).accuracy
            for t in np.linspace(0.0, 1.0, alphas)]


def barrier(errors: list[float]) -> float:
    """The error barrier of an interpolation curve: max error minus the mean of the two ends."""
    return max(errors) - (errors[0] + errors[-1]) / 2


def smallest_stable_k(points: list[dict], tolerance: float) -> int | None:
    """The smallest k whose barrier is at most ``tolerance`` (None: none is stable)."""
    stable = [p["k"] for p in points if p["barrier"] <= tolerance + 1e-12]
    return min(stable) if stable else None


def _check(cfg: InstabilityConfig) -> None:
    if not cfg.ks or any(k < 0 or k > cfg.steps for k in cfg.ks):
        raise LotusError(f"rewinding points {list(cfg.ks)} must lie in [0, steps={cfg.steps}]")
    if cfg.steps < 1 or not 0 <= cfg.sparsity < 1:
        raise LotusError("instability needs steps >= 1 and a sparsity in [0, 1)")


def snapshots(ctx: Context, cfg: InstabilityConfig, run: Run, mask: Mask | None) -> dict[int, bytes]:
    """The dense run's weights at every k of ``cfg.ks`` (one run, snapshots taken as it passes k), stored."""
    names = {k: f"step-{k}.safetensors" for k in cfg.ks}
    if all(run.blob(n) is not None for n in names.values()):
        return {k: run.blob(n) for k, n in names.items()}
    model = ctx.copy_model()  # train() applies the mask before its first step
    taken: dict[int, bytes] = {}
    done = 0

    def snap() -> bool:  # polled before every step: `done` steps are behind us
        nonlocal done
        if done in names and done not in taken:
            taken[done] = state_bytes(model)
        done += 1
        return run.stopped()

    train(model, ctx.train, TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=0.0,
                                        seed=cfg.seed), ctx.data_config, mask=mask, should_stop=snap)
    run.check()
    if cfg.steps in names:
        taken[cfg.steps] = state_bytes(model)
    for k, data in taken.items():
        run.blob(names[k], data)
    return taken


def run_instability(ctx: Context, cfg: InstabilityConfig, run: Run) -> dict:
    """Experiment: for every k, two copies from step k with different batch orders, their error barrier.

    Points ``k-K``: k, barrier, errors (list over ``alphas``), end errors. Summary: the barrier per k
    and the smallest stable k.
    """
    _check(cfg)
    mask = prune(ctx.model, "omp", cfg.sparsity) if cfg.sparsity > 0 else None
    snaps = snapshots(ctx, cfg, run, mask)
    for i, k in enumerate(sorted(cfg.ks)):
        if run.has(f"k-{k}"):
            continue
        ends = []
        for copy_seed in (cfg.seed + 1, cfg.seed + 2):
            model = load_state_bytes(ctx.copy_model(), snaps[k])
            train(model, ctx.train, TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                                                weight_decay=0.0, seed=copy_seed), ctx.data_config, mask=mask,
                  on_progress=lambda p: run.progress(done=i, planned=len(cfg.ks), k=k, step=p.step, steps=p.steps),
                  should_stop=run.stopped)
            run.check()
            ends.append(model)
        errors = error_curve(ctx, ends[0], ends[1], cfg.alphas, cfg.limit, cfg.seed)
        run.point(f"k-{k}", {"k": k, "barrier": barrier(errors), "errors": errors, "sparsity": cfg.sparsity,
                             "end_errors": [errors[0], errors[-1]]})
        run.progress(done=i + 1, planned=len(cfg.ks), k=k, barrier=barrier(errors))
    points = [run.get(f"k-{k}") for k in sorted(cfg.ks)]
    return {"barriers": {str(p["k"]): p["barrier"] for p in points},
            "stable_k": smallest_stable_k(points, cfg.tolerance), "tolerance": cfg.tolerance,
            "sparsity": cfg.sparsity}


def instability_headline(s: dict) -> Headline:
    """Headline of an instability analysis: the barrier per k and the smallest stable k."""
    barriers = ", ".join(f"k={k}: {pct(b)}" for k, b in s["barriers"].items())
    return Headline(None, s["sparsity"], f"error barrier {barriers}; smallest stable k {s['stable_k']}")


register_experiment(ExperimentSpec("instability", InstabilityConfig, run_instability, instability_headline, job=True))
