"""Overview: the model card, dense accuracy with its 95% CI, per-class accuracy, sample images,
and fine-tuning the model to the dataset (a background job; the result joins the sidebar's list)."""
import pandas as pd
import streamlit as st

from app import charts, provenance, state, ui
from app.jobs import active_jobs, launch
from lotus_core.models.loading import count_parameters, model_card
from lotus_core.data import split_sizes
from lotus_core.training.finetune import (DEFAULT_PRESET, PRESETS, checkpoint_card, finetune_summary, preset_config,
                                          require_finetunable)
from lotus_core.views.figures import per_class_accuracy
from lotus_core.views.overview import sample_predictions

ui.header("LOTUS: what pruning does to a Vision Transformer",
          "The model under study, its dense (unpruned) accuracy, and a sample of the data it sees.",
          "the dense baseline every sparsity result is compared against")
ctx = state.context()
if ctx.head_problem:
    st.warning(f"**{ui.literal(ctx.head_problem)}.** The accuracies below measure an untrained classifier; pruning pages refuse "
               "this model until it is fine-tuned (at the bottom of this page), except the Essential Sparsity "
               "protocol on Sparsity curves.")
limit = state.limit()
with ui.guard(), st.spinner("Evaluating the dense model..."):
    dense = ctx.dense_accuracy(limit=limit)

c1, c2, c3, c4 = st.columns(4)
c1.metric("Dense accuracy", ui.pct(dense["accuracy"], 2),
          help=f"on {dense['n']:,} test images (the sidebar's setting), 95% CI {ui.pct(dense['ci95'][0])} - "
               f"{ui.pct(dense['ci95'][1])}")
c2.metric("95% interval", f"±{50 * (dense['ci95'][1] - dense['ci95'][0]):.1f} pts",
          help=f"{ui.pct(dense['ci95'][0])} to {ui.pct(dense['ci95'][1])}: the Wilson 95% interval of an accuracy "
               f"measured on {dense['n']:,} test images")
c3.metric("Parameters", f"{count_parameters(ctx.model):,}")
c4.metric("Input", "x".join(map(str, ctx.data_config["input_size"])))
provenance.caption(ctx, dense["run_id"], "overview")
sides = split_sizes(ctx.test, ctx.train)
st.caption(f"Model {ui.literal(ctx.model_id)} on {ui.literal(ctx.dataset)}: {sides['test_images']:,} test and "
           f"{sides['train_images']:,} training images from {ui.literal(ctx.test.source)} ({ui.literal(sides['split'])}).")

left, right = st.columns([3, 2])
with left:
    st.subheader("Per-class accuracy")
    charts.show(per_class_accuracy(dense), key="per-class")
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
        card = checkpoint_card(ctx.model, ctx.data_config, ctx.store)
        recipe_text = None if not card["recipe"] else (
            f"{'head only' if card['recipe']['head_only'] else 'full'}, {card['recipe']['epochs']} epochs, "
            f"AdamW lr {card['recipe']['lr']:g}, batch {card['recipe']['batch_size']}, seed {card['recipe']['seed']}")
        rows = {
            "Source": card["source"] or ctx.model_id,
            "Parameters": f"{card['parameters']:,}",
            "Input / patch grid": f"{card['input_size']} / {card['patch_grid'] or '?'}",
            "Head": {"trained": f"trained on {card['trained_on']}", "new": "new, not trained",
                     "pretrained": "pre-trained (classes not checked)"}.get(card["head"], "?"),
            "Classes": ", ".join(card["classes"] or ctx.test.classes),
            "Accuracy (at fine-tuning)": "n/a" if card["accuracy"] is None else
            f"{ui.pct(card['accuracy'], 2)} ({ui.pct(card['ci95'][0])} - {ui.pct(card['ci95'][1])})",
            "Recipe": recipe_text or "n/a",
            "Training time": "n/a" if card["train_seconds"] is None else f"{card['train_seconds']:.0f} s",
        }
        st.table(pd.DataFrame({"value": list(rows.values())}, index=list(rows)))

st.subheader("Sample test images")
seed = st.number_input("Sample seed", 0, 10_000, help="Which 16 test images to show.",
                       **state.remember("sample_seed", 0, range(10_001)))
samples = sample_predictions(ctx, n=16, seed=int(seed))
labels = [f"{s.label}{'' if s.correct else ' ✗ ' + s.prediction}" for s in samples]
st.plotly_chart(charts.image_grid(ctx.test.images[[s.index for s in samples]], labels, cols=8, height=150),
                config=charts.PLOT_CONFIG)
st.caption("Caption: true class; ✗ marks a wrong prediction, followed by what the model said.")

with st.expander("Fine-tune this model on the dataset", expanded=bool(ctx.head_problem)):
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
    recipe = preset_config(ctx.model, preset, epochs=int(epochs), lr=float(lr), batch_size=int(batch),
                           head_only=mode[0] == "h", train_limit=None if train_limit == "all" else int(train_limit),
                           limit=limit)
    st.caption(f"**{preset}**: {PRESETS[preset].what}; for this model ({count_parameters(ctx.model):,} parameters) "
               f"the learning rate is {base.lr:g}. Trains on the {sides['train_images']:,} training images, tests "
               f"on the {sides['test_images']:,} test images ({sides['split']}).")
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
