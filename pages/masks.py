"""Masks: how similar OMP masks are to lottery-ticket masks, always against the chance level."""
import streamlit as st

from app import charts, state, ui
from lotus_core.context import Context
from lotus_core.core.mask import MAX_MASK_BYTES
from lotus_core.pruning.similarity import MEASURES, similarity_matrix
from lotus_core.views.catalog import gap_by_layer, mask_choices
from lotus_core.views.comparisons import mask_pair, ticket_choices, ticket_similarity
from lotus_core.views.figures import kept_weights, layer_similarity, similarity_curve

ui.header("Masks", "Cosine similarity of keep-masks and Jaccard index of pruned sets, each beside the value two "
          "random masks with the same number kept in every layer reach on average (the chance level).",
          "Essential Sparsity reports OMP-vs-lottery-ticket cosine above 96% within the essential range")


def measure_picker() -> str:
    """The similarity measure every chart below draws (MEASURES)."""
    return st.radio("Measure", list(MEASURES), horizontal=True, format_func=MEASURES.get,
                    **state.remember("measure", list(MEASURES)[0], MEASURES))


def tickets_section(ctx: Context, measure: str) -> None:
    """OMP against a stored ticket round by round; without one, OMP against the other one-shot criteria."""
    st.subheader("OMP against lottery tickets at the same sparsity")
    labels = ticket_choices(ctx)
    run_id = None
    if labels:
        chosen = st.selectbox("Ticket run (every finished round is compared with OMP at its exact sparsity)",
                              list(labels))
        run_id = labels[chosen]
    else:
        st.info("No lottery-ticket run is stored for this model yet: launch one on the Soup page. "
                "Meanwhile, here is OMP against the other one-shot criteria.")
    with ui.guard(), st.spinner("Comparing every round with OMP at the same sparsity..." if run_id else
                                "Computing one-shot masks..."):
        view = ticket_similarity(ctx, run_id)
    if view.one_shot:
        charts.show(similarity_curve(view.table, "other", measure, "OMP mask vs other one-shot masks (shaded: above "
                                     "chance)"), key="omp_one_shot")
        return
    if not len(view.table):
        st.info("This run has no finished round yet.")
        return
    overall = view.overall
    charts.show(similarity_curve(overall, None, measure, "OMP mask vs the ticket's mask (shaded: above chance)"),
                key="omp_lth")
    last = overall.iloc[-1]
    st.caption(f"At {100 * last['sparsity']:.1f}% sparsity: {MEASURES[measure]} {100 * last[measure]:.1f}% "
               f"against {100 * last['chance_' + measure]:.1f}% for random masks of the same per-layer densities.")
    charts.show(charts.heatmap(100 * gap_by_layer(view.table, measure), "round", "layer", "points above chance",
                               f"Per layer: {MEASURES[measure]} minus chance, by round", colorscale="RdBu_r", zmid=0),
                key="omp_lth_layers")


def pair_section(ctx: Context, measure: str) -> dict:
    """Two masks picked (or B uploaded) side by side; returns the masks the user can pick (label -> loader)."""
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
        pair = mask_pair(choices, label_a, label_b, None if upload is None else (upload.name, upload.getvalue()))
    sim = pair.similarity
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Cosine", ui.pct(sim["cosine"], 2), delta=f"{100 * (sim['cosine'] - sim['chance_cosine']):+.2f} vs chance")
    m2.metric("Chance cosine", ui.pct(sim["chance_cosine"], 2))
    m3.metric("Jaccard (pruned)", ui.pct(sim["jaccard_pruned"], 2),
              delta=f"{100 * (sim['jaccard_pruned'] - sim['chance_jaccard_pruned']):+.2f} vs chance")
    m4.metric("Chance Jaccard", ui.pct(sim["chance_jaccard_pruned"], 2))
    left, right = st.columns([2, 3])
    with left:
        charts.show(layer_similarity(sim["per_layer"], measure, "Per layer (ticks: chance level)"), key="per_layer")
    with right:
        layer = st.selectbox("Layer to draw", list(pair.a))
        charts.show(kept_weights(pair.a[layer], pair.b[layer], label_a, pair.label_b, layer), key="kept")
    return choices


def matrix_section(choices: dict, measure: str) -> None:
    """Every pair of several chosen masks, minus chance."""
    with st.expander("Similarity matrix over several masks"):
        many = st.multiselect("Masks", list(choices), placeholder="Pick two or more masks")
        if len(many) >= 2:
            with ui.guard(), st.spinner("Comparing every pair..."):
                values, chance = similarity_matrix({k: choices[k]() for k in many}, measure)
            charts.show(charts.heatmap(100 * (values - chance), "", "", "points above chance",
                                       f"{MEASURES[measure]} minus its chance level", colorscale="RdBu_r", zmid=0),
                        key="matrix")


ctx = state.context()
measure = measure_picker()
tickets_section(ctx, measure)
choices = pair_section(ctx, measure)
matrix_section(choices, measure)
