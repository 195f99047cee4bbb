"""Soup: launch lottery-ticket (LTH) and Instant Sparse Soup Pruning (ISSP) runs and their
controls as background jobs, and compare them with one-shot OMP and random pruning."""

import streamlit as st

from app import charts, state, ui
from app.jobs import active_jobs, launch
from lotus_core.views.figures import accuracy_lines, barrier_curve, training_curves
from lotus_core.core.config import from_mapping
from lotus_core.results.store import RunStatus
from lotus_core.views.catalog import (COMPARED_KINDS, accuracy_comparison, cost_table, instability_table,
                                       omp_finetune_config, rigl_equal_steps_config, run_costs, run_label,
                                       stable_rewind_points, ticket_runs, training_trace)
from lotus_core.lottery.instability import InstabilityConfig
from lotus_core.lottery.controls import CONTROLS, ControlConfig
from lotus_core.lottery.issp import MERGES, ISSPConfig
from lotus_core.lottery.lth import LTHConfig

ui.header("Soup", "Lottery tickets by iterative magnitude pruning with rewinding, and Instant Soup Pruning's masks "
          "from merged look-aheads, against one-shot OMP and random pruning. Runs go to a background worker: "
          "they keep going when you leave the page and resume after a restart.",
          "Instant Soup Pruning (Jaiswal et al., ICML 2023), which LOTUS used as ISSP and saw collapse to about 50% "
          "accuracy with masks from 10% of the data")
ctx = state.context()
limit = state.limit()
st.caption(f"Every run launched here, and every point compared below, is measured on the same {limit:,} test images "
           "(the sidebar's setting).")

lth_tab, issp_tab, control_tab, rewind_tab = st.tabs(["Launch LTH", "Launch ISSP", "Controls of a ticket",
                                                      "Which rewind point?"])
with lth_tab:
    c1, c2, c3, c4 = st.columns(4)
    target = c1.slider("Target sparsity (%)", 20, 95, 80, 5, key="lth_target") / 100
    fraction = c2.slider("Pruned per round (% of what is left)", 5, 50, 20, 5) / 100
    steps = c3.number_input("Fine-tune steps per round", 1, 5000, 100, 10)
    stable = [f"step:{k}" for k in stable_rewind_points(ctx) if k]  # instability analyses (k = 0 is "pretrained")
    rewind = c4.selectbox("Rewind to", list(dict.fromkeys(["pretrained", *stable, "step:50", "step:200"])),
                          help="step:K entries before step:50 are the smallest stable k of finished instability "
                               "analyses." if stable else None)
    if st.button("Launch LTH", type="primary"):
        with ui.guard():
            rid = launch(ctx, "lth", LTHConfig(target=target, prune_fraction=fraction, steps=int(steps), rewind=rewind,
                                               limit=limit))
        st.toast(f"LTH run {rid[:6]} queued")
with issp_tab:
    c1, c2, c3, c4, c5, c6 = st.columns(6)
    issp = dict(target=c1.slider("Target sparsity (%)", 20, 95, 80, 5, key="issp_target") / 100,
                denoisers=int(c2.number_input("Denoisers N", 1, 20, 5)),
                lookahead_steps=int(c3.number_input("Look-ahead steps C", 1, 1000, 50, 10)),
                data_fraction=c4.select_slider("Data fraction f", [0.1, 0.3, 1.0], value=0.1),
                merge=c5.selectbox("Merge", list(MERGES), help="; ".join(f"{k}: {v}" for k, v in MERGES.items())),
                finetune_steps=int(c6.number_input("Final fine-tune steps", 0, 5000, 100, 10)), limit=limit)
    b1, b2 = st.columns(2)
    if b1.button("Launch ISSP", type="primary"):
        with ui.guard():
            rid = launch(ctx, "issp", ISSPConfig(**issp))
        st.toast(f"ISSP run {rid[:6]} queued")
    if b2.button("Sweep the data fraction (10%, 30%, 100%)"):
        with ui.guard():
            for f in (0.1, 0.3, 1.0):
                launch(ctx, "issp", ISSPConfig(**{**issp, "data_fraction": f}))
        st.toast("Three ISSP runs queued")
with control_tab:
    runs = ticket_runs(ctx, ("lth",))
    done = {run_label(r): r for _, r in runs.iterrows() if r["status"] == RunStatus.DONE}
    if not done:
        st.info("Controls need a finished LTH run: launch one first.")
    else:
        row = done[st.selectbox("LTH run", list(done))]
        rnd = st.number_input("Round", 1, int(row["summary"]["rounds"]), int(row["summary"]["rounds"]))
        for col, (kind, what) in zip(st.columns(len(CONTROLS)), CONTROLS.items()):
            if col.button(f"{kind}: {what}", key=f"control-{kind}"):
                with ui.guard():
                    rid = launch(ctx, "lth-control", ControlConfig(from_mapping(LTHConfig, row["config"]), int(rnd), kind))
                st.toast(f"{kind} control {rid[:6]} queued")

with rewind_tab:
    st.caption("Instability analysis (Frankle et al., ICML 2020): from step k of one dense fine-tuning run, two "
               "copies train with different data orders; the error barrier on the straight line between them "
               "says whether training from k is stable to SGD noise. The smallest stable k is the rewind point.")
    c1, c2, c3 = st.columns(3)
    ks = c1.multiselect("Rewind points k", [0, 5, 10, 25, 50, 100], default=[0, 10, 25, 50])
    isteps = c2.number_input("Steps of the run and of each copy", 1, 5000, 100, 10)
    isparsity = c3.slider("Ticket sparsity (%; 0 = dense)", 0, 95, 0, 5) / 100
    if st.button("Launch instability analysis", type="primary"):
        with ui.guard():
            rid = launch(ctx, "instability", InstabilityConfig(ks=tuple(sorted(ks)), steps=int(isteps),
                                                               sparsity=isparsity, limit=limit))
        st.toast(f"Instability analysis {rid[:6]} queued")
    barriers = instability_table(ctx)
    if len(barriers):
        charts.show(barrier_curve(barriers, InstabilityConfig.tolerance, "Error barrier against the rewind point"),
                    key="barrier")
    if barriers["sparsity"].nunique() > 1:  # tickets of several sparsities: is a sparser ticket less stable?
        charts.show(barrier_curve(barriers, InstabilityConfig.tolerance, "Error barrier against the ticket's sparsity",
                                  against="sparsity"), key="barrier-sparsity")

active_jobs(ctx, ("lth", "issp", "lth-control", "instability", "rigl", "sweep"))

st.subheader("Accuracy at each sparsity")
runs = ticket_runs(ctx, COMPARED_KINDS)
labels = {r["id"]: run_label(r) for _, r in runs.iterrows()}
NEWEST = {"lth": 1, "issp": 3, "rigl": 1, "supermask": 1}  # runs of each kind drawn by default (ISSP: a sweep)
status = runs.set_index("id")[["kind", "status"]]
finished = status[status["status"] == RunStatus.DONE]
default = [rid for kind, n in NEWEST.items() for rid in list(finished.index[finished["kind"] == kind])[:n]]
chosen = st.multiselect("Ticket runs to compare", list(labels), format_func=labels.get,
                        help="By default the newest finished LTH run, the three newest ISSP runs (a data-fraction "
                             "sweep), the newest RigL run and the newest supermask; a run that finishes joins them "
                             "until you choose your own.", **state.remember("tickets", default, labels))
done_ids = [rid for rid in chosen if status.loc[rid, "status"] == RunStatus.DONE]
lth_chosen = [rid for rid in done_ids if status.loc[rid, "kind"] == "lth"]
# the comparisons at an LTH run's budget: (button, help, kind, config builder, toast)
AT_LTH_BUDGET = [
    ("Fine-tune OMP, same budget",
     "The Essential Sparsity comparison: OMP masks of the pre-trained weights at these LTH runs' sparsities, each "
     "fine-tuned with one LTH round's steps and learning rate.", "sweep", omp_finetune_config, "OMP + fine-tune queued"),
    ("RigL, same training steps",
     "RigL (Evci et al., ICML 2020) from the OMP mask at these LTH runs' final sparsity, trained for all of their "
     "rounds' steps together: the two at equal training cost.", "rigl", rigl_equal_steps_config, "RigL queued"),
]
for col, (label, why, kind, build, toast) in zip(st.columns(len(AT_LTH_BUDGET)), AT_LTH_BUDGET):
    if lth_chosen and col.button(label, help=why):
        with ui.guard():
            for rid in lth_chosen:
                launch(ctx, kind, build(ctx, rid))
        st.toast(toast)
with ui.guard(), st.spinner("One-shot OMP and random points (stored after the first time)..."):
    table = accuracy_comparison(ctx, list(chosen), limit=limit)
    dense = ctx.dense_accuracy(limit=limit)["accuracy"]
difference = st.toggle("Difference to dense", help="Draw each curve minus the dense accuracy (points): tickets that "
                       "all sit on the dense line at the accuracy scale are told apart here.", key="soup_difference")
charts.show(accuracy_lines(table, dense, "Accuracy minus dense for each ticket against its sparsity" if difference else
                           "Accuracy of each ticket against its sparsity", chance=1 / len(ctx.test.classes),
                           difference=difference), key="comparison")
st.caption("OMP and random are one-shot (no fine-tune); LTH tickets are measured after each round's fine-tune; ISSP "
           "soups before and after their fine-tune; RigL and supermask runs are one trained ticket each.")
if lth_chosen:
    st.caption("One-shot points are not fine-tuned: compare LTH with **OMP + fine-tune** (button above) for the "
               "paper's claim that the two agree within the essential range.")
if not labels:
    st.info("No LTH or ISSP run yet: launch one above. An LTH run to 80% takes a few minutes on 2 CPU cores.")
else:
    st.markdown("**Cost of each finished run**: LTH fine-tunes every round; ISSP's cost is N x C look-ahead steps "
                "per round plus one final fine-tune.")
    st.dataframe(cost_table(run_costs(ctx, done_ids)), hide_index=True)
    trained = [rid for rid in done_ids if status.loc[rid, "kind"] in ("lth", "issp")]
    if trained:
        st.markdown("**How each run trained**: the loss of every fine-tune step and the accuracy after each round.")
        which = st.selectbox("Run", trained, format_func=labels.get, key="trace-run")
        losses, rounds = training_trace(ctx, which)
        if losses.empty:
            st.info("This run was stored before LOTUS recorded the loss of every step; its accuracy after each round "
                    "is drawn in the comparison above.")
        else:
            charts.show(training_curves(losses, rounds, "Training loss and accuracy, round by round",
                                        chance=1 / len(ctx.test.classes)), key="trace")
