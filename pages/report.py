"""Report: a one-page summary for a non-specialist audience, built from the stored results of the
sidebar's model, with an offline HTML export. A few sections, each calling one view of
:mod:`lotus_core.views.report` (Streamlit's demo-self-driving layout)."""
import streamlit as st

from app import charts, provenance, state, ui
from lotus_core.context import Context
from lotus_core.views.report import (Report, ReportOptions, Section, build_report, pinned_runs, results_version,
                                     table_frame)


def options_ui(ctx: Context) -> ReportOptions:
    """The user's choices: the patch example's class; the sidebar's number of test images."""
    classes = ctx.test.classes
    example = st.selectbox("Example images for the patch section", range(len(classes)), format_func=lambda c: classes[c],
                           help="Four test images of this class, with the 10% least-attended patches hidden.",
                           **state.remember("example", 0, range(len(classes))))
    return ReportOptions(limit=state.limit(), example_class=int(example))


@st.cache_resource(max_entries=16, show_spinner="Reading stored results...")
def built_report(version: tuple, options: ReportOptions, _ctx: Context) -> Report:
    """The report of the stored results at ``version``: built once per (version, options) on this server,
    shared by sessions (streamlit's cache locks each key), never modified."""
    return build_report(_ctx, options)


def summary_section(report: Report) -> None:
    """How many sections have their results, the HTML export, and pinned runs that disagree."""
    present = sum(s.missing is None for s in report.sections)
    st.caption(f"Model {ui.literal(report.model)} on {ui.literal(report.dataset)}; {present} of {len(report.sections)} "
               f"sections have their results. Built {report.created}.")
    st.download_button("Export as HTML (opens offline)", report.to_html, "lotus-report.html", "text/html",
                       type="primary", help="One self-contained file with interactive charts; plotly.js is embedded.")
    for warning in report.warnings:
        st.warning(ui.literal(warning))


def pinned_section(ctx: Context) -> None:
    """The runs the Report is built from, each with its unpin toggle."""
    runs = pinned_runs(ctx)
    with st.expander(f"Pinned runs ({len(runs)}): the Report shows these only"):
        st.caption("Pin other runs on the Experiments page; trying other settings on a page never changes the Report "
                   "until that run is pinned.")
        for run in runs:
            st.markdown(f"**{ui.literal(run['kind'])}** `{run['id']}`")
            provenance.pin(ctx, run["id"], "report")


def report_section(ctx: Context, section: Section) -> None:
    """One section: its question, the sentence (or what is missing), notes, table, runs and figure."""
    st.subheader(ui.literal(section.title))  # sentences quote class, model and dataset names: shown literally
    if section.missing is None:
        st.markdown(ui.literal(section.sentence))
    else:
        st.info(ui.literal(section.sentence))
    for note in section.notes:
        st.caption(ui.literal(note))
    if section.table:  # the claims: cells are shown as data (st.dataframe renders no markdown)
        st.dataframe(table_frame(section.table), hide_index=True)
    for run in section.runs:
        provenance.caption(ctx, run["run"], f"report-{section.key}")
    if section.figure is not None:
        charts.show(section.figure, key=f"report-{section.key}")


ui.header("Report", "What pruning does to this model, one chart and one sentence per question, built from the results "
          "stored by the other pages. Missing results say which page produces them.",
          "Essential Sparsity (NeurIPS 2023), Instant Soup Pruning (ICML 2023) and LOTUS's data lottery tickets")
ctx = state.context()
if ctx.head_problem:
    st.warning(f"**{ui.literal(ctx.head_problem)}.** This report describes an untrained classifier; fine-tune it on the Overview.")
options = options_ui(ctx)
with ui.guard():
    report = built_report(results_version(ctx, options.limit), options, ctx)
summary_section(report)
pinned_section(ctx)
for section in report.sections:
    report_section(ctx, section)
