"""Where a number was computed, shown next to it on every page (lotus_core.results.provenance holds the rules).

``caption(ctx, run_id)`` writes one grey line under a number: where and how its stored run was computed. A
result computed elsewhere (another precision, thread count, device or training split: docs/provenance.md) gets
the differences and one button that computes it here, keeping both (background jobs for long kinds). ``pin``
is the Report's pin/unpin toggle for a run.
"""
from __future__ import annotations

import streamlit as st

from app import ui
from lotus_core.context import Context
from lotus_core.results.registry import experiments
from lotus_core.results.runs import provenance_label, recompute_here, served_from, stored_config
from lotus_core.views.report import pinned, set_pinned


def caption(ctx: Context, run_id: str | None, key: str) -> None:
    """The provenance line of run ``run_id`` (nothing for None); a "Recompute here" button when it was computed
    elsewhere. ``key`` makes the button's widget key unique on the page."""
    run = ctx.store.get_run(run_id) if run_id else None
    if run is None:
        return
    differs = served_from(ctx, run)
    st.caption(("Computed elsewhere. " if differs else "") + ui.literal(provenance_label(ctx, run_id)))
    if not differs:
        return
    spec = experiments().get(run["kind"])
    if st.button("Recompute here", key=f"recompute-{key}-{run_id}",
                 help="Compute this result on this machine; the one computed elsewhere stays stored beside it."):
        with ui.guard():
            if spec is not None and spec.job:
                from app.jobs import launch

                launch(ctx, run["kind"], stored_config(ctx, run), here=True)
                st.toast("Queued on the background worker; this page shows it when it is done.")
            else:
                with st.spinner("Computing here..."):
                    recompute_here(ctx, run_id)
        st.rerun()


def pin(ctx: Context, run_id: str, key: str) -> None:
    """A toggle that pins run ``run_id`` for the Report (or unpins it); the Report changes only through it."""
    on = run_id in pinned(ctx)
    if st.toggle("Pinned for the Report", value=on, key=f"pin-{key}-{run_id}",
                 help="The Report is built from pinned runs only (the demo's by default): trying other settings "
                      "never changes it until you pin the run.") != on:
        with ui.guard():
            set_pinned(ctx, run_id, not on)
        st.rerun()
