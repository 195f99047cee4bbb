"""Soup: launch lottery-ticket (LTH) and Instant Sparse Soup Pruning (ISSP) runs and their
controls as background jobs, and compare them with one-shot OMP and random pruning."""

import streamlit as st

from app import charts, state, ui
from app.jobs import active_jobs, launch
from lotus_core.context import Context
from lotus_core.results.runs import stored_config
from lotus_core.lottery.controls import CONTROLS, ControlConfig
from lotus_core.lottery.instability import InstabilityConfig
from lotus_core.lottery.issp import MERGES, ISSPConfig
from lotus_core.lottery.lth import LTHConfig
from lotus_core.results.store import RunStatus
from lotus_core.views.catalog import (COMPARED_KINDS, instability_table, omp_finetune_config, rigl_equal_steps_config,
                                      run_label, stable_rewind_points, ticket_runs, training_trace)
from lotus_core.views.comparisons import (COST_HIDDEN, COST_LABELS, SoupComparison, default_tickets,
                                          finished_lth, soup_comparison)
from lotus_core.views.figures import accuracy_lines, barrier_curve, training_curves

ui.header("Soup", "Lottery tickets by iterative magnitude pruning with rewinding, and Instant Soup Pruning's masks "
          "from merged look-aheads, against one-shot OMP and random pruning. Runs go to a background worker: "
          "they keep going when you leave the page and resume after a restart.",
          "Instant Soup Pruning (Jaiswal et al., ICML 2023), which LOTUS used as ISSP and saw collapse to about 50% "
          "accuracy with masks from 10% of the data")


def queue(ctx: Context, kind: str, config, toast: str) -> None:
    """Queue one run on the background worker and say so."""
    with ui.guard():
        rid = launch(ctx, kind, config)
    st.toast(f"{toast} {rid[:6]} queued")


def lth_launcher(ctx: Context, limit: int) -> None:
    """An LTH run: target sparsity, pruned share per round, fine-tune steps, rewind point."""
    c1, c2, c3, c4 = st.columns(4)
    target = c1.slider("Target sparsity (%)", 20, 95, 80, 5, key="lth_target") / 100
    fraction = c2.slider("Pruned per round (% of what is left)", 5, 50, 20, 5) / 100
    steps = c3.number_input("Fine-tune steps per round", 1, 5000, 100, 10)
    stable = [f"step:{k}" for k in stable_rewind_points(ctx) if k]  # instability analyses (k = 0 is "pretrained")
    rewind = c4.selectbox("Rewind to", list(dict.fromkeys(["pretrained", *stable, "step:50", "step:200"])),
                          help="step:K entries before step:50 are the smallest stable k of finished instability "
                               "analyses." if stable else None)
    if st.button("Launch LTH", type="primary"):
        queue(ctx, "lth", LTHConfig(target=target, prune_fraction=fraction, steps=int(steps), rewind=rewind,
                                    limit=limit), "LTH run")


def issp_launcher(ctx: Context, limit: int) -> None:
    """An ISSP run, or three of them over the data fraction."""
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    issp = dict(target=c1.slider("Target sparsity (%)", 20, 95, 80, 5, key="issp_target") / 100,
                denoisers=int(c2.number_input("Denoisers N", 1, 20, 5)),
                lookahead_steps=int(c3.number_input("Look-ahead steps C", 1, 1000, 50, 10)),
                data_fraction=c4.select_slider("Data fraction f", [0.1, 0.3, 1.0], value=0.1),
                merge=c5.selectbox("Merge", list(MERGES), help="; ".join(f"{k}: {v}" for k, v in MERGES.items())),
                finetune_steps=int(c6.number_input("Final fine-tune steps", 0, 5000, 100, 10)), limit=limit)
    b1, b2 = st.columns(2)
    if b1.button("Launch ISSP", type="primary"):
        queue(ctx, "issp", ISSPConfig(**issp), "ISSP run")
    if b2.button("Sweep the data fraction (10%, 30%, 100%)"):
        for f in (0.1, 0.3, 1.0):
            queue(ctx, "issp", ISSPConfig(**{**issp, "data_fraction": f}), "ISSP run")


def control_launcher(ctx: Context) -> None:
    """A control (shuffled or re-initialised) of one round of a finished LTH run."""
    runs = ticket_runs(ctx, ("lth",))
    done = {run_label(r): r for _, r in runs.iterrows() if r["status"] == RunStatus.DONE}
    if not done:
        st.info("Controls need a finished LTH run: launch one first.")
        return
    row = done[st.selectbox("LTH run", list(done))]
    rnd = st.number_input("Round", 1, int(row["summary"]["rounds"]), int(row["summary"]["rounds"]))
    for col, (kind, what) in zip(st.columns(len(CONTROLS)), CONTROLS.items()):
        if col.button(f"{kind}: {what}", key=f"control-{kind}"):
            queue(ctx, "lth-control", ControlConfig(stored_config(ctx, row), int(rnd), kind),
                  f"{kind} control")


def rewind_section(ctx: Context, limit: int) -> None:
    """Instability analysis: which rewind point is stable to SGD noise, with the stored error barriers."""
    st.caption("Instability analysis (Frankle et al., ICML 2020): from step k of one dense fine-tuning run, two "
               "copies train with different data orders; the error barrier on the straight line between them "
               "says whether training from k is stable to SGD noise. The smallest stable k is the rewind point.")
    c1, c2, c3 = st.columns(3)
    ks = c1.multiselect("Rewind points k", [0, 5, 10, 25, 50, 100], default=[0, 10, 25, 50])
    steps = c2.number_input("Steps of the run and of each copy", 1, 5000, 100, 10)
    sparsity = c3.slider("Ticket sparsity (%; 0 = dense)", 0, 95, 0, 5) / 100
    if st.button("Launch instability analysis", type="primary"):
        queue(ctx, "instability", InstabilityConfig(ks=tuple(sorted(ks)), steps=int(steps), sparsity=sparsity,
                                                    limit=limit), "Instability analysis")
    barriers = instability_table(ctx)
    if len(barriers):
        charts.show(barrier_curve(barriers, InstabilityConfig.tolerance, "Error barrier against the rewind point"),
                    key="barrier")
    if barriers["sparsity"].nunique() > 1:  # tickets of several sparsities: is a sparser ticket less stable?
        charts.show(barrier_curve(barriers, InstabilityConfig.tolerance, "Error barrier against the ticket's sparsity",
                                  against="sparsity"), key="barrier-sparsity")


def launch_section(ctx: Context, limit: int) -> None:
    """The four launchers, one tab each, and the jobs they queued."""
    lth_tab, issp_tab, control_tab, rewind_tab = st.tabs(["Launch LTH", "Launch ISSP", "Controls of a ticket",
                                                          "Which rewind point?"])
    with lth_tab:
        lth_launcher(ctx, limit)
    with issp_tab:
        issp_launcher(ctx, limit)
    with control_tab:
        control_launcher(ctx)
    with rewind_tab:
        rewind_section(ctx, limit)
    active_jobs(ctx, ("lth", "issp", "lth-control", "instability", "rigl", "sweep"))


AT_LTH_BUDGET = [  # the comparisons at an LTH run's budget: (button, help, kind, config builder, toast)
    ("Fine-tune OMP, same budget",
     "The Essential Sparsity comparison: OMP masks of the pre-trained weights at these LTH runs' sparsities, each "
     "fine-tuned with one LTH round's steps and learning rate.", "sweep", omp_finetune_config, "OMP + fine-tune"),
    ("RigL, same training steps",
     "RigL (Evci et al., ICML 2020) from the OMP mask at these LTH runs' final sparsity, trained for all of their "
     "rounds' steps together: the two at equal training cost.", "rigl", rigl_equal_steps_config, "RigL"),
]


def comparison_section(ctx: Context, limit: int) -> tuple[SoupComparison, dict[str, str]]:
    """The runs to compare (the newest finished ones until the user chooses) and their accuracy against sparsity,
    as accuracy or as the difference to dense; returns the comparison and the runs' labels."""
    st.subheader("Accuracy at each sparsity")
    runs = ticket_runs(ctx, COMPARED_KINDS)
    labels = {r["id"]: run_label(r) for _, r in runs.iterrows()}
    chosen = st.multiselect("Ticket runs to compare", list(labels), format_func=labels.get,
                            help="By default the newest finished LTH run, the three newest ISSP runs (a data-fraction "
                                 "sweep), the newest RigL run and the newest supermask; a run that finishes joins "
                                 "them until you choose your own.", **state.remember("tickets", default_tickets(runs),
                                                                                      labels))
    lth = finished_lth(chosen, runs)
    for col, (label, why, kind, build, toast) in zip(st.columns(len(AT_LTH_BUDGET)), AT_LTH_BUDGET):
        if lth and col.button(label, help=why):
            for rid in lth:
                queue(ctx, kind, build(ctx, rid), toast)
    with ui.guard(), st.spinner("One-shot OMP and random points (stored after the first time)..."):
        view = soup_comparison(ctx, chosen, runs, limit)  # after the buttons: a run they queued is drawn at once
    difference = st.toggle("Difference to dense", key="soup_difference",
                           help="Draw each curve minus the dense accuracy (points), with the dense accuracy's 95% "
                                "interval as a band: tickets that all sit on the dense line at the accuracy scale are "
                                "told apart here.")
    dense = view.dense
    charts.show(accuracy_lines(view.table, dense["accuracy"], "Accuracy minus dense for each ticket against its "
                               "sparsity" if difference else "Accuracy of each ticket against its sparsity",
                               chance=1 / len(ctx.test.classes), difference=difference, dense_ci=dense["ci95"]),
                key="comparison")
    st.caption("OMP and random are one-shot (no fine-tune); LTH tickets are measured after each round's fine-tune; "
               "ISSP soups before and after their fine-tune; RigL and supermask runs are one trained ticket each."
               + (f" The band is the dense accuracy's 95% interval on {dense['n']:,} test images: a ticket inside "
                  "it is not told apart from dense by this test set." if difference else ""))
    if view.lth:
        st.caption("One-shot points are not fine-tuned: compare LTH with **OMP + fine-tune** (button above) for the "
                   "paper's claim that the two agree within the essential range.")
    return view, labels


def costs_section(view: SoupComparison) -> None:
    """What each finished run cost and what it reached, as two narrow tables (they fit a phone's width)."""
    st.markdown("**Cost of each finished run**: LTH fine-tunes every round; ISSP's cost is N x C look-ahead steps "
                "per round plus one final fine-tune.")
    for name, table in view.costs.items():
        st.dataframe(table, hide_index=True, column_order=[c for c in table.columns if c not in COST_HIDDEN],
                     column_config={c: st.column_config.TextColumn(COST_LABELS.get(c, c), help=c)
                                    for c in table.columns})
    st.caption("Runs by kind and id (the picker above names their settings). steps: training steps in all; time: "
               "training time in seconds; data: ISSP's data fraction; sparsity and accuracy: of the final ticket. "
               "— marks a number the run does not have.")


def trace_section(ctx: Context, view: SoupComparison, labels: dict[str, str]) -> None:
    """The loss of every fine-tune step and the accuracy after each round of one chosen LTH or ISSP run."""
    if not view.trained:
        return
    st.markdown("**How each run trained**: the loss of every fine-tune step and the accuracy after each round.")
    which = st.selectbox("Run", view.trained, format_func=labels.get, key="trace-run")
    losses, rounds = training_trace(ctx, which)
    if losses.empty:
        st.info("This run was stored before LOTUS recorded the loss of every step; its accuracy after each round "
                "is drawn in the comparison above.")
    else:
        charts.show(training_curves(losses, rounds, "Training loss and accuracy, round by round",
                                    chance=1 / len(ctx.test.classes)), key="trace")


ctx = state.context()
limit = state.limit()
st.caption(f"Every run launched here, and every point compared below, is measured on the same {limit:,} test images "
           "(the sidebar's setting).")
launch_section(ctx, limit)
view, labels = comparison_section(ctx, limit)
if not labels:
    st.info("No LTH or ISSP run yet: launch one above. An LTH run to 80% takes a few minutes on 2 CPU cores.")
else:
    costs_section(view)
    trace_section(ctx, view, labels)
