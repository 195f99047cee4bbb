"""What a report is: its options, its sections and the report itself (plain data; :mod:`.export` writes HTML).

Accuracies and sparsities are fractions in [0, 1]; sentences and figures show percent, tolerances in points.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go

from ...training.evaluate import DEFAULT_LIMIT
from ...core.text import count_text
from .export import to_html


@dataclass(frozen=True)
class ReportOptions:
    """What the report shows beyond the stored results."""

    limit: int = DEFAULT_LIMIT  # test images of the dense accuracy (fixed seeded subset)
    example_class: int = 0  # class of the patch-selection example images (index into the dataset's classes)
    example_images: int = 4  # how many example images
    drop: float = 0.1  # fraction of patches the example drops (0.1 = 10%)
    scorer: str = "cls"  # patch scorer of the example (cls: CLS attention of the last block, cheap)


TITLES = {
    "dense": "How accurate is the model before pruning?",
    "essential": "How much can be pruned at almost no cost?",
    "similarity": "Do lottery tickets and one-shot pruning keep the same weights?",
    "comparison": "Are lottery tickets and Instant Soup worth their training?",
    "patches": "Which parts of an image does the model need?",
    "convergence": "Does training on the kept patches learn as fast?",
    "speed": "Does it run faster?",
    "claims": "Paper claims vs measured here",
}
"""Section key -> its title: the question it answers, in report order."""

SECTION_PAGES = {"dense": "Overview", "essential": "Sparsity curves", "similarity": "Soup", "comparison": "Soup",
                 "patches": "Patches", "convergence": "Patches", "speed": "Speed", "claims": "Experiments"}
"""Section key -> the page that produces (and explores) its result."""


@dataclass
class Section:
    """One section: a figure and the sentence stating its number, or a note on what is missing."""

    key: str  # stable id, e.g. "essential"
    title: str
    sentence: str  # the generated sentence (or, when missing, what to do)
    figure: go.Figure | None = None
    value: float | None = None  # the headline number the sentence states (a fraction)
    missing: str | None = None  # the page that produces the missing result (None: present)
    notes: list[str] = field(default_factory=list)  # secondary notes (e.g. a missing part of a comparison)
    runs: list[dict] = field(default_factory=list)  # the stored runs it states: {"run", "kind", "provenance"}
    table: list[dict] = field(default_factory=list)  # rows of a table the section shows (the claims: ClaimCheck.to_dict)

    @classmethod
    def of(cls, key: str, sentence: str, figure: go.Figure | None = None, value: float | None = None,
           **more) -> Section:
        """Section ``key`` under its title (:data:`TITLES`)."""
        return cls(key, TITLES[key], sentence, figure, value, **more)

    def to_dict(self) -> dict:
        out = {"key": self.key, "title": self.title, "sentence": self.sentence, "value": self.value,
               "missing": self.missing, "notes": self.notes, "figure": self.figure is not None, "runs": self.runs}
        return {**out, "table": self.table} if self.table else out


@dataclass
class Report:
    model: str  # model id (name@checkpoint hash)
    dataset: str
    created: str  # local time the report was built, ISO format
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)  # pinned runs that disagree with each other

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)

    def to_dict(self) -> dict:
        """JSON-ready: everything but the figures."""
        return {"model": self.model, "dataset": self.dataset, "created": self.created, "warnings": self.warnings,
                "sections": [s.to_dict() for s in self.sections]}

    def to_html(self) -> str:
        """One self-contained HTML page (:func:`.export.to_html`): it opens offline."""
        return to_html(self)


def pct(x: float, digits: int = 1) -> str:
    """A fraction as percent text: ``pct(0.891) == "89.1%"``."""
    return f"{100 * x:.{digits}f}%"


def points(eps: float) -> str:
    """A tolerance ``eps`` (a fraction of accuracy) in points, singular or plural: "1 point", "2 points",
    "0.5 points" (:func:`~lotus_core.core.text.count_text`)."""
    return count_text(round(100 * eps, 6), "point")
