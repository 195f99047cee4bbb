"""Sparsity-accuracy curves and the essential-sparsity turning point.

"The Emergence of Essential Sparsity in Large Pre-trained Models" (Jaiswal et al., NeurIPS
2023): the essential sparsity is the highest evaluated sparsity before the first one whose
accuracy falls below A - eps (the rule is :func:`lotus_core.essential.essential_sparsity`).

Two searches (``SweepConfig.search``):

- ``grid``: every sparsity of the grid is evaluated (the curve); with ``refine``, the bracket
  [last within tolerance, first below] is then bisected on the ``resolution`` grid.
- ``bisect``: the turning point alone, by bisection on the ``resolution`` grid over the whole
  range from the start (about log2(range / resolution) + 1 points), each point evaluated only
  until "within tolerance?" is certain (:func:`lotus_core.training.evaluate.decide`); then the
  coarse grid past the point is checked, as cheaply, for accuracy coming back within tolerance
  (``recovers``: the curve is not monotone). The answer is the one a full fine grid of full
  evaluations gives on a curve that stays below once it drops. Points decided early store no
  accuracy (only its bounds, ``acc_low``/``acc_high``, and ``early``), so no chart draws them.

Every point is an evaluation stored under its own configuration (method, sparsity, scope,
test subset, fine-tuning; a decision also under its threshold), so a point computed by one
sweep, by ``prune`` or by the dashboard is never computed again, and an interrupted sweep
resumes where it stopped.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from ..core.context import Context
from ..data import subset_indices, to_model_input
from ..core.errors import LotusError
from ..essential import (Essential, bisect_turning_point, essential_sparsity, required_correct, resolution_grid,
                         within_tolerance)
from ..training.evaluate import DEFAULT_LIMIT, decide, wilson_interval
from ..training.finetune import finetune
from ..results.jobs import JOBS, JobSpec
from . import PRUNERS, Mask, get_pruner, masker
from .ranking import MaskFn, check_sparsity
from .scope import scoped_parameters
from ..results.runs import Run, run_experiment
from ..results.store import config_id

__all__ = ["Essential", "essential_sparsity"]  # the rule, re-exported where sweeps use it

SEARCHES = {"grid": "every grid sparsity (the curve), then with refine the bracket bisected",
            "bisect": "the turning point alone: bisection on the resolution grid from the start, early-decided points"}
DEFAULT_GRID = tuple(round(0.1 * i, 2) for i in range(10))


@dataclass(frozen=True)
class SweepConfig:
    """A sparsity-accuracy sweep. Sparsities and accuracies are fractions in [0, 1]."""

    methods: tuple[str, ...] = ("omp",)  # keys of PRUNERS
    sparsities: tuple[float, ...] = DEFAULT_GRID  # the coarse grid
    limit: int = DEFAULT_LIMIT  # test images (fixed seeded subset)
    seed: int = 0  # test subset and random pruning
    scope: str = "blocks"  # which weights are pruned (pruning.scope.SCOPES)
    refine: bool = False  # bisect the turning point's bracket after the grid
    resolution: float = 0.01  # refine until the bracket is at most this wide
    eps: float = 0.01  # tolerance below dense accuracy (absolute fraction)
    finetune_steps: int = 0  # fine-tune each pruned model for this many steps before evaluating
    finetune_lr: float = 1e-4  # peak AdamW learning rate of that fine-tuning (cosine decay)
    calib_size: int = 128  # training images for wanda's activation norms
    n: int = 2  # N:M pattern of the nm method
    m: int = 4  # (1 - n/m is nm's fixed sparsity)
    bf16: bool = True  # bf16 autocast where fast (False: fp32 evaluation)
    stop_at_drop: bool = False  # end each method's grid at its first point below A - eps (locates the
    # turning point with fewer evaluations; the curve is then cut there)
    search: str = "grid"  # a key of SEARCHES; "bisect" searches (0, max(sparsities)] and checks sparsities past it
    early: bool = True  # bisect: evaluate each point only until within/below tolerance is certain (same answer)


def parse_sparsities(text: str) -> tuple[float, ...]:
    """``"0:0.9:0.1"`` (start:stop:step, stop included when on the grid) or ``"0.1,0.5,0.7"``."""
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            count = int(round((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 6) for i in range(count) if start + i * step <= stop + 1e-9]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise LotusError(f"cannot read sparsities {text!r}; use start:stop:step (0:0.9:0.1) or a list (0.1,0.5)") from None
    for v in values:
        check_sparsity(v)
    if not values:
        raise LotusError(f"no sparsities in {text!r}")
    return tuple(sorted(set(values)))


class PointEvaluator:
    """Evaluates pruned versions of ``ctx.model`` with one reusable working copy.

    The working copy's scoped weights are reset from the base model before each mask is
    applied, so a sweep keeps a single extra model alive, never one per sparsity.
    """

    def __init__(self, ctx: Context, config: SweepConfig):
        self.ctx, self.config = ctx, config
        self.work = copy.deepcopy(ctx.model)
        self.base_params = scoped_parameters(ctx.model, config.scope)
        self.work_params = scoped_parameters(self.work, config.scope)
        self._calib: torch.Tensor | None = None
        self._maskers: dict[str, MaskFn] = {}  # method -> sparsity -> Mask (scores ranked once per sweep)

    def calib(self) -> torch.Tensor:
        if self._calib is None:
            idx = subset_indices(len(self.ctx.train), self.config.calib_size, self.config.seed)
            self._calib = to_model_input(self.ctx.train.images[idx], self.ctx.data_config)
        return self._calib

    def mask(self, method: str, sparsity: float) -> Mask:
        """The mask of ``method`` at ``sparsity``; the method ranks the base weights once per evaluator."""
        if method not in self._maskers:
            calib = self.calib() if get_pruner(method).needs_calibration else None
            self._maskers[method] = masker(self.ctx.model, method, self.config.scope, calib=calib,
                                           seed=self.config.seed, n=self.config.n, m=self.config.m)
        return self._maskers[method](sparsity)

    def pruned_model(self, mask: Mask) -> nn.Module:
        with torch.no_grad():
            for name, p in self.work_params.items():
                p.copy_(self.base_params[name] * mask[name])
        if self.config.finetune_steps:
            model = copy.deepcopy(self.work)
            finetune(model, mask, self.ctx.train, self.ctx.data_config, self.config.finetune_steps,
                     lr=self.config.finetune_lr, seed=self.config.seed)
            return model
        return self.work

    def point_config(self, method: str, sparsity: float) -> dict:
        c = self.config
        extra = {"n": c.n, "m": c.m} if method == "nm" else {}
        extra.update({"calib_size": c.calib_size} if get_pruner(method).needs_calibration else {})
        extra.update({"finetune_steps": c.finetune_steps, "finetune_lr": c.finetune_lr} if c.finetune_steps else {})
        extra.update({} if c.bf16 else {"precision": "fp32"})
        return self.ctx.key(kind="prune-eval", method=method, sparsity=round(sparsity, 6), scope=c.scope,
                            limit=c.limit, seed=c.seed, **extra)

    def evaluate(self, method: str, sparsity: float, refresh: bool = False) -> dict:
        """Accuracy of ``method`` at ``sparsity``, from the store when already computed (unless ``refresh``)."""
        def compute() -> dict:
            mask = self.mask(method, sparsity)
            res = self.ctx.evaluate(self.pruned_model(mask), limit=self.config.limit, seed=self.config.seed,
                                    bf16=self.config.bf16)
            return {"method": method, "sparsity": sparsity, "sparsity_reached": mask.sparsity,
                    "accuracy": res.accuracy, "ci_low": res.ci95[0], "ci_high": res.ci95[1], "n": res.n,
                    "correct": res.correct}

        return self.ctx.store.cached("prune-eval", self.point_config(method, sparsity), compute,
                                     model=self.ctx.model_id, dataset=self.ctx.dataset, refresh=refresh)

    def decide(self, method: str, sparsity: float, required: int, refresh: bool = False) -> dict:
        """Are at least ``required`` test images right with ``method`` at ``sparsity``? A sweep point
        (:func:`complete_point` fields) evaluated only until that is certain.

        A stored full evaluation of the point answers it without computing. Otherwise the
        decision is stored under the point's configuration plus ``required``; one that needed
        every image is the full evaluation and is stored as that too.
        """
        full = self.point_config(method, sparsity)
        stored = None if refresh else self.ctx.store.get_run(config_id(full))
        if stored is not None and stored["status"] == "done":
            return complete_point(stored["summary"])
        c = self.config

        def compute() -> dict:
            mask = self.mask(method, sparsity)
            d = decide(self.pruned_model(mask), self.ctx.test, self.ctx.data_config, required, limit=c.limit,
                       seed=c.seed, bf16=c.bf16)
            return {"method": method, "sparsity": sparsity, "sparsity_reached": mask.sparsity, "n": d.n,
                    "correct": d.correct, "seen": d.seen, "required": required, "early": d.early,
                    "acc_low": d.bounds[0], "acc_high": d.bounds[1]}

        out = self.ctx.store.cached("prune-decide", {**full, "kind": "prune-decide", "required": required}, compute,
                                    model=self.ctx.model_id, dataset=self.ctx.dataset, refresh=refresh)
        if out["early"]:
            return {**out, "accuracy": None, "ci_low": None, "ci_high": None}
        n, correct = out["n"], out["correct"]
        ci = wilson_interval(correct, n)
        point = {"method": method, "sparsity": sparsity, "sparsity_reached": out["sparsity_reached"],
                 "accuracy": correct / n, "ci_low": ci[0], "ci_high": ci[1], "n": n, "correct": correct}
        self.ctx.store.cached("prune-eval", full, lambda: point, model=self.ctx.model_id, dataset=self.ctx.dataset,
                              refresh=refresh)
        return complete_point(point)


def complete_point(point: dict) -> dict:
    """A fully evaluated point with the fields every sweep point has: early (False), seen (= n)
    and acc_low = acc_high = accuracy (the bounds of a point decided early)."""
    correct = point.get("correct", round(point["accuracy"] * point["n"]))
    return {**point, "correct": correct, "seen": point["n"], "early": False, "acc_low": point["accuracy"],
            "acc_high": point["accuracy"]}


def _bounds(points: Iterable[dict]) -> list[tuple[float, float, float]]:
    """(sparsity, acc_low, acc_high) of stored points (points stored before bounds existed: accuracy)."""
    return [(p["sparsity"], p.get("acc_low", p["accuracy"]), p.get("acc_high", p["accuracy"])) for p in points]


def sweep(ctx: Context, config: SweepConfig, run: Run, refresh: bool = False) -> dict:
    """Experiment: per method, the grid (then with ``refine`` the bisected bracket), or with
    ``search="bisect"`` the turning point by bisection from the start (see the module docstring).

    ``refresh`` recomputes points that other runs already stored (for benchmarks and ``--no-cache``).
    """
    if config.search not in SEARCHES:
        raise LotusError(f"unknown search {config.search!r}; choose one of {', '.join(SEARCHES)}")
    for method in config.methods:
        get_pruner(method)
    dense = ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=config.bf16)
    floor = dense["accuracy"] - config.eps
    evaluator = PointEvaluator(ctx, config)
    bisect = config.search == "bisect"
    if bisect:
        fine = resolution_grid(max(config.sparsities), config.resolution)
        required = required_correct(dense["n"], floor)
        planned = sum(1 if PRUNERS[m].fixed_sparsity else 1 + math.ceil(math.log2(len(fine))) for m in config.methods)
    else:
        planned = sum(len(_grid(m, config)) for m in config.methods)
    done = 0

    def measure(method: str, s: float) -> dict:
        if bisect and config.early:
            return evaluator.decide(method, s, required, refresh)
        return complete_point(evaluator.evaluate(method, s, refresh))

    def point(method: str, s: float, refined: bool) -> dict:
        nonlocal done
        key = f"{method}@{s:.4f}"
        data = run.get(key)
        if data is None:
            data = {**measure(method, s), "refined": refined}
            run.point(key, data)
        done += 1
        run.progress(done=done, planned=max(planned, done), method=method, sparsity=s, accuracy=data["accuracy"],
                     within=within_tolerance(data.get("acc_low", data["accuracy"]), floor))
        run.check()
        return data

    def within(method: str, s: float, refined: bool) -> bool:
        return within_tolerance(_bounds([point(method, s, refined)])[0][1], floor)

    for method in config.methods:
        if bisect and not PRUNERS[method].fixed_sparsity:
            _, hi = bisect_turning_point(fine, lambda s: within(method, s, True))
            for s in config.sparsities:  # the coarse check: does accuracy come back within tolerance?
                if hi is not None and s > hi:
                    point(method, s, False)
            continue
        for s in _grid(method, config):
            if not within(method, s, False) and config.stop_at_drop:
                break
    essential = {}
    for method in config.methods:
        curve = lambda: [p for p in run.points().values() if p["method"] == method]  # noqa: E731
        ess = essential_sparsity(_bounds(curve()), dense["accuracy"], config.eps)
        while config.refine and not bisect and not PRUNERS[method].fixed_sparsity and ess.bracket[1] is not None \
                and ess.bracket[1] - ess.bracket[0] > config.resolution + 1e-9:
            mid = _midpoint(ess.bracket[0], ess.bracket[1], config.resolution)
            if mid in (ess.bracket[0], ess.bracket[1]):
                break
            point(method, mid, True)
            ess = essential_sparsity(_bounds(curve()), dense["accuracy"], config.eps)
        pts = curve()
        essential[method] = {**ess.to_dict(), "images": sum(p.get("seen", p["n"]) for p in pts),
                             "decided_early": sum(bool(p.get("early")) for p in pts)}
    return {"dense": dense, "essential": essential}


def _midpoint(lo: float, hi: float, resolution: float) -> float:
    """The middle of [lo, hi] snapped to the ``resolution`` grid, so refined points are the fine
    grid's own points (a bisection ends on the same turning point as a full fine grid of a
    monotone curve)."""
    return round(round((lo + hi) / 2 / resolution) * resolution, 6)


def _grid(method: str, config: SweepConfig) -> Sequence[float]:
    if PRUNERS[method].fixed_sparsity:  # N:M: one point at 1 - N/M
        return [round(1 - config.n / config.m, 6)]
    return [s for s in config.sparsities if s > 0]


FRAME_COLUMNS = ["method", "sparsity", "sparsity_reached", "accuracy", "ci_low", "ci_high", "n", "refined", "early",
                 "seen", "acc_low", "acc_high"]
"""A sweep table's columns: accuracy/ci are NaN where ``early`` (decided after ``seen`` of ``n`` images; the
full-subset accuracy lies in [acc_low, acc_high]); otherwise acc_low = acc_high = accuracy and seen = n."""


@dataclass
class SweepResult:
    frame: pd.DataFrame  # FRAME_COLUMNS, one row per point, sorted by method and sparsity
    dense: dict
    essential: dict[str, dict]
    run_id: str
    config: SweepConfig = field(repr=False, default=None)


def run_sweep(ctx: Context, config: SweepConfig, on_progress: Callable[[dict], None] | None = None,
              refresh: bool = False) -> SweepResult:
    """Run (or read back) a stored sweep and return its curve as a table."""
    fn = functools.partial(sweep, refresh=True) if refresh else sweep
    summary = run_experiment(ctx, "sweep", config, fn, on_progress=on_progress, refresh=refresh)
    return sweep_result(ctx, summary, config)


def sweep_result(ctx: Context, summary: dict, config: SweepConfig | None = None) -> SweepResult:
    """The stored sweep as a :class:`SweepResult`; its frame has a row per point, those decided
    early with a NaN accuracy (and ``early`` True), which charts leave out."""
    points = [p if "early" in p else complete_point(p) for p in ctx.store.points(summary["run_id"]).values()]
    frame = pd.DataFrame(points, columns=FRAME_COLUMNS).sort_values(["method", "sparsity"]).reset_index(drop=True)
    frame[["accuracy", "ci_low", "ci_high"]] = frame[["accuracy", "ci_low", "ci_high"]].astype(float)
    return SweepResult(frame, summary["dense"], summary["essential"], summary["run_id"], config)


def turning_point_search(config: SweepConfig) -> SweepConfig | None:
    """The fast way to ``config``'s turning point: the same sweep as a ``bisect`` search over the
    same range, or None when ``config`` does not refine, already is a search, or fine-tunes every
    point (that runs as one background job). The dashboard shows this search's answer at once
    and computes ``config``'s curve in the background: the answer does not wait for the curve."""
    if not config.refine or config.search == "bisect" or config.finetune_steps:
        return None
    return dataclasses.replace(config, search="bisect", refine=False, stop_at_drop=False)


def layer_sparsity_table(mask: Mask) -> pd.DataFrame:
    """Per-layer sparsity of a mask: layer, block index, kind (qkv/proj/fc1/fc2/head), numel, sparsity."""
    rows = []
    for name, t in mask.items():
        parts = name.split(".")
        block = int(parts[1]) if parts[0] == "blocks" and parts[1].isdigit() else None
        kind = parts[-2] if len(parts) >= 2 else name
        rows.append({"layer": name, "block": block, "kind": kind, "numel": t.numel(),
                     "sparsity": float((~t).sum()) / t.numel()})
    return pd.DataFrame(rows)


JOBS["sweep"] = JobSpec(SweepConfig, sweep)
