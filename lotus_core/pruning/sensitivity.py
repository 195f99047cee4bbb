"""Per-layer sensitivity: prune one layer alone (magnitude, within the layer) at several
sparsities and record the accuracy drop, as Distiller and Sparsify do. Layers whose drop is
large are the ones a global mask should spare.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from ..context import Context
from .ranking import LayerRanking
from .scope import scoped_parameters
from ..results.executors import get_executor, track
from ..results.runs import Run, run_experiment
from ..results.registry import ExperimentSpec, Headline, register_experiment


@dataclass(frozen=True)
class SensitivityConfig:
    """One-layer-at-a-time pruning. Sparsities are fractions of that layer's weights."""

    sparsities: tuple[float, ...] = (0.5, 0.7, 0.9)  # fraction of the one layer pruned
    limit: int = 1000  # test images (fixed seeded subset)
    seed: int = 0  # test subset
    scope: str = "blocks"  # which layers are visited (pruning.scope.SCOPES)


class LayerPruner:
    """Executor state of a sensitivity grid: one working copy; each layer's weights sorted once."""

    def __init__(self, ctx: Context, config: SensitivityConfig):
        self.ctx, self.config = ctx, config
        self.work = ctx.copy_model()
        self.base = scoped_parameters(ctx.model, config.scope)
        self.params = scoped_parameters(self.work, config.scope)
        self._rankings: dict[str, LayerRanking] = {}

    def accuracy(self, name: str, sparsity: float) -> float:
        """Accuracy with layer ``name`` alone pruned to ``sparsity`` by magnitude (the copy is restored after)."""
        if name not in self._rankings:
            self._rankings[name] = LayerRanking({name: self.base[name].abs()})
        keep = self._rankings[name].mask(sparsity)[name]
        with torch.no_grad():
            self.params[name].copy_(self.base[name] * keep)
        try:
            return self.ctx.evaluate(self.work, limit=self.config.limit, seed=self.config.seed).accuracy
        finally:
            with torch.no_grad():
                self.params[name].copy_(self.base[name])


def cell(pruner: LayerPruner, unit: tuple[str, float]) -> dict:
    """Executor unit: one (layer, sparsity) cell of the grid."""
    name, s = unit
    return {"layer": name, "sparsity": s, "accuracy": pruner.accuracy(name, s)}


def sensitivity(ctx: Context, config: SensitivityConfig, run: Run) -> dict:
    """Experiment: one point per (layer, sparsity) with the accuracy and its drop from dense (fractions).

    The cells go to ``ctx.executor``; each is stored as it arrives.
    """
    dense = ctx.dense_accuracy(limit=config.limit, seed=config.seed)["accuracy"]
    layers = list(scoped_parameters(ctx.model, config.scope))
    cells = {f"{name}@{s:.4f}": (name, s) for name in layers for s in config.sparsities}
    todo = {key: unit for key, unit in cells.items() if not run.has(key)}
    with get_executor(ctx.executor).pool(LayerPruner, ctx, config) as pool:
        batch = pool.map(cell, todo)
        for outcome in track(run, batch, pool.slots, len(cells) - len(todo), len(cells),
                             describe=lambda p: {"layer": p["layer"]}):
            run.point(outcome.key, {**outcome.result, "drop": dense - outcome.result["accuracy"]})
    return {"dense_accuracy": dense, "layers": len(layers)}


def run_sensitivity(ctx: Context, config: SensitivityConfig, on_progress=None) -> pd.DataFrame:
    """Layer x sparsity table of accuracy drops (fractions; positive = worse than dense)."""
    summary = run_experiment(ctx, "sensitivity", config, sensitivity, on_progress=on_progress)
    points = pd.DataFrame(list(ctx.store.points(summary["run_id"]).values()))
    table = points.pivot(index="layer", columns="sparsity", values="drop")
    order = list(scoped_parameters(ctx.model, config.scope))
    return table.reindex(order)


def sensitivity_headline(s: dict) -> Headline:
    """Headline of a stored sensitivity analysis."""
    return Headline(s["dense_accuracy"], None, f"{s['layers']} layers pruned one at a time")


def sensitivity_curve(points: dict[str, dict], summary: dict | None) -> list[dict]:
    """Accuracy against the one layer's sparsity, one series per layer."""
    return [{"series": p["layer"], "axis": "sparsity", "x": p["sparsity"], "accuracy": p["accuracy"]}
            for p in points.values() if "layer" in p]


register_experiment(ExperimentSpec("sensitivity", SensitivityConfig, sensitivity, sensitivity_headline,
                                   sensitivity_curve, job=True))  # the Sparsity curves page queues it
