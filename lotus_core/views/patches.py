"""What the Patches page shows for the user's choices: the scored images with their titles and a word on
uploads whose background the model does not expect (:func:`selection`), and the scorer comparison, served
from the store when computed (:func:`scorer_comparison`). Accuracies and the drop ratio are fractions.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go
import torch

from ..context import Context
from ..patches.analysis import PatchReport, explain_images
from ..patches.fidelity import FidelityConfig, FidelityResult, fidelity
from ..patches.options import PatchScoring
from ..patches.upload import invert, polarity_notes
from ..results.runs import stored_summary
from .overview import class_name
from .patch_figures import patch_overlays, patch_title

REFERENCE_IMAGES = 500  # test images whose border tells the background the model was trained on


@dataclass
class Selection:
    """The scored images of :func:`selection`: the report (scores, kept patches, predictions), the overlay
    figure titled image by image, and one line per upload whose background is the opposite of the data's."""

    report: PatchReport
    figure: go.Figure
    notes: list[str] = field(default_factory=list)


def selection(ctx: Context, scorer: str, drop: float, scoring: PatchScoring, indices: list[int] | None = None,
              images: torch.Tensor | None = None, names: list[str] | None = None,
              inverted: bool = False) -> Selection:
    """Score test images ``indices`` or uploaded uint8 ``images`` (``names``: their file names, the titles of
    their images) with ``scorer`` and drop the ``drop`` least important patches; ``inverted`` shows the uploads
    to the model with their colours inverted (a light-background photo to a dark-background model)."""
    notes = []
    if images is not None:
        names = list(names) if names is not None else [f"upload {i + 1}" for i in range(len(images))]
        if not inverted:
            notes = polarity_notes(images, names, ctx.test.images[:REFERENCE_IMAGES], ctx.test.name)
        images = invert(images) if inverted else images
    report = explain_images(ctx, scorer, drop, scoring.with_seed(0), indices=indices, images=images)
    classes = ctx.test.classes
    titles = []
    for i in range(len(report.scores)):
        where = f"#{report.indices[i]}" if report.indices[i] is not None else names[i]
        truth = classes[report.labels[i]] if report.labels[i] is not None else None
        before, after = (class_name(classes, int(p[i])) for p in (report.prediction, report.prediction_lottery))
        titles.append(patch_title(where, truth, before, after))
    figure = patch_overlays(report.model_images, report.scores, report.keep, report.grid, titles)
    return Selection(report, figure, notes)


# ---------------------------------------------------------------------------- scorer comparison
AGREEMENT_ORDER = ["scorer", "compared with", "rank agreement (-1 to 1)", "share of top patches in common", "by chance",
                   "share of dropped patches in common", "by chance (dropped)"]
"""The agreement table's columns in reading order (a stored run's table comes back in key order)."""


@dataclass
class Comparison:
    """The scorer comparison of :func:`scorer_comparison`: its configuration, and its result and agreement
    table (columns :data:`AGREEMENT_ORDER`) once stored, else None."""

    config: FidelityConfig
    result: FidelityResult | None = None
    table: pd.DataFrame | None = None


def scorer_comparison(ctx: Context, scorers: list[str], limit: int, drop: float,
                      scoring: PatchScoring) -> Comparison:
    """The deletion/insertion curves and agreement of ``scorers`` on ``limit`` test images, read from the
    store when that comparison was computed (it is computed by a background job, never on a page's rerun)."""
    config = FidelityConfig(scorers=tuple(scorers), limit=limit, drop=drop, scoring=scoring)
    if not scorers or stored_summary(ctx, "fidelity", config) is None:
        return Comparison(config)
    result = fidelity(ctx, config)  # served from the store
    table = result.agreement_in_words()
    return Comparison(config, result, table[[c for c in AGREEMENT_ORDER if c in table] +
                                            [c for c in table if c not in AGREEMENT_ORDER]])
