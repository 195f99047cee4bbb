"""Building the report: each section of :data:`SECTIONS` in turn from one :class:`~.stored.Stored`, a section
whose result is not stored (:class:`~.stored.NotStored`) becoming a note naming its page; any other exception is a
bug and propagates."""
from __future__ import annotations

import time
from typing import Callable

from ...context import Context
from .model import SECTION_PAGES, TITLES, Report, ReportOptions, Section
from .paper_claims import claims_section
from .patches import convergence_section, patches_section
from .sparsity import comparison_section, dense_section, essential_section, similarity_section
from .speed import speed_section
from .stored import NotStored, Stored, disagreements, named

Builder = Callable[[Context, ReportOptions, Stored], Section]

SECTIONS: list[tuple[str, str, Builder]] = [
    ("dense", "Dense accuracy", dense_section),
    ("essential", "Essential sparsity", essential_section),
    ("similarity", "OMP vs LTH similarity", similarity_section),
    ("comparison", "ISSP vs OMP vs LTH", comparison_section),
    ("patches", "Patch selection", patches_section),
    ("convergence", "Lottery-training convergence", convergence_section),
    ("speed", "Speed", speed_section),
    ("claims", "Paper claims vs measured here", claims_section),
]
"""(section key, progress label, builder) in report order; titles and pages in :data:`TITLES`,
:data:`SECTION_PAGES`."""


def build_report(ctx: Context, options: ReportOptions | None = None,
                 on_progress: Callable[[int, int, str], None] | None = None) -> Report:
    """The report for ``ctx``'s model and dataset from the stored results (see the package docstring).

    ``on_progress(done, total, label)`` is called before each section. A section whose result is not stored,
    or is stored in a form this version cannot read, says so and names the page that produces it (the only
    errors caught: :class:`~.stored.NotStored`); a first report pins the runs it chose.
    """
    options = options or ReportOptions()
    stored, sections = Stored(ctx, options.limit), []
    for i, (key, label, build) in enumerate(SECTIONS):
        if on_progress is not None:
            on_progress(i, len(SECTIONS), label)
        sections.append(_section(ctx, options, stored, key, build))
    if stored.fresh:  # the first report of this model: what it chose stays its story until the user pins
        for run_id in stored.used:
            ctx.store.set_pin(run_id, True)
    return Report(ctx.model_id, ctx.dataset, time.strftime("%Y-%m-%d %H:%M"), sections,
                  disagreements(list(stored.used.values())))


def _section(ctx: Context, options: ReportOptions, stored: Stored, key: str, build: Builder) -> Section:
    """Section ``key`` with the runs it states, or the note that its result is not stored."""
    stored.reading = []
    try:
        section = build(ctx, options, stored)
    except NotStored as missing:
        page = SECTION_PAGES[key]
        return Section(key, TITLES[key], missing.sentence(page), missing=page)
    section.runs = [named(ctx, stored.used[rid]) for rid in stored.reading]
    return section
