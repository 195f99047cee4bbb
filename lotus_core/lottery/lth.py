"""Lottery tickets by iterative magnitude pruning (IMP) with rewinding.

Frankle & Carbin, "The Lottery Ticket Hypothesis" (ICLR 2019), with the rewinding of Frankle
et al., "Linear Mode Connectivity and the Lottery Ticket Hypothesis" (ICML 2020), run as the
Essential Sparsity paper (Jaiswal et al., NeurIPS 2023) runs it on pre-trained transformers:
the rewinding point is the *pre-trained* weights, and each round fine-tunes on the task.

Round 0: the dense pre-trained model is fine-tuned for ``steps``; its accuracy is the dense
    baseline under the same budget. The ``prune_fraction`` smallest-|w| scoped weights of the
    fine-tuned model (global ranking) give mask 1. With late rewinding (``rewind="step:K"``,
    Frankle et al. 2020) the rewinding point is the weights after step K *of this same
    training* (its schedule, batches and seed), saved the moment step K ends.
Round r >= 1: the ticket is ``rewind weights * mask_r``. It is fine-tuned for ``steps`` with
    the mask held fixed (pruned weights stay exactly 0) and evaluated: **the accuracy recorded
    for round r is that of the ticket at sparsity s_r after this fine-tune**, from the
    rewinding point, with the same budget, learning rate and batch order as every other round.
    Then ``prune_fraction`` of the weights that are left go, by |w| of the fine-tuned ticket
    (:func:`~lotus_core.lottery.common.prune_remaining`), giving mask r+1.
Rounds continue until ``target`` (the last one clipped onto it); pruned counts compound as in
:func:`~lotus_core.lottery.common.prune_counts`.

Round r's point and mask r+1 are stored the moment round r ends, so a stopped run resumes at the
next round and equals an uninterrupted one (every step is seeded).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from torch import nn

from ..context import Context
from ..core.errors import LotusError
from ..training.finetune import finetune
from ..core.mask import Mask, apply_mask_
from ..pruning.scope import scoped_parameters
from ..results.registry import ExperimentSpec, register_experiment
from ..results.executors import get_executor, run_together, track
from ..results.runs import Run
from .common import ticket_curve, ticket_headline, load_state_bytes, mask_blob, prune_counts, prune_remaining, state_bytes


@dataclass(frozen=True)
class LTHConfig:
    """Iterative magnitude pruning with rewinding. Sparsities are fractions of the scoped weights."""

    target: float = 0.8  # final sparsity
    prune_fraction: float = 0.2  # fraction of the *remaining* scoped weights pruned per round
    steps: int = 100  # fine-tuning steps per round (batch_size images each)
    lr: float = 1e-4  # peak AdamW learning rate of each round's fine-tune (cosine decay, no weight decay)
    batch_size: int = 128  # training images per step
    rewind: str = "pretrained"  # "pretrained" or "step:K" (the weights at step K of round 0's dense fine-tune)
    scope: str = "blocks"  # which weights are pruned (lotus_core.pruning.scope.SCOPES)
    seed: int = 0  # batch order (the same in every round) and the fixed test subset
    limit: int = 1000  # test images per evaluation

    def __post_init__(self) -> None:  # refused before any run is recorded (no 'failed' rows for bad input)
        check_config(self)


def check_config(cfg: LTHConfig) -> None:
    """Raise LotusError for a configuration no LTH run can use (checked when it is built)."""
    if not 0 < cfg.target < 1:
        raise LotusError(f"target sparsity {cfg.target} is outside (0, 1); give a fraction such as 0.8")
    if not 0 < cfg.prune_fraction < 1:
        raise LotusError(f"pruning fraction per round {cfg.prune_fraction} is outside (0, 1); the default is 0.2")
    if cfg.steps < 1:
        raise LotusError(f"fine-tuning steps per round must be at least 1, not {cfg.steps}")
    if not (0 < cfg.lr <= 10) or cfg.batch_size < 1 or cfg.limit < 1:
        raise LotusError(f"learning rate {cfg.lr} must be in (0, 10], batch size {cfg.batch_size} and limit "
                         f"{cfg.limit} at least 1")
    rewind_steps(cfg)


def rewind_steps(cfg: LTHConfig) -> int:
    """K of ``step:K`` (0 for ``pretrained``); raises LotusError on anything else or on K > steps."""
    if cfg.rewind == "pretrained":
        return 0
    if cfg.rewind.startswith("step:") and cfg.rewind[5:].isdigit():
        k = int(cfg.rewind[5:])
        if k > cfg.steps:
            raise LotusError(f"rewind step {k} is past round 0's {cfg.steps} fine-tuning steps; give K <= {cfg.steps}")
        return k
    raise LotusError(f"rewind {cfg.rewind!r} is not 'pretrained' or 'step:K' (e.g. step:50)")


def lth_counts(ctx: Context, cfg: LTHConfig) -> list[int]:
    """Pruned scoped weights after rounds 1, 2, ... (round 0 is dense)."""
    if cfg.steps < 1:
        raise LotusError(f"fine-tuning steps per round must be at least 1, not {cfg.steps}")
    rewind_steps(cfg)
    total = sum(p.numel() for p in scoped_parameters(ctx.model, cfg.scope).values())
    return prune_counts(total, cfg.target, cfg.prune_fraction)


REWIND_BLOB = "rewind.safetensors"


def rewind_model(ctx: Context, cfg: LTHConfig, run: Run) -> nn.Module:
    """A fresh copy of the model at the rewinding point.

    ``step:K``: the weights after step K of round 0's dense fine-tune, stored with the run by
    :func:`run_lth` (so rounds, resumes and controls all rewind to the same weights).
    """
    model = ctx.copy_model()
    if rewind_steps(cfg) == 0:
        return model
    data = run.blob(REWIND_BLOB)
    if data is None:
        raise LotusError(f"this LTH run has no weights at step {rewind_steps(cfg)} yet; run its round 0 first")
    return load_state_bytes(model, data)


def fine_tuned_ticket(ctx: Context, cfg: LTHConfig, r: int, mask: Mask, rewind: bytes | None, on_progress=None,
                should_stop=None) -> tuple[nn.Module, bytes | None, list[float]]:
    """Round ``r``'s ticket fine-tuned: from the pre-trained weights (round 0) or the rewinding point
    (``rewind``: its weights, None for ``pretrained``) with ``mask``; for round 0 with ``step:K``, the
    weights after step K (else None); and the training loss of every step."""
    k = rewind_steps(cfg)
    if r == 0:
        model = ctx.copy_model()
    else:
        if k and rewind is None:
            raise LotusError(f"this LTH run has no weights at step {k} yet; run its round 0 first")
        model = ctx.copy_model() if rewind is None else load_state_bytes(ctx.copy_model(), rewind)
        apply_mask_(model, mask)
    kept: dict[str, bytes] = {}

    def keep_rewind_point(step: int, trained: nn.Module) -> None:
        if step == k:
            kept["weights"] = state_bytes(trained)

    trained = finetune(model, mask, ctx.train, ctx.data_config, cfg.steps, cfg.lr, cfg.batch_size, cfg.seed,
                       on_progress=on_progress, should_stop=should_stop,
                       on_step=keep_rewind_point if r == 0 and k else None)
    return model, kept.get("weights"), list(trained.losses)


def lth_round(ctx: Context, cfg: LTHConfig, r: int, mask: Mask, rewind: bytes | None, on_progress=None,
              should_stop=None) -> dict:
    """One IMP round, inputs in and a plain result out (an executor unit on Ray): the ticket fine-tuned
    (:func:`fine_tuned_ticket`), its accuracy, and the next round's mask. Returns ``point`` (the round's stored
    fields), ``next_mask`` (its bytes; None after the last round) and ``rewind`` (round 0 with ``step:K``:
    the rewinding point's weights, else None)."""
    counts = lth_counts(ctx, cfg)
    t0 = time.perf_counter()
    model, kept, losses = fine_tuned_ticket(ctx, cfg, r, mask, rewind, on_progress, should_stop)
    if should_stop is not None and should_stop():
        return {}  # the driver's run.check() raises: nothing of a stopped round is stored
    res = ctx.evaluate(model, limit=cfg.limit, seed=cfg.seed)
    next_mask = prune_remaining(model, mask, counts[r], cfg.scope).to_bytes() if r < len(counts) else None
    point = {"round": r, "sparsity": mask.sparsity, "num_pruned": mask.num_pruned(), "accuracy": res.accuracy,
             "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n, "steps": cfg.steps,
             "elapsed_s": time.perf_counter() - t0, "losses": [round(x, 5) for x in losses]}
    return {"point": point, "next_mask": next_mask, "rewind": kept}


def round_state(ctx: Context, cfg: LTHConfig) -> tuple[Context, LTHConfig]:
    """Executor set-up of an LTH run: the context (with its training split) and the config."""
    return ctx, cfg


def round_unit(state: tuple[Context, LTHConfig], unit: tuple[int, bytes | None, bytes | None]) -> dict:
    """Executor unit of an LTH run: one round (:func:`lth_round`) from its mask's and rewinding point's bytes."""
    ctx, cfg = state
    r, mask, rewind = unit
    dense = Mask.ones(scoped_parameters(ctx.model, cfg.scope))
    return lth_round(ctx, cfg, r, Mask.from_bytes(mask) if mask is not None else dense, rewind)


def run_lth(ctx: Context, cfg: LTHConfig, run: Run) -> dict:
    """Experiment: IMP rounds until ``cfg.target`` (see the module docstring).

    Points ``round-r``: round, sparsity, num_pruned, accuracy with its Wilson 95% interval
    (ci_low, ci_high), n test images, steps of that round, elapsed_s. Blobs: ``mask-round-r``.
    Each round runs where ``ctx.executor`` says: here (with step progress), or as one Ray task (the
    rounds of one run follow each other; runs submitted together share the cluster,
    :func:`run_lths`); this process stores what each round returns.
    """
    counts = lth_counts(ctx, cfg)
    dense = Mask.ones(scoped_parameters(ctx.model, cfg.scope))
    pool = None if ctx.executor.kind == "local" else get_executor(ctx.executor).pool(round_state, ctx, cfg, train=True)
    try:
        for r in range(len(counts) + 1):
            if run.has(f"round-{r}"):
                continue
            mask_bytes = run.blob(mask_blob(r)) if r else None
            rewind = run.blob(REWIND_BLOB) if r and rewind_steps(cfg) else None
            if pool is None:
                out = lth_round(ctx, cfg, r, Mask.from_bytes(mask_bytes) if r else dense, rewind,
                                on_progress=lambda p: run.progress(round=r, of=len(counts), step=p.step, steps=p.steps,
                                                                   loss=p.loss), should_stop=run.stopped)
                run.check()
            else:
                batch = pool.map(round_unit, {f"round-{r}": (r, mask_bytes, rewind)})
                out = [o.result for o in track(run, batch, pool.slots, r, len(counts) + 1)][0]  # raises if it failed
            if out["rewind"] is not None:
                run.blob(REWIND_BLOB, out["rewind"])
            if out["next_mask"] is not None:
                run.blob(mask_blob(r + 1), out["next_mask"])
            run.point(f"round-{r}", out["point"])  # last: a stored round has its next mask
            run.progress(round=r, of=len(counts), sparsity=out["point"]["sparsity"], accuracy=out["point"]["accuracy"])
    finally:
        if pool is not None:
            pool.close()
    points = [run.get(f"round-{r}") for r in range(len(counts) + 1)]
    return {"rounds": len(counts), "final_sparsity": points[-1]["sparsity"], "final_accuracy": points[-1]["accuracy"],
            "dense_finetuned_accuracy": points[0]["accuracy"],
            "train_steps": cfg.steps * len(points),
            "train_time_s": sum(p["elapsed_s"] for p in points)}


def run_lths(ctx: Context, configs: list[LTHConfig], on_progress=None) -> list[dict]:
    """Several LTH runs (e.g. seeds or rewinding points) submitted together
    (:func:`~lotus_core.results.executors.run_together`): on Ray their rounds share the cluster at once,
    locally they run one after another; each is stored as its own run. Their summaries, in order."""
    import functools

    from ..results.runs import run_experiment, run_id_for

    return run_together(ctx, [(run_id_for(ctx, "lth", c), functools.partial(
        run_experiment, ctx, "lth", c, on_progress=on_progress)) for c in configs])


register_experiment(ExperimentSpec("lth", LTHConfig, run_lth, ticket_headline, ticket_curve, job=True))
