"""Background-job widgets shared by pages: launch, live progress, cancel."""
from __future__ import annotations

from typing import Any

import streamlit as st

from lotus_core import jobs
from lotus_core.results.store import ACTIVE, RunStatus
from lotus_core.context import Context
from lotus_core.views.progress import describe, fraction_done


def launch(ctx: Context, kind: str, config: Any, here: bool = False) -> str:
    """Queue ``kind`` with ``config`` on the background worker (started if needed); returns the run id.

    The worker belongs to this dashboard: it exits when the dashboard does (and is stopped at a clean
    shutdown); ``python -m lotus_core worker --stop`` stops it by hand."""
    jobs.ensure_worker(ctx.store)
    spec = jobs.context_spec(ctx, model=st.session_state.get("model", "default"),
                             weights=st.session_state.get("weights") or None)  # the context's device too
    return jobs.submit(spec, kind, config, ctx, here=here)


@st.fragment(run_every=2)
def active_jobs(ctx: Context, kinds: tuple[str, ...] | None = None) -> None:
    """Queued and running jobs with live progress and a cancel button; refreshes every 2 s."""
    if jobs.needs_worker(ctx.store):  # jobs wait, or a dead worker's job needs taking over: start one
        jobs.ensure_worker(ctx.store)
    runs = ctx.store.runs()
    active = runs[runs["status"].isin(ACTIVE)]
    if kinds:
        active = active[active["kind"].isin(kinds)]
    # a job that left the active list since the last tick has finished: redraw the whole page with its results
    seen_key = f"active-jobs-{kinds}"
    finished = st.session_state.get(seen_key, set()) - set(active["id"])
    st.session_state[seen_key] = set(active["id"])
    if finished:
        st.rerun(scope="app")
    if active.empty:
        return
    st.markdown("**Running and queued jobs**")
    st.caption("The background worker stops with the dashboard; `python -m lotus_core worker --stop` stops it by hand.")
    for _, run in active.iterrows():
        progress = run["progress"] or {}
        c1, c2 = st.columns([5, 1])
        text = f"{run['kind']} {run['id'][:6]} ({run['status']}): {describe(progress, run['kind'])}"
        c1.progress(fraction_done(progress, run["kind"]) or 0.0, text=text)
        if run["status"] != RunStatus.CANCELLING and c2.button("Cancel", key=f"cancel-{run['id']}"):
            jobs.cancel(ctx.store, run["id"])
            st.rerun()


def offer(ctx: Context, kind: str, config: Any, what: str, button: str, queued: str) -> bool:
    """A background experiment not stored yet: ``what`` it does and the measured time of the last finished run of
    ``kind`` (not a constant), a ``button`` that queues it (toast "``queued`` <id> queued"), and the jobs of that
    kind. Returns whether it is stored now (at once in tests, where jobs run inline)."""
    from app import ui
    from lotus_core.results.runs import stored_summary
    from lotus_core.views.progress import duration, last_duration

    last = last_duration(ctx.store, kind)
    took = f"the last one took {duration(last)}" if last else "the job list shows its progress and time left"
    st.info(f"{what} It runs in the background ({took}), so this page stays usable, and is stored afterwards.")
    if st.button(button):
        with ui.guard():
            run_id = launch(ctx, kind, config)
        st.toast(f"{queued} {run_id[:6]} queued")
    active_jobs(ctx, (kind,))
    return stored_summary(ctx, kind, config) is not None
