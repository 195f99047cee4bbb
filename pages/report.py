"""Report: a one-page summary for a non-specialist audience, built from the stored results of the
sidebar's model, with an offline HTML export."""
import streamlit as st

from app import charts, state, ui
from lotus_core.views.report import ReportOptions, build_report, results_version

ui.header("Report", "What pruning does to this model, in six charts and six sentences, built from the results "
          "stored by the other pages. Missing results say which page produces them.",
          "Essential Sparsity (NeurIPS 2023), Instant Soup Pruning (ICML 2023) and LOTUS's data lottery tickets")
ctx = state.context()
classes = ctx.test.classes
example = st.selectbox("Example images for the patch section", range(len(classes)), format_func=lambda c: classes[c],
                       help="Four test images of this class, with the 10% least-attended patches hidden.")
options = ReportOptions(limit=state.limit(), example_class=int(example))


@st.cache_resource
def built_reports() -> dict:
    """Reports built on this server, by (results version, options): shared by sessions, never modified."""
    return {}


# a report is rebuilt only when a stored result of this model changes (or the options do)
reports, key = built_reports(), (results_version(ctx), options)
if key not in reports:
    with ui.guard(), st.status("Reading stored results...") as status:
        bar = st.progress(0.0)
        built = build_report(ctx, options, on_progress=lambda done, total, label: bar.progress(done / total, text=label))
        status.update(label="Report built from stored results", state="complete", expanded=False)
    while len(reports) >= 16:  # keep the newest few
        reports.pop(next(iter(reports)))
    reports[(results_version(ctx), options)] = reports[key] = built  # building may store the dense accuracy
report = reports[key]

present = sum(s.missing is None for s in report.sections)
st.caption(f"Model `{report.model}` on `{report.dataset}`; {present} of {len(report.sections)} sections have their "
           f"results. Built {report.created}.")
st.download_button("Export as HTML (opens offline)", report.to_html, "lotus-report.html", "text/html",
                   type="primary", help="One self-contained file with interactive charts; plotly.js is embedded.")

for section in report.sections:
    st.subheader(section.title)
    if section.missing is None:
        st.markdown(section.sentence)
    else:
        st.info(section.sentence)
    for note in section.notes:
        st.caption(note)
    if section.figure is not None:
        charts.show(section.figure, key=f"report-{section.key}")
