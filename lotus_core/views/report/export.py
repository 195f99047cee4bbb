"""The report as one self-contained HTML file: plotly.js embedded inline once (no CDN), so it opens offline; every
text is escaped. :func:`table_frame` is a section table as the page and the file show it."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .model import Report, Section

TABLE_COLUMNS = {"claim": "Claim", "source": "Source", "paper": "Paper's number", "lotus": "LOTUS's number",
                 "verdict": "Verdict", "why": "Why", "runs": "Stored run"}
"""A section table's columns as shown (the page and the HTML export): row key -> heading."""


def table_frame(rows: list[dict]) -> pd.DataFrame:
    """A section's table rows as shown: the :data:`TABLE_COLUMNS` it has, headed in words (run ids joined)."""
    frame = pd.DataFrame(rows)
    frame = frame[[c for c in TABLE_COLUMNS if c in frame]]
    if "runs" in frame:
        frame["runs"] = frame["runs"].map(", ".join)
    return frame.rename(columns=TABLE_COLUMNS)


def to_html(report: Report) -> str:
    """``report`` as one HTML page: warnings, then each section's title, sentence, notes, table, runs and figure
    (plotly.js inline with the first figure only)."""
    parts, first = [f'<p class="warn">{html.escape(w)}</p>' for w in report.warnings], True
    for section in report.sections:
        parts.append(_section_html(section, include_plotlyjs=first))
        first = first and section.figure is None
    return _PAGE.format(title=html.escape(f"LOTUS report: {report.model} on {report.dataset}"),
                        meta=html.escape(f"Model {report.model} on {report.dataset}; built {report.created} from the "
                                         "LOTUS results store."), body="\n".join(parts))


def _section_html(s: Section, include_plotlyjs: bool) -> str:
    parts = [f"<section><h2>{html.escape(s.title)}</h2><p>{html.escape(s.sentence)}</p>"]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in s.notes]
    if s.table:
        parts.append(_html_table(s.table))
    parts += [f'<p class="prov">Run {html.escape(r["run"])} ({html.escape(r["kind"])}): '
              f'{html.escape(r["provenance"])}</p>' for r in s.runs]
    if s.figure is not None:
        parts.append(s.figure.to_html(full_html=False, include_plotlyjs=include_plotlyjs,
                                      config={"displaylogo": False}))
    return "\n".join([*parts, "</section>"])


def _html_table(rows: list[dict]) -> str:
    frame = table_frame(rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f'<table class="claims"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#212121}}
h2{{margin-top:2em}} .note{{color:#616161;font-style:italic}} .meta{{color:#757575}}
.prov{{color:#757575;font-size:0.85em}} .warn{{color:#b71c1c}}
table.claims{{border-collapse:collapse;font-size:0.9em}} table.claims td,table.claims th{{border:1px solid #e0e0e0;
padding:4px 6px;text-align:left;vertical-align:top}}</style></head>
<body><h1>{title}</h1><p class="meta">{meta}</p>
{body}
</body></html>
"""
