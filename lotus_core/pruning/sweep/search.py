"""The sweep experiment: the dense line, then per curve the grid or the bisection, then each turning point.

``search="grid"`` evaluates the grid through ``ctx.executor`` (:mod:`.grid`); ``"bisect"`` and
``"scout"`` decide one point at a time (:class:`Bisection`: each point depends on the last), each as
soon as "within tolerance?" is certain. The rule is :class:`~lotus_core.core.tolerance.Tolerance`.
"""
from __future__ import annotations

from typing import Iterable

from ...context import Context
from ...core.device import cpu_slot
from ...core.tolerance import Tolerance
from ...results.runs import Run, run_experiment
from ...training.evaluate import MIN_BATCH
from ...training.finetune import run_finetune
from ..essential import (bisect_decisions, bisect_turning_point, cost_split, essential_sparsity, resolution_grid,
                         scout_budgets, scouted_turning_point)
from .config import SweepConfig, curves, grid, split_curve
from .grid import SweepPoints, refine
from .points import PointEvaluator, complete_point, point_key


def bounds(points: Iterable[dict]) -> list[tuple[float, float, float]]:
    """(sparsity, acc_low, acc_high) of stored points (points stored before bounds existed: accuracy);
    open scouts, which decide nothing, are left out."""
    return [(p["sparsity"], p.get("acc_low", p["accuracy"]), p.get("acc_high", p["accuracy"])) for p in points
            if not p.get("open")]


def dense_reference(ctx: Context, config: SweepConfig) -> dict:
    """The dense line: the model's own accuracy (``lotus``) or the stored fine-tune of it with the
    sweep's recipe (``essential``); a summary with accuracy, ci95 and n."""
    if config.protocol == "essential":
        ft = run_experiment(ctx, "finetune", config.finetune_recipe(), run_finetune)
        return {"accuracy": ft["accuracy"], "ci95": ft["ci95"], "n": config.limit, "finetune_run": ft["run_id"],
                "checkpoint": ft["checkpoint"], "accuracy_before": ft["accuracy_before"]}
    return ctx.dense_accuracy(limit=config.limit, seed=config.seed, bf16=config.bf16)


class Bisection:
    """The ``bisect`` / ``scout`` search of one sweep: per curve, the turning point by bisection on the fine grid
    (scouted: most points decided from a budget of the hardest images), then the coarse grid past it checked
    for accuracy coming back within tolerance. Points are decided one at a time, in this process."""

    def __init__(self, ctx: Context, config: SweepConfig, run: Run, refresh: bool, dense: dict, rule: Tolerance):
        self.config, self.run, self.refresh, self.rule = config, run, refresh, rule
        self.evaluator = PointEvaluator(ctx, config)
        self.fine = resolution_grid(max(config.sparsities), config.resolution)
        self.n = n = dense["n"]
        self.required = required = rule.required_correct(n)
        # early decisions take the images hard first: "below" is certain after about twice the n - required + 1
        # wrong images it needs, "within" only after about all of them, so the bracket is cut nearer its top
        # (the same cut with early=False, so that both ask the same points)
        self.order = ctx.hard_first_order(config.limit, config.seed, config.bf16) \
            if config.early and config.protocol == "lotus" else None
        self.split = cost_split(n, min(n, max(MIN_BATCH, 2 * (n - required + 1))))  # a decision takes >= MIN_BATCH
        # scouting: most points decided from a budget of the hardest images, only the answer's bracket from all
        self.budgets = scout_budgets(n, required, MIN_BATCH) \
            if config.search == "scout" and config.early and self.order is not None else None
        self.planned = sum(1 if config.fixed_sparsity(c) is not None
                           else bisect_decisions(len(self.fine), self.split) + bool(self.budgets)
                           for c in curves(config))
        self.done = 0

    def measure(self, curve: str, s: float, budget: int | None, start: dict | None) -> dict:
        if self.config.early:
            return self.evaluator.decide(curve, s, self.required, self.refresh, self.order, budget, start)
        return complete_point(self.evaluator.evaluate(curve, s, self.refresh))

    def point(self, curve: str, s: float, refined: bool, budget: int | None = None) -> dict:
        """The run's point at ``s``: stored, or decided now (from at most ``budget`` images, going on from
        an open one stored with a smaller budget)."""
        key = point_key(curve, s)
        data = self.run.get(key)
        if data is None or (data.get("open") and (budget is None or data["seen"] < min(budget, self.n))):
            data = {**self.measure(curve, s, budget if budget is None or budget < self.n else None, data),
                    "refined": refined}
            self.run.point(key, data)
        self.done += 1
        self.run.progress(done=self.done, planned=max(self.planned, self.done), method=curve, sparsity=s,
                          accuracy=data["accuracy"], within=self.verdict(data))
        self.run.check()
        return data

    def verdict(self, data: dict) -> bool | None:
        """Is the point within tolerance? None for an open scout."""
        return None if data.get("open") else self.rule.within(bounds([data])[0][1])

    def search(self, curve: str) -> None:
        """``curve``'s points: its one fixed point, or the bisection then the coarse check past the answer."""
        fixed = self.config.fixed_sparsity(curve)
        if fixed is not None:
            self.verdict(self.point(curve, fixed, False))
            return
        if self.budgets:
            _, hi = scouted_turning_point(self.fine, lambda s, b: self.verdict(self.point(curve, s, True, b)),
                                          self.budgets, self.split)
        else:
            _, hi = bisect_turning_point(self.fine, lambda s: self.verdict(self.point(curve, s, True)), self.split)
        for s in self.config.sparsities:  # the coarse check: does accuracy come back within tolerance?
            if hi is not None and s > hi:
                self.point(curve, s, False)


def turning_point(config: SweepConfig, run: Run, curve: str, dense: dict, points: SweepPoints | None) -> dict:
    """``curve``'s essential sparsity from the run's points (its bracket refined on the grid search when the
    config says so), with the images it took and how many points were decided early."""
    def measured() -> list[tuple[float, float, float]]:
        return bounds(p for p in run.points().values() if p["method"] == curve)

    if points is not None and config.refine and split_curve(curve)[1] is None and config.fixed_sparsity(curve) is None:
        ess = refine(points, curve, dense["accuracy"], measured)
    else:
        ess = essential_sparsity(measured(), dense["accuracy"], config.eps)
    pts = [p for p in run.points().values() if p["method"] == curve]
    return {**ess.to_dict(), "images": sum(p.get("seen", p["n"]) for p in pts),
            "decided_early": sum(bool(p.get("early")) and not p.get("open") for p in pts),
            **({"scouts_open": sum(bool(p.get("open")) for p in pts)} if config.search == "scout" else {})}


def sweep(ctx: Context, config: SweepConfig, run: Run, refresh: bool = False) -> dict:
    """Experiment: per method, the grid (then with ``refine`` the bisected bracket), or with
    ``search="bisect"`` or ``"scout"`` the turning point by bisection from the start (see the package docstring).
    The config was checked when it was made (:func:`~lotus_core.pruning.sweep.config.check_sweep`).

    ``refresh`` recomputes points that other runs already stored (for benchmarks and ``--no-cache``).
    """
    names = curves(config)
    with cpu_slot():  # the host's CPU budget (core/device.py); the grid's units take theirs one at a time
        dense = dense_reference(ctx, config)
    rule = Tolerance(dense["accuracy"], config.eps)
    points = None
    if config.search in ("bisect", "scout"):  # one at a time, each decided as soon as it is certain
        with cpu_slot():  # held for the whole search: an interactive one is never preempted by background units
            bisection = Bisection(ctx, config, run, refresh, dense, rule)
            for curve in names:
                bisection.search(curve)
    else:  # the grid through ctx.executor; its pool (and the model it holds) ends with this call
        points = SweepPoints(ctx, config, run, refresh)
        points.evaluate([(c, s) for c in names for s in grid(c, config)], refined=False,
                        stop=rule if config.stop_at_drop else None)
    return {"dense": dense, "essential": {curve: turning_point(config, run, curve, dense, points) for curve in names}}
