"""Experiments: every stored run in one filterable table; overlay the curves of chosen runs;
download a run's table, masks and configuration; delete a run; running jobs with live progress.
Each section returns the user's choices or calls one view (lotus_core.views.experiments)."""
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app import charts, provenance, state, ui
from app.jobs import active_jobs
from lotus_core.context import Context
from lotus_core.views.experiments import (ACTIVE, AUTOMATIC, NAME_CHARS, NOTE_CHARS, POINT_KINDS, annotate_run,
                                          config_differences, curves, delete_run, downloads, run_name, run_table,
                                          shown_runs)
from lotus_core.views.mlflow_export import export_runs, tracking_uri

ui.header("Experiments", "Every stored run (evaluations, sweeps, LTH and ISSP runs, lottery training) with its "
          "configuration, status, duration and headline numbers. Select rows to overlay their curves.",
          "every number on the other pages is one of these runs, stored under the hash of its configuration")

COLUMNS = ["name", "kind", "status", "headline", "accuracy", "sparsity", "pinned", "computed", "duration_s", "created",
           "model", "dataset", "note", "id", "config", "error"]
COLUMN_CONFIG = {
    "accuracy": st.column_config.TextColumn("accuracy", help="The run's headline accuracy; — : none"),
    "sparsity": st.column_config.TextColumn("sparsity", help="The run's headline sparsity; — : none"),
    "duration_s": st.column_config.NumberColumn("duration", format="%.1f s"),
    "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss"),
    "name": st.column_config.TextColumn("run", width="medium", help="Your name for the run (One run, below), else its "
                                                                    "settings"),
    "headline": st.column_config.TextColumn("headline", width="large"),
    "pinned": st.column_config.CheckboxColumn("report", help="Pinned for the Report (One run, below)"),
    "computed": st.column_config.TextColumn("computed", width="medium", help="Where and how it was computed (its "
                                                                             "provenance)"),
    "config": st.column_config.TextColumn("configuration (JSON)")}


@dataclass(frozen=True)
class Filters:
    """The table's filters as the user set them (empty: any)."""

    kinds: list[str]
    statuses: list[str]
    models: list[str]
    text: str
    points: bool


def filters_ui(table: pd.DataFrame) -> Filters:
    """Kind, status, model, a text search and whether sweep points are listed."""
    f1, f2, f3, f4 = st.columns([3, 2, 3, 3])
    points = st.toggle("Show sweep points", help=f"Every point of a sweep is also a run of its own "
                       f"({', '.join(POINT_KINDS)}), shared by all sweeps that contain it.")
    kinds = f1.multiselect("Kind", sorted(k for k in table["kind"].unique() if points or k not in POINT_KINDS),
                           placeholder="all kinds")
    statuses = f2.multiselect("Status", sorted(table["status"].unique()), placeholder="any status")
    models = f3.multiselect("Model", sorted(table["model"].dropna().unique()), placeholder="all models")
    text = f4.text_input("Search", placeholder="id, method, setting...", help="Matches id, kind, model, dataset, status, "
                         "headline and configuration.")
    return Filters(kinds, statuses, models, text, points)


def table_section(table: pd.DataFrame, filters: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The filtered run table; returns the rows shown and the rows the user selected."""
    shown = shown_runs(table, filters.kinds, filters.statuses, filters.models, filters.text, filters.points)
    st.caption(f"{len(shown.rows)} of {len(table)} runs, newest first. Accuracy and sparsity are the run's headline "
               "numbers.")
    if shown.automatic:
        st.caption("Runs nobody launched by hand: " + "; ".join(f"**{k}** is {AUTOMATIC[k]}"
                                                                 for k in shown.automatic) + ".")
    event = st.dataframe(shown.display, key="runs", on_select="rerun", selection_mode="multi-row", hide_index=True,
                         column_order=[c for c in COLUMNS if c in shown.display], column_config=COLUMN_CONFIG)
    rows = [i for i in (event.selection.rows if event is not None else []) if i < len(shown.rows)]  # a filter may
    return shown.rows, shown.rows.iloc[rows]  # shrink the table


def curves_section(ctx: Context, selected: pd.DataFrame, shown: pd.DataFrame) -> None:
    """The curves of the selected runs overlaid (else the newest run's)."""
    st.subheader("Curves")
    view = curves(ctx.store, selected, shown)
    if view.message:
        st.info(view.message)
    if view.caption:
        st.caption(view.caption)
    for axis, fig in view.figures.items():
        charts.show(fig, key=f"overlay-{axis}")


def run_ui(pick: pd.DataFrame) -> tuple[str, dict[str, str]]:
    """The run picked (from the selected rows, else the table) and the picker's labels -> run ids."""
    st.subheader("One run")
    if pick.empty:
        st.info("No run matches the filters.")
        st.stop()
    labels = {f"{r.name} {r.id[:6]} ({r.status}) {r.headline if isinstance(r.headline, str) else ''}": r.id
              for r in pick.itertuples()}
    return labels[st.selectbox("Run", list(labels), help="From the selected rows, else from the table.")], labels


def run_section(ctx: Context, run_id: str) -> dict:
    """Where the run was computed, its pin, downloads, MLflow export, name and note, configuration and summary;
    returns the run."""
    run = ctx.store.get_run(run_id)
    provenance.caption(ctx, run_id, "experiments")
    if run["status"] == "done":
        provenance.pin(ctx, run_id, "experiments")
    cols = st.columns(4)
    for col, item in zip(cols, downloads(ctx.store, run_id)):
        col.download_button(item.label, item.data, item.file_name, item.mime, key=f"dl-{item.file_name}")
    tracking = tracking_uri()
    if st.button("Export to MLflow", disabled=not tracking or run["status"] != "done", key="mlflow-export",
                 help=f"One MLflow run at {tracking}, never duplicated." if tracking else
                 "Start the dashboard with MLFLOW_TRACKING_URI set (and pip install -e '.[tracking]') to export runs."):
        with ui.guard():
            exported = export_runs(ctx.store, [run_id], tracking)[0]
            st.toast(f"MLflow run {exported['mlflow_run']}" + ("" if exported["created"] else " (exported before)"))
    with st.form(f"annotate-{run_id}", border=False):
        n1, n2, n3 = st.columns([3, 5, 1.2], vertical_alignment="bottom")
        name = n1.text_input("Name", run["name"] or "", max_chars=NAME_CHARS,
                             placeholder=run_name(run["kind"], run["config"]))
        note = n2.text_input("Note", run["note"] or "", max_chars=NOTE_CHARS,
                             placeholder="what this run is for, what it showed")
        if n3.form_submit_button("Save"):
            with ui.guard():
                annotate_run(ctx.store, run_id, name, note)
            st.toast("Saved")
            st.rerun()
    with st.expander("Configuration and summary"):
        st.json({"id": run_id, "status": run["status"], "error": run["error"], "config": run["config"],
                 "summary": run["summary"], "progress": run["progress"]}, expanded=1)
    delete_ui(ctx, run, cols[3])
    return run


def delete_ui(ctx: Context, run: dict, where) -> None:
    """Delete the run, after a confirmation (a queued or running run must be cancelled first)."""
    run_id = run["id"]
    if st.session_state.get("confirm_delete") != run_id:
        if where.button("Delete run", disabled=run["status"] in ACTIVE,
                        help="Cancel it first (above)." if run["status"] in ACTIVE else "Asks for confirmation."):
            st.session_state["confirm_delete"] = run_id
            st.rerun()
        return
    points = len(ctx.store.points(run_id))
    st.warning(f"Delete {run['kind']} run {run_id} with its {points} stored points and saved masks? This cannot be "
               "undone; a later request recomputes it.")
    yes, no = st.columns([1, 6])
    if yes.button("Yes, delete", type="primary"):
        with ui.guard():
            delete_run(ctx.store, run_id)
        del st.session_state["confirm_delete"]
        st.toast(f"Deleted run {run_id}")
        st.rerun()
    if no.button("Keep it"):
        del st.session_state["confirm_delete"]
        st.rerun()


def differences_section(ctx: Context, labels: dict[str, str]) -> None:
    """What differs between the configurations of two runs."""
    if len(labels) < 2:
        return
    st.subheader("What differs between two runs")
    d1, d2 = st.columns(2)
    first = d1.selectbox("Run A", list(labels), index=0, key="diff-a")
    second = d2.selectbox("Run B", list(labels), index=1, key="diff-b")
    with ui.guard():
        differences = config_differences(ctx.store, labels[first], labels[second])
    if differences.empty:
        st.info("The two configurations are the same.")
    else:
        st.dataframe(differences, hide_index=True, column_config={"a": "run A", "b": "run B"})


ctx = state.context()
active_jobs(ctx)
table = run_table(ctx.store)
if table.empty:
    st.info("No run is stored yet. The Overview page stores the dense accuracy, the Sparsity curves page computes a "
            "curve on first visit, the Soup page launches LTH and ISSP runs and the Patches page lottery training.")
    st.stop()
shown, selected = table_section(table, filters_ui(table))
curves_section(ctx, selected, shown)
run_id, labels = run_ui(selected if len(selected) else shown)
run_section(ctx, run_id)
differences_section(ctx, labels)
