"""What an API call returns: an :class:`ExperimentResult` (the command's ``--json`` output, its stored runs, a
table and the Experiments page's chart), with a table and chart of their own for sweeps and patch scores."""
from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import torch

from ..context import Context


@dataclasses.dataclass
class ExperimentResult:
    """What one API call computed (or served from the store).

    Attributes:
        kind: the command, e.g. ``"sweep"``.
        output: what the CLI prints with ``--json`` for the same call.
        run_ids: the stored runs the call made or read (the Experiments page lists them).
    Every field of ``output`` is an attribute too (``result.dense``, ``result.accuracy``).
    """

    kind: str
    output: dict
    run_ids: list[str]
    context: Context = dataclasses.field(repr=False)

    def __getattr__(self, name: str) -> Any:
        output = self.__dict__.get("output") or {}
        if name in output:
            return output[name]
        raise AttributeError(f"{self.kind} result has no attribute {name!r}; it has {', '.join(output)}")

    @property
    def run_id(self) -> str | None:
        """The (first) stored run of the call."""
        return self.run_ids[0] if self.run_ids else None

    def to_frame(self) -> pd.DataFrame:
        """The result as a table: the curve of its runs (columns run, kind, series, axis, x, accuracy) where the
        kind has one, else its run's points; for a call that stores no run, its first table-like output (a list of
        rows, or a mapping of rows such as sensitivity's layer -> sparsity -> drop), else one row of its scalars."""
        from ..views.experiments import overlay_curves

        if self.run_ids:
            curves = overlay_curves(self.context.store, self.run_ids)
            if len(curves):
                return curves
            return self.context.store.points_frame(self.run_ids[0])
        for value in self.output.values():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return pd.DataFrame(value)
            if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
                return pd.DataFrame.from_dict(value, orient="index")
        return pd.DataFrame([{k: v for k, v in self.output.items() if isinstance(v, (int, float, str, bool))}])

    def figure(self):
        """The Experiments page's chart of the result's curve (plotly), or None for a kind without a curve."""
        from ..views.experiments import overlay_curves, overlay_figures

        figures = overlay_figures(overlay_curves(self.context.store, self.run_ids)) if self.run_ids else {}
        return next(iter(figures.values()), None)

    def _repr_html_(self) -> str:
        import html

        scalars = {k: v for k, v in self.output.items() if isinstance(v, (int, float, str, bool)) or v is None}
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(f'{v:.4g}' if isinstance(v, float) else str(v))}</td></tr>"
                       for k, v in scalars.items())
        return f"<b>{html.escape(self.kind)}</b> <code>{html.escape(', '.join(r[:12] for r in self.run_ids))}</code>" \
               f"<table>{rows}</table>"


@dataclasses.dataclass
class SweepResult(ExperimentResult):
    """A sweep: ``dense_accuracy``, ``turning_points`` (method -> essential sparsity), the Pruning page's chart."""

    @property
    def dense_accuracy(self) -> float:
        return self.output["dense"]["accuracy"]

    @property
    def turning_points(self) -> dict[str, float]:
        """Each method's essential sparsity (the highest before accuracy drops below dense - eps; fraction)."""
        return {m: e["essential_sparsity"] for m, e in self.output["essential"].items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per evaluated point: method, sparsity, accuracy, ci_low, ci_high, ... (fractions)."""
        return pd.DataFrame(self.output["points"])

    def figure(self):
        from ..pruning.sweep import sweep_result
        from ..views.figures import sparsity_curve

        stored = sweep_result(self.context, {**self.output, "run_id": self.run_id})
        eps = self.context.store.get_run(self.run_id)["config"]["eps"]  # every sweep key has its eps
        return sparsity_curve(stored.frame, stored.dense, stored.essential, eps)

    def _repr_html_(self) -> str:
        import html

        points = ", ".join(f"{html.escape(m)} {100 * s:.1f}%" for m, s in self.turning_points.items())
        return f"<b>sweep</b>: dense {100 * self.dense_accuracy:.2f}%; turning point {points}" + \
            self.to_frame().to_html(max_rows=20)


@dataclasses.dataclass
class PatchesResult(ExperimentResult):
    """Patch scores and data lottery tickets of test images, drawn as the Patches page draws them."""

    def to_frame(self) -> pd.DataFrame:
        """One row per image and patch: index, label, prediction, prediction_lottery, patch, score, kept."""
        rows = [{"index": r["index"], "label": r["label"], "prediction": r["prediction"],
                 "prediction_lottery": r["prediction_lottery"], "patch": p, "score": s, "kept": p in set(r["kept"])}
                for r in self.output["images"] for p, s in enumerate(r["scores"])]
        return pd.DataFrame(rows)

    def figure(self):
        from ..patches.analysis import to_uint8_model_size
        from ..views.patch_figures import patch_overlays, patch_title
        from ..patches.grid import patch_grid

        ctx, records = self.context, self.output["images"]
        images = to_uint8_model_size(ctx.test.images[[r["index"] for r in records]], ctx.data_config)
        scores = torch.tensor([r["scores"] for r in records])
        keep = torch.zeros_like(scores, dtype=torch.bool)
        for i, r in enumerate(records):
            keep[i, r["kept"]] = True
        names = ctx.test.classes
        titles = [patch_title(f"#{r['index']}", names[r['label']], names[r['prediction']], names[r['prediction_lottery']])
                  for r in records]
        return patch_overlays(images, scores, keep, patch_grid(ctx.model, ctx.data_config["input_size"][1:]), titles)

    def _repr_html_(self) -> str:
        return super()._repr_html_() + self.to_frame().groupby("index")["kept"].sum().to_frame("kept patches").to_html()


RESULTS: dict[str, type[ExperimentResult]] = {"sweep": SweepResult, "patches": PatchesResult}
"""Kinds whose result has a table and chart of its own (others: :class:`ExperimentResult`)."""


def run_ids(output: dict) -> list[str]:
    ids = [output["run_id"]] if output.get("run_id") else []
    return ids + [r["run_id"] for r in output.get("runs", []) if isinstance(r, dict) and r.get("run_id")]
