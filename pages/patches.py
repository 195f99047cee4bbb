"""Patches: which image patches the model needs, whether attribution methods agree, and what
training on the kept patches (data lottery tickets) buys."""
import html

import streamlit as st

from app import charts, state, ui
from app.jobs import active_jobs, launch, offer
from lotus_core.data import subset_indices
from lotus_core.core.context import Context
from lotus_core.core.errors import LotusError
from lotus_core.patches.ticket_training import APPLIES, STARTS, LotteryTrainConfig, epoch_frame, lottery_runs
from lotus_core.patches import FUSES, SCORERS, PatchScoring
from lotus_core.patches.analysis import class_indices, explain_images
from lotus_core.patches.fidelity import FidelityConfig, fidelity
from lotus_core.patches.figures import convergence, fidelity_curves, patch_overlays
from lotus_core.patches.upload import MAX_UPLOAD_BYTES, load_uploads
from lotus_core.results.runs import stored_summary
from lotus_core.results.store import RunStatus
from lotus_core.views.overview import class_name

ui.header("Patches", "Score every image patch, keep the top ones (a data lottery ticket), check the scorers "
          "against each other, and train on the kept patches.",
          "LOTUS's data lottery tickets: dropping the 10% least-attended patches keeps near-full accuracy by the "
          "fifth epoch; attention rollout (Abnar & Zuidema, 2020)")


MAX_IMAGES = 32  # images scored at once by index (each one is a full attribution pass)
MAX_INDEX_TEXT = 1000  # characters of the index list read at all


def image_source(ctx: Context) -> tuple[list[int] | None, object]:
    """The images the user picks: test-set ``indices`` (by class, by index, at random) or uploaded ``images``."""
    classes = ctx.test.classes
    sources = ["By class", "By index", "At random", "Upload"]
    source = st.radio("Images", sources, horizontal=True, **state.remember("images", sources[0], sources))
    indices, images = None, None
    if source == "By class":
        c1, c2 = st.columns([3, 2])
        label = c1.selectbox("Class", range(len(classes)), format_func=lambda c: classes[c],
                             **state.remember("class", 0, range(len(classes))))
        count = c2.slider("Images", 1, 8, **state.remember("class_count", 4, range(1, 9)))
        indices = class_indices(ctx.test, label, count)
    elif source == "By index":
        text = st.text_input("Test-set indices (comma-separated)", **state.remember("indices", "0, 1, 2, 3"))
        with ui.guard():
            try:
                indices = [int(t) for t in text[:MAX_INDEX_TEXT].replace(" ", "").split(",") if t]
            except ValueError:
                raise LotusError("the indices are not a list of whole numbers; write e.g. 0, 1, 2") from None
            if len(text) > MAX_INDEX_TEXT or len(indices) > MAX_IMAGES:
                raise LotusError(f"give at most {MAX_IMAGES} test-set indices at once (scoring is per image)")
    elif source == "At random":
        c1, c2 = st.columns(2)
        count = c1.slider("Images", 1, 8, **state.remember("random_count", 4, range(1, 9)))
        seed = c2.number_input("Seed", 0, 10_000, **state.remember("seed", 0, range(10_001)))
        indices = subset_indices(len(ctx.test), count, int(seed)).tolist()
    else:
        files = st.file_uploader("PNG or JPEG images (at most 10 MB and 4096 px a side)", type=["png", "jpg", "jpeg"],
                                 accept_multiple_files=True, max_upload_size=MAX_UPLOAD_BYTES // 2**20)
        images, errors = load_uploads([(f.name, f.getvalue()) for f in files or []], ctx.data_config)
        for message in errors:  # they quote the upload's file name: shown literally
            ui.error(message)
        if images is None:
            st.info("Upload an image: it is converted to the model's input size and channels.")
            st.stop()
    return indices, images


def scorer_controls() -> tuple[str, float, PatchScoring]:
    """The scorer, the drop ratio (fraction) and the scoring options, shared by every section below."""
    c1, c2, c3 = st.columns([3, 3, 4])
    scorer = c1.selectbox("Scorer", list(SCORERS), format_func=lambda s: f"{s}: {SCORERS[s].help}",
                          **state.remember("scorer", list(SCORERS)[0], SCORERS))
    drop = c2.slider("Drop ratio (% of patches)", 0, 90, step=5, **state.remember("drop", 10, range(0, 91, 5))) / 100
    with c3.expander("Scorer options"):
        block = st.number_input("Block (cls; -1 = last)", -50, 50, **state.remember("block", -1, range(-50, 51)))
        fuse = st.selectbox("Head fusion (cls, rollout)", FUSES, **state.remember("fuse", list(FUSES)[0], FUSES))
        discard = st.slider("Rollout discard ratio (%)", 0, 95, step=5,
                            **state.remember("discard", 0, range(0, 96, 5))) / 100
    scoring = PatchScoring(block=int(block), fuse=fuse, discard_ratio=discard)
    return scorer, drop, scoring


def selection_section(ctx: Context, indices, images, scorer: str, drop: float, scoring: PatchScoring) -> None:
    """Patch scores and the data lottery ticket of each image (kept patches), with the predictions."""
    classes = ctx.test.classes
    options = scoring.with_seed(0)
    with ui.guard(), st.spinner(f"Scoring patches with {scorer}..."):
        report = explain_images(ctx, scorer, drop, options, indices=indices, images=images)
    p = report.grid.num_patches
    m1, m2, m3 = st.columns(3)
    m1.metric("Kept patches per image", f"{report.kept_count} of {p}",
              help=f"dropped = round half up of {100 * drop:.0f}% x {p}, at most {p - 1}")
    m2.metric("Unchanged (pixels)", f"{report.unchanged_lottery} of {len(report.scores)}",
              help="Predictions unchanged when the dropped patches are masked out in pixels (the dataset's mean)")
    if report.unchanged_token_drop is not None:
        m3.metric("Unchanged (tokens)", f"{report.unchanged_token_drop} of {len(report.scores)}",
                  help="Predictions unchanged when the dropped patches' tokens are removed from the sequence")

    def title(i: int) -> str:
        where = f"#{report.indices[i]}" if report.indices[i] is not None else f"upload {i + 1}"
        truth = f" ({classes[report.labels[i]]})" if report.labels[i] is not None else ""
        before, after = (class_name(classes, int(p[i])) for p in (report.prediction, report.prediction_lottery))
        return html.escape(f"{where}{truth}") + "<br>" + html.escape(f"{before} -> {after}")  # plotly titles are HTML

    charts.show(patch_overlays(report.model_images, report.scores, report.keep, report.grid,
                               [title(i) for i in range(len(report.scores))]), key="overlays")
    st.caption("Titles: true class, then the prediction on the original -> on the lottery version (dropped patches, "
               "washed out in grey here, filled with the dataset mean pixel for the model).")


def fidelity_section(ctx: Context, drop: float, scoring: PatchScoring) -> None:
    """Deletion/insertion curves and agreement of the chosen scorers (stored; computed on request)."""
    st.subheader("Do the scorers find what the model needs, and do they agree?")
    f1, f2 = st.columns([5, 2])
    chosen = f1.multiselect("Scorers to compare", list(SCORERS), **state.remember("fid_scorers", list(SCORERS), SCORERS))
    limit = f2.select_slider("Test images", [50, 100, 200, 500], **state.remember("fid_limit", 100, (50, 100, 200, 500)))
    fid_config = FidelityConfig(scorers=tuple(chosen), limit=limit, drop=drop, scoring=scoring)
    stored = bool(chosen) and stored_summary(ctx, "fidelity", fid_config) is not None
    if not chosen:
        st.info("Pick at least one scorer.")
    elif not stored:
        stored = offer(ctx, "fidelity", fid_config, f"Deletion and insertion curves and agreement of {len(chosen)} "
                       f"scorers on {limit} test images.", "Compare scorers", "Scorer comparison")
    if stored:
        with ui.guard():
            result = fidelity(ctx, fid_config)  # served from the store
        left, right = st.columns(2)
        with left:
            charts.show(fidelity_curves(result.curves, result.auc, "deletion"), key="deletion")
        with right:
            charts.show(fidelity_curves(result.curves, result.auc, "insertion"), key="insertion")
        st.markdown(f"**Agreement** (averaged over images; top-k = top {100 * fid_config.top_k:.0f}% of patches, "
                    f"dropped = the {100 * drop:.0f}% each scorer would drop; chance levels beside them)")
        table = result.agreement_in_words()
        st.dataframe(table, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[2:]})


def lottery_training_section(ctx: Context, scorer: str, drop: float, scoring: PatchScoring) -> None:
    """Launch training on data lottery tickets beside full images; show a run's epoch curves."""
    st.subheader("Training on data lottery tickets")
    with st.form("lottery_train"):
        t1, t2, t3, t4, t5 = st.columns(5)
        epochs = t1.number_input("Epochs", 1, 50, 5)
        fraction = t2.select_slider("Training data used", [0.01, 0.05, 0.2, 0.5, 1.0], value=0.2,
                                    format_func=lambda f: f"{100 * f:.0f}%")
        start = t3.selectbox("Start from", STARTS)
        lr = t4.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3], value=1e-3)
        apply = t5.selectbox("Ticket applied as", list(APPLIES), help="; ".join(f"{k}: {v}" for k, v in APPLIES.items()))
        st.caption(f"Uses the scorer ({scorer}) and drop ratio ({100 * drop:.0f}%) chosen above; both arms get the same "
                   "steps, batches and seed.")
        submitted = st.form_submit_button("Launch lottery training", type="primary")
    if submitted:
        with ui.guard():
            rid = launch(ctx, "lottery-train", LotteryTrainConfig(scorer=scorer, drop=drop, epochs=int(epochs),
                                                                  limit=state.limit(),
                                                                  fraction=fraction, start=start, lr=lr, scoring=scoring,
                                                                  apply=apply))
        st.toast(f"Lottery training {rid[:6]} queued")
    active_jobs(ctx, ("lottery-train",))

    runs = lottery_runs(ctx)
    if runs.empty:
        st.info("No lottery-training run yet: launch one above. Five epochs on 20% of Fashion-MNIST take a few "
                "minutes on 2 CPU cores; the run keeps going if you leave the page.")
    else:
        labels = dict(zip(runs["label"], runs["id"]))
        picked = labels[st.selectbox("Run", list(labels))]
        running = runs.set_index("id").loc[picked, "status"] in (RunStatus.QUEUED, RunStatus.RUNNING)

        @st.fragment(run_every=2 if running else None)
        def show_run(run_id: str) -> None:
            frame = epoch_frame(ctx, run_id)
            summary = ctx.store.get_run(run_id)["summary"] or {}
            if frame.empty:
                st.info("No epoch finished yet.")
                return
            best = summary.get("best_full_accuracy")
            charts.show(convergence(frame, best), key=f"convergence-{run_id}")
            if summary:
                cols = st.columns(4)
                for col, arm, name in ((cols[0], "lottery", "Lottery"), (cols[1], "full", "Full images")):
                    e = summary[arm]["epochs_to_within_1pt"]
                    col.metric(f"{name}: epochs to within 1 point", "never" if e is None else str(e),
                               help=f"best full-data accuracy {ui.pct(best, 2)}")
                cols[2].metric("Training time, lottery", f"{summary['lottery']['train_time_s']:.0f} s")
                cols[3].metric("Training time, full", f"{summary['full']['train_time_s']:.0f} s")

        show_run(picked)


ctx = state.context()
indices, images = image_source(ctx)
scorer, drop, scoring = scorer_controls()
selection_section(ctx, indices, images, scorer, drop, scoring)
fidelity_section(ctx, drop, scoring)
lottery_training_section(ctx, scorer, drop, scoring)
