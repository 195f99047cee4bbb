"""The grid search: every point of a grid, sent to ``ctx.executor`` and stored as it arrives.

:class:`SweepPoints` is the driver side (the only writer); the units are pure
(:func:`~lotus_core.pruning.sweep.points.point_unit`). With ``refine`` the turning point's bracket is
then bisected on the ``resolution`` grid (:func:`refine`).
"""
from __future__ import annotations

from typing import Sequence

from ...context import Context
from ...core.tolerance import Tolerance
from ...results.executors import get_executor, track
from ...results.runs import Run, run_experiment, stored_summary
from ..essential import Essential, essential_sparsity
from .. import get_pruner
from .config import SweepConfig, point_config
from .points import point_key, point_state, point_unit, unrun


class SweepPoints:
    """The driver side of a sweep: serves stored points and sends the missing ones to ``ctx.executor``.

    Every result is stored the moment it arrives, as the run's point and as the reusable
    ``prune-eval`` result. With ``stop`` (stop-at-drop), each method's curve is written in grid
    order and ends at its first point not within tolerance: points past it that arrive from other
    workers are kept as ``prune-eval`` results only, and those not yet arrived are cancelled.
    """

    def __init__(self, ctx: Context, config: SweepConfig, run: Run, refresh: bool):
        self.ctx, self.config, self.run, self.refresh = ctx, config, run, refresh
        needs_train = config.finetune_steps > 0 or config.protocol == "essential" \
            or any(get_pruner(m).needs_calibration for m in config.methods)
        self.pool = get_executor(ctx.executor).pool(point_state, ctx, config, train=needs_train)
        self.done = 0

    def begun(self, curve: str, sparsity: float) -> tuple[list[int], int, int] | None:
        """(order, correct, seen) of the point's stored early decision in the hard-first order, which its
        full evaluation goes on from (:meth:`PointEvaluator.compute`), or None."""
        if self.refresh or self.config.protocol != "lotus":
            return None
        prefix = stored_summary(self.ctx, "prune-prefix", {**point_config(self.config, curve, sparsity),
                                                           "order": "hard-first"})
        if prefix is None or prefix["seen"] >= prefix["n"]:
            return None
        c = self.config
        return self.ctx.hard_first_order(c.limit, c.seed, c.bf16), prefix["correct"], prefix["seen"]

    def stored(self, plan: Sequence[tuple[str, float]], refined: bool) -> tuple[dict[str, dict], dict[str, tuple]]:
        """The plan split into the points already known (the run's, or stored ``prune-eval`` results) and the
        units still to compute (curve, sparsity, begun), both by point key."""
        known: dict[str, dict] = {}
        todo: dict[str, tuple] = {}
        for curve, s in plan:
            key = point_key(curve, s)
            data = self.run.get(key)
            if data is None and not self.refresh:
                stored = stored_summary(self.ctx, "prune-eval", point_config(self.config, curve, s))
                if stored is not None:
                    data = {**unrun(stored), "refined": refined}
            if data is None:
                todo[key] = (curve, s, self.begun(curve, s))
            else:
                known[key] = data
        return known, todo

    def evaluate(self, plan: Sequence[tuple[str, float]], refined: bool, stop: Tolerance | None = None) -> None:
        """Every (curve, sparsity) of ``plan`` on the run: stored ones at once, the others as they arrive."""
        known, todo = self.stored(plan, refined)
        writer = _Writer(self.run, plan, stop)
        if stop is None:
            for key, data in known.items():
                writer.write(key, data)
        batch = self.pool.map(point_unit, todo)
        if stop is not None:
            writer.advance(known, batch)
        self.done += len(plan) - len(todo)
        for outcome in track(self.run, batch, self.pool.slots, self.done, self.done + batch.pending,
                             describe=lambda p: {"method": p["method"], "sparsity": p["sparsity"],
                                                 "accuracy": p["accuracy"]}):
            curve, s, _ = todo[outcome.key]
            data = outcome.result
            run_experiment(self.ctx, "prune-eval", point_config(self.config, curve, s), lambda ctx, _, run: data,
                           refresh=True)
            known[outcome.key] = {**data, "refined": refined}
            if stop is None:
                writer.write(outcome.key, known[outcome.key])
            else:
                writer.advance(known, batch)
            self.done += 1


class _Writer:
    """Puts known points on the run: each at once, or with ``stop`` in each curve's grid order, ending the curve
    at its first point not within tolerance (cancelling the units past it)."""

    def __init__(self, run: Run, plan: Sequence[tuple[str, float]], stop: Tolerance | None):
        self.run, self.stop = run, stop
        self.grids: dict[str, list[str]] = {}  # curve -> its point keys in grid order
        for curve, s in plan:
            self.grids.setdefault(curve, []).append(point_key(curve, s))
        self.cursor = {curve: 0 for curve in self.grids}  # index of each curve's next point to write

    def write(self, key: str, data: dict) -> None:
        if self.run.get(key) != data:
            self.run.point(key, data)

    def advance(self, known: dict[str, dict], batch) -> None:
        for curve, keys in self.grids.items():
            while self.cursor[curve] < len(keys) and keys[self.cursor[curve]] in known:
                data = known[keys[self.cursor[curve]]]
                self.write(keys[self.cursor[curve]], data)
                self.cursor[curve] += 1
                if not self.stop.within(data["accuracy"]):
                    batch.cancel(keys[self.cursor[curve]:])
                    self.cursor[curve] = len(keys)


def midpoint(lo: float, hi: float, resolution: float) -> float:
    """The middle of [lo, hi] snapped to the ``resolution`` grid, so refined points are the fine
    grid's own points (a bisection ends on the same turning point as a full fine grid of a
    monotone curve)."""
    return round(round((lo + hi) / 2 / resolution) * resolution, 6)


def refine(points: SweepPoints, curve: str, dense_accuracy: float, measured) -> Essential:
    """``curve``'s turning point with its bracket bisected on the config's ``resolution`` grid: the midpoint
    evaluated until the bracket is at most that wide. ``measured()`` gives the curve's (sparsity, low, high)
    points as stored so far."""
    config = points.config
    ess = essential_sparsity(measured(), dense_accuracy, config.eps)
    while ess.bracket[1] is not None and ess.bracket[1] - ess.bracket[0] > config.resolution + 1e-9:
        mid = midpoint(ess.bracket[0], ess.bracket[1], config.resolution)
        if mid in (ess.bracket[0], ess.bracket[1]):
            break
        points.evaluate([(curve, mid)], refined=True)
        ess = essential_sparsity(measured(), dense_accuracy, config.eps)
    return ess
