"""Masks: how similar OMP masks are to lottery-ticket masks, always against the chance level."""
import streamlit as st

from app import charts, state, ui
from lotus_core.views.figures import kept_weights, layer_similarity, similarity_curve
from lotus_core.views.catalog import gap_by_layer, mask_choices, omp_vs_one_shot, omp_vs_tickets, run_label, ticket_runs
from lotus_core.pruning import Mask
from lotus_core.pruning.mask import MAX_MASK_BYTES
from lotus_core.pruning.similarity import MEASURES, mask_similarity, similarity_matrix

ui.header("Masks", "Cosine similarity of keep-masks and Jaccard index of pruned sets, each beside the value two "
          "random masks with the same number kept in every layer reach on average (the chance level).",
          "Essential Sparsity reports OMP-vs-lottery-ticket cosine above 96% within the essential range")
ctx = state.context()
measure = st.radio("Measure", list(MEASURES), horizontal=True, format_func=MEASURES.get,
                   **state.remember("measure", list(MEASURES)[0], MEASURES))

st.subheader("OMP against lottery tickets at the same sparsity")
runs = ticket_runs(ctx)
labels = {run_label(r): r["id"] for _, r in runs.iterrows()}
if labels:
    lth_first = sorted(labels, key=lambda label: not label.startswith("LTH"))  # lottery tickets first, then ISSP
    chosen = st.selectbox("Ticket run (every finished round is compared with OMP at its exact sparsity)", lth_first)
    with ui.guard(), st.spinner("Comparing every round with OMP at the same sparsity..."):
        table = omp_vs_tickets(ctx, labels[chosen])
    if len(table):
        overall = table[table["layer"] == "all"]
        charts.show(similarity_curve(overall, None, measure, "OMP mask vs the ticket's mask (shaded: above chance)"),
                    key="omp_lth")
        last = overall.iloc[-1]
        st.caption(f"At {100 * last['sparsity']:.1f}% sparsity: {MEASURES[measure]} {100 * last[measure]:.1f}% "
                   f"against {100 * last['chance_' + measure]:.1f}% for random masks of the same per-layer densities.")
        charts.show(charts.heatmap(100 * gap_by_layer(table, measure), "round", "layer", "points above chance",
                                   f"Per layer: {MEASURES[measure]} minus chance, by round", colorscale="RdBu_r",
                                   zmid=0), key="omp_lth_layers")
    else:
        st.info("This run has no finished round yet.")
else:
    st.info("No lottery-ticket run is stored for this model yet: launch one on the Soup page. "
            "Meanwhile, here is OMP against the other one-shot criteria.")
    with ui.guard(), st.spinner("Computing one-shot masks..."):
        table = omp_vs_one_shot(ctx)
    charts.show(similarity_curve(table, "other", measure, "OMP mask vs other one-shot masks (shaded: above chance)"),
                key="omp_one_shot")

st.subheader("Compare two masks")
sparsity = st.slider("Sparsity of one-shot masks (%)", 5, 95, step=5,
                     **state.remember("mask_sparsity", 50, range(5, 96, 5))) / 100
choices = mask_choices(ctx, sparsity)
c1, c2 = st.columns(2)
label_a = c1.selectbox("Mask A", list(choices), index=0)
label_b = c2.selectbox("Mask B", list(choices), index=min(2, len(choices) - 1))
upload = st.file_uploader("or upload mask B (.safetensors, e.g. from `prune --mask-out`)", type=["safetensors"],
                          max_upload_size=MAX_MASK_BYTES // 2**20)
with ui.guard():
    mask_a = choices[label_a]()
    if upload is not None:
        mask_b, label_b = Mask.from_bytes(upload.getvalue(), MAX_MASK_BYTES), upload.name
    else:
        mask_b = choices[label_b]()
    sim = mask_similarity(mask_a, mask_b)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Cosine", ui.pct(sim["cosine"], 2), delta=f"{100 * (sim['cosine'] - sim['chance_cosine']):+.2f} vs chance")
m2.metric("Chance cosine", ui.pct(sim["chance_cosine"], 2))
m3.metric("Jaccard (pruned)", ui.pct(sim["jaccard_pruned"], 2),
          delta=f"{100 * (sim['jaccard_pruned'] - sim['chance_jaccard_pruned']):+.2f} vs chance")
m4.metric("Chance Jaccard", ui.pct(sim["chance_jaccard_pruned"], 2))
left, right = st.columns([2, 3])
with left:
    charts.show(layer_similarity(sim["per_layer"], measure, "Per layer (ticks: chance level)"),
                key="per_layer")
with right:
    layer = st.selectbox("Layer to draw", list(mask_a))
    charts.show(kept_weights(mask_a[layer], mask_b[layer], label_a, label_b, layer), key="kept")

with st.expander("Similarity matrix over several masks"):
    many = st.multiselect("Masks", list(choices), placeholder="Pick two or more masks")
    if len(many) >= 2:
        with ui.guard(), st.spinner("Comparing every pair..."):
            values, chance = similarity_matrix({k: choices[k]() for k in many}, measure)
        charts.show(charts.heatmap(100 * (values - chance), "", "", "points above chance",
                                   f"{MEASURES[measure]} minus its chance level", colorscale="RdBu_r", zmid=0),
                    key="matrix")
