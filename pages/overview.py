"""Overview: the model card, dense accuracy with its 95% CI, per-class accuracy, sample images."""
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import charts, state, ui
from lotus_core.models.loading import model_card
from lotus_core.views.overview import sample_predictions

ui.header("LOTUS: what pruning does to a Vision Transformer",
          "The model under study, its dense (unpruned) accuracy, and a sample of the data it sees.",
          "the dense baseline every sparsity result is compared against")
ctx = state.context()
limit = state.limit()
with ui.guard(), st.spinner("Evaluating the dense model..."):
    dense = ctx.dense_accuracy(limit=limit)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Dense top-1 accuracy", ui.pct(dense["accuracy"], 2),
          help=f"on {dense['n']:,} test images (the sidebar's setting), 95% CI {ui.pct(dense['ci95'][0])} - "
               f"{ui.pct(dense['ci95'][1])}")
c2.metric("95% CI", f"{ui.pct(dense['ci95'][0])} - {ui.pct(dense['ci95'][1])}")
c3.metric("Parameters", f"{sum(p.numel() for p in ctx.model.parameters()):,}")
c4.metric("Input", "x".join(map(str, ctx.data_config["input_size"])))
st.caption(f"Model `{ctx.model_id}` on `{ctx.dataset}` ({len(ctx.test):,} test images from {ctx.test.source}).")

left, right = st.columns([3, 2])
with left:
    st.subheader("Per-class accuracy")
    per_class = dense["per_class"]
    fig = go.Figure(go.Bar(x=list(per_class), y=[100 * v for v in per_class.values()],
                           hovertemplate="%{x}: %{y:.1f}%<extra></extra>"))
    fig.add_hline(y=100 * dense["accuracy"], line_dash="dash", annotation_text="overall")
    st.plotly_chart(charts.style(fig, "class", "top-1 accuracy (%)", height=360), config=charts.PLOT_CONFIG)
with right:
    st.subheader("Model card")
    if st.session_state.get("model", "default") == "default":
        with ui.guard():
            card = model_card()
        arch = card.get("architecture", {})
        rows = {
            "Architecture": f"ViT, patch {arch.get('patch_size')} on {arch.get('img_size')}px, width "
                            f"{arch.get('embed_dim')}, depth {arch.get('depth')}, {arch.get('num_heads')} heads",
            "Parameters": f"{card.get('parameters', 0):,}",
            "Training data": f"{card.get('data', {}).get('train_images', 0):,} Fashion-MNIST images",
            "Epochs / seed": f"{card.get('epochs')} / {card.get('seed')}",
            "Test accuracy (10,000 images)": ui.pct(card.get("test_accuracy"), 2),
            "Training time": f"{card.get('training_time_s', 0) / 60:.1f} min on {card.get('device', '?')}",
        }
        st.table(pd.DataFrame({"value": list(rows.values())}, index=list(rows)))
        st.caption(f"Trained from scratch by `python -m lotus_core train-default`: "
                   f"{ui.pct(card.get('test_accuracy'), 2)} on the full 10,000-image test set after {card.get('epochs')} "
                   f"epochs, in fp32. The live figure on the left is measured on the sidebar's {dense['n']:,}-image "
                   "subset (bf16 where this CPU is fast at it), the protocol every page uses, so the two differ by "
                   "the subset's sampling error (see its 95% CI) and a few hundredths of a point of precision.")
    else:
        st.json({"model": ctx.model_id, "data_config": ctx.data_config}, expanded=False)

st.subheader("Sample test images")
seed = st.number_input("Sample seed", 0, 10_000, 0, help="Which 16 test images to show.")
samples = sample_predictions(ctx, n=16, seed=int(seed))
labels = [f"{s.label}{'' if s.correct else ' ✗ ' + s.prediction}" for s in samples]
st.plotly_chart(charts.image_grid(ctx.test.images[[s.index for s in samples]], labels, cols=8, height=150),
                config=charts.PLOT_CONFIG)
st.caption("Caption: true class; ✗ marks a wrong prediction, followed by what the model said.")
