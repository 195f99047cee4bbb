"""Per-layer sensitivity: prune one layer alone (magnitude, within the layer) at several
sparsities and record the accuracy drop, as Distiller and Sparsify do. Layers whose drop is
large are the ones a global mask should spare.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from ..core.context import Context
from .ranking import LayerRanking
from .scope import scoped_parameters
from ..results.runs import Run, run_experiment
from ..results.registry import ExperimentSpec, Headline, register_experiment


@dataclass(frozen=True)
class SensitivityConfig:
    """One-layer-at-a-time pruning. Sparsities are fractions of that layer's weights."""

    sparsities: tuple[float, ...] = (0.5, 0.7, 0.9)  # fraction of the one layer pruned
    limit: int = 1000  # test images (fixed seeded subset)
    seed: int = 0  # test subset
    scope: str = "blocks"  # which layers are visited (pruning.scope.SCOPES)


def sensitivity(ctx: Context, config: SensitivityConfig, run: Run) -> dict:
    """Experiment: one point per (layer, sparsity) with the accuracy and its drop from dense (fractions)."""
    dense = ctx.dense_accuracy(limit=config.limit, seed=config.seed)["accuracy"]
    work = ctx.copy_model()
    base = scoped_parameters(ctx.model, config.scope)
    params = scoped_parameters(work, config.scope)
    total = len(params) * len(config.sparsities)
    for i, name in enumerate(params):
        ranking = LayerRanking({name: base[name].abs()})  # sorted once per layer
        for j, s in enumerate(config.sparsities):
            key = f"{name}@{s:.4f}"
            if not run.has(key):
                keep = ranking.mask(s)[name]
                with torch.no_grad():
                    params[name].copy_(base[name] * keep)
                acc = ctx.evaluate(work, limit=config.limit, seed=config.seed).accuracy
                with torch.no_grad():
                    params[name].copy_(base[name])
                run.point(key, {"layer": name, "sparsity": s, "accuracy": acc, "drop": dense - acc})
            run.progress(done=i * len(config.sparsities) + j + 1, planned=total, layer=name)
            run.check()
    return {"dense_accuracy": dense, "layers": len(params)}


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
                                   sensitivity_curve))
