"""Overview: the model card, dense accuracy with its 95% CI, per-class accuracy, sample images,
and fine-tuning the model to the dataset (a background job; the result joins the sidebar's list)."""
import pandas as pd
import streamlit as st

from app import charts, provenance, state, ui
from app.jobs import active_jobs, launch
from lotus_core.context import Context
from lotus_core.training.finetune import (DEFAULT_PRESET, PRESETS, FinetuneConfig, finetune_summary, preset_config,
                                          require_finetunable)
from lotus_core.views.figures import per_class_accuracy
from lotus_core.views.model_card import DenseView, card_rows, dense_view, samples

ui.header("LOTUS: what pruning does to a Vision Transformer",
          "The model under study, its dense (unpruned) accuracy, and a sample of the data it sees.",
          "the dense baseline every sparsity result is compared against")


def dense_section(ctx: Context, limit: int) -> DenseView:
    """The dense accuracy with its 95% interval, the model's size and where the data come from."""
    if ctx.head_problem:
        st.warning(f"**{ui.literal(ctx.head_problem)}.** The accuracies below measure an untrained classifier; "
                   "pruning pages refuse this model until it is fine-tuned (at the bottom of this page), except the "
                   "Essential Sparsity protocol on Sparsity curves.")
    with ui.guard(), st.spinner("Evaluating the dense model..."):
        view = dense_view(ctx, limit)
    dense = view.dense
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Dense accuracy", ui.pct(dense["accuracy"], 2),
              help=f"on {dense['n']:,} test images (the sidebar's setting), 95% CI {ui.pct(dense['ci95'][0])} - "
                   f"{ui.pct(dense['ci95'][1])}")
    c2.metric("95% interval", f"±{view.half_width_points:.1f} pts",
              help=f"{ui.pct(dense['ci95'][0])} to {ui.pct(dense['ci95'][1])}: the Wilson 95% interval of an "
                   f"accuracy measured on {dense['n']:,} test images")
    c3.metric("Parameters", f"{view.parameters:,}")
    c4.metric("Input", view.input_size)
    provenance.caption(ctx, dense["run_id"], "overview")
    sides = view.sides
    st.caption(f"Model {ui.literal(ctx.model_id)} on {ui.literal(ctx.dataset)}: {sides['test_images']:,} test and "
               f"{sides['train_images']:,} training images from {ui.literal(ctx.test.source)} "
               f"({ui.literal(sides['split'])}).")
    return view


def card_section(ctx: Context, view: DenseView) -> None:
    """Per-class accuracy beside the model card."""
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Per-class accuracy")
        charts.show(per_class_accuracy(view.dense), key="per-class")
    with right:
        st.subheader("Model card")
        default = st.session_state.get("model", "default") == "default"
        with ui.guard():
            rows, card = card_rows(ctx, default)
        st.table(pd.DataFrame({"value": list(rows.values())}, index=list(rows)))
        if default:
            st.caption(f"Trained from scratch by `python -m lotus_core train-default`: "
                       f"{ui.pct(card.get('test_accuracy'), 2)} on the full 10,000-image test set after "
                       f"{card.get('epochs')} epochs, in fp32. The live figure on the left is measured on the "
                       f"sidebar's {view.dense['n']:,}-image subset (bf16 where this CPU is fast at it), the protocol "
                       "every page uses, so the two differ by the subset's sampling error (see its 95% CI) and a few "
                       "hundredths of a point of precision.")


def samples_section(ctx: Context) -> None:
    """Sixteen test images with the model's predictions (the seed picks them)."""
    st.subheader("Sample test images")
    seed = st.number_input("Sample seed", 0, 10_000, help="Which 16 test images to show.",
                           **state.remember("sample_seed", 0, range(10_001)))
    shown = samples(ctx, int(seed))
    labels = [f"{s.label}{'' if s.correct else ' ✗ ' + s.prediction}" for s in shown]
    st.plotly_chart(charts.image_grid(ctx.test.images[[s.index for s in shown]], labels, cols=8, height=150),
                    config=charts.PLOT_CONFIG)
    st.caption("Caption: true class; ✗ marks a wrong prediction, followed by what the model said.")


def recipe_picker(ctx: Context, limit: int, view: DenseView) -> FinetuneConfig:
    """The fine-tuning recipe the user sets up (a preset and its overrides)."""
    f0, f1, f2, f3, f4, f5 = st.columns([2, 2, 1, 2, 2, 2])
    preset = f0.selectbox("Recipe", list(PRESETS), index=list(PRESETS).index(DEFAULT_PRESET),
                          help="; ".join(f"{name}: {p.what}" for name, p in PRESETS.items()))
    mode = f1.radio("What", ["full fine-tune", "head only (linear probe)"],
                    help="Full: every weight; head only: the classifier alone, cheap.")
    base = preset_config(ctx.model, preset)
    epochs = f2.number_input("Epochs", 1, 100, base.epochs)
    rates = sorted({2e-5, 5e-5, 1e-4, 3e-4, 1e-3, 3e-3, base.lr})
    lr = f3.select_slider("Learning rate", rates, value=base.lr, format_func=lambda v: f"{v:g}")
    batch = f4.select_slider("Batch size", [16, 32, 64, 128, 256], value=64)
    train_limit = f5.select_slider("Training images", ["all", 500, 1000, 2000, 5000, 10000], value="all")
    sides = view.sides
    st.caption(f"**{preset}**: {PRESETS[preset].what}; for this model ({view.parameters:,} parameters) "
               f"the learning rate is {base.lr:g}. Trains on the {sides['train_images']:,} training images, tests "
               f"on the {sides['test_images']:,} test images ({sides['split']}).")
    return preset_config(ctx.model, preset, epochs=int(epochs), lr=float(lr), batch_size=int(batch),
                         head_only=mode[0] == "h", train_limit=None if train_limit == "all" else int(train_limit),
                         limit=limit)


def finetune_section(ctx: Context, limit: int, view: DenseView) -> None:
    """Fine-tune the model on the dataset (a background job) and switch to the result."""
    with st.expander("Fine-tune this model on the dataset", expanded=bool(ctx.head_problem)):
        recipe = recipe_picker(ctx, limit, view)
        with ui.guard():
            done = finetune_summary(ctx, recipe)
        if done is None and st.button("Fine-tune", type="primary"):
            with ui.guard():
                require_finetunable(ctx)
                run_id = launch(ctx, "finetune", recipe)
            st.toast(f"Fine-tuning {run_id[:6]} queued")
        active_jobs(ctx, ("finetune",))
        if done is not None:
            st.success(f"Fine-tuned: {ui.pct(done['accuracy'], 2)} (95% CI {ui.pct(done['ci95'][0])} - "
                       f"{ui.pct(done['ci95'][1])}), from {ui.pct(done['accuracy_before'], 1)} before, "
                       f"{done['epochs']} epochs in {done['seconds']:.0f} s. Checkpoint `{done['checkpoint']}`.")
            if st.button("Use the fine-tuned model"):
                st.session_state["_model"] = done["checkpoint"]
                st.rerun()


ctx = state.context()
limit = state.limit()
view = dense_section(ctx, limit)
card_section(ctx, view)
samples_section(ctx)
finetune_section(ctx, limit, view)
