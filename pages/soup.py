"""Soup: launch lottery-ticket (LTH) and Instant Sparse Soup Pruning (ISSP) runs, compare them with one-shot OMP."""
import pandas as pd
import streamlit as st

from app import charts, state, ui
from app.jobs import active_jobs, launch
from lotus_core.figures import accuracy_lines
from lotus_core.lottery.catalog import accuracy_comparison, run_label, ticket_runs
from lotus_core.lottery.issp import MERGES, ISSPConfig
from lotus_core.lottery.lth import LTHConfig

ui.header("Soup", "Lottery tickets by iterative magnitude pruning, and Instant Soup Pruning's single-pass masks, "
          "against one-shot OMP and random pruning.",
          "Instant Soup Pruning (Jaiswal et al., ICML 2023), which LOTUS used as ISSP and saw collapse to about 50% "
          "accuracy with masks from 10% of the data")
ctx = state.context()

lth_tab, issp_tab = st.tabs(["Launch LTH", "Launch ISSP"])
with lth_tab:
    c1, c2, c3, c4 = st.columns(4)
    target = c1.slider("Target sparsity (%)", 20, 95, 80, 5, key="lth_target") / 100
    fraction = c2.slider("Pruned per round (%)", 5, 50, 20, 5) / 100
    steps = c3.number_input("Fine-tune steps per round", 1, 5000, 100, 10)
    rewind = c4.selectbox("Rewind to", ["pretrained", "step:50", "step:200"])
    if st.button("Launch LTH", type="primary"):
        with ui.guard():
            rid = launch(ctx, "lth", LTHConfig(target=target, prune_fraction=fraction, steps=int(steps), rewind=rewind))
        st.toast(f"LTH run {rid[:6]} queued")
with issp_tab:
    c1, c2, c3, c4, c5 = st.columns(5)
    s_target = c1.slider("Target sparsity (%)", 20, 95, 80, 5, key="issp_target") / 100
    denoisers = c2.number_input("Denoisers N", 1, 20, 5)
    lookahead = c3.number_input("Look-ahead steps C", 1, 1000, 50, 10)
    data_fraction = c4.select_slider("Data fraction f", [0.1, 0.3, 1.0], value=0.1)
    merge = c5.selectbox("Merge", MERGES)
    if st.button("Launch ISSP", type="primary"):
        with ui.guard():
            rid = launch(ctx, "issp", ISSPConfig(target=s_target, denoisers=int(denoisers), lookahead_steps=int(lookahead),
                                                 data_fraction=data_fraction, merge=merge))
        st.toast(f"ISSP run {rid[:6]} queued")

active_jobs(ctx, ("lth", "issp"))

st.subheader("Accuracy at each sparsity")
runs = ticket_runs(ctx)
labels = {run_label(r): r["id"] for _, r in runs.iterrows()} if len(runs) else {}
chosen = st.multiselect("Ticket runs to compare", list(labels), default=list(labels)[:3])
with ui.guard(), st.spinner("One-shot OMP and random points (stored after the first time)..."):
    table = accuracy_comparison(ctx, [labels[c] for c in chosen])
    dense = ctx.dense_accuracy(limit=1000)["accuracy"]
charts.show(accuracy_lines(table, dense, "OMP, random, LTH and ISSP (one-shot points without fine-tuning)"),
            key="comparison")
if not labels:
    st.info("No LTH or ISSP run yet: launch one above. A run to 80% takes a few minutes on 2 CPU cores; "
            "it keeps going if you leave the page.")
else:
    costs = pd.DataFrame([{"run": k, "training steps": (runs.set_index("id").loc[v, "summary"] or {}).get("train_steps"),
                           "training time (s)": (runs.set_index("id").loc[v, "summary"] or {}).get("train_time_s"),
                           "final accuracy": (runs.set_index("id").loc[v, "summary"] or {}).get("final_accuracy")}
                          for k, v in labels.items()])
    st.markdown("**Cost of each run** (LTH fine-tunes every round; ISSP's look-aheads are its cost)")
    st.dataframe(costs, hide_index=True)
