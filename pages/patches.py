"""Patches: which image patches the model needs, whether attribution methods agree, and what
training on the kept patches (data lottery tickets) buys. Each section returns the user's choices or calls
one view (lotus_core.views.patches); the scoring of the chosen images is cached across reruns."""
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from app import charts, state, ui
from app.jobs import active_jobs, launch, offer
from lotus_core.context import Context
from lotus_core.core.errors import LotusError
from lotus_core.data.images import subset_indices
from lotus_core.patches import FUSES, SCORERS, PatchScoring
from lotus_core.patches.analysis import class_indices
from lotus_core.patches.ticket_training import APPLIES, STARTS, LotteryTrainConfig, epoch_frame, lottery_runs
from lotus_core.patches.upload import MAX_UPLOAD_BYTES, read_uploads
from lotus_core.results.store import RunStatus
from lotus_core.views.patch_figures import convergence, fidelity_curves
from lotus_core.views.patches import Selection, scorer_comparison, selection

ui.header("Patches", "Score every image patch, keep the top ones (a data lottery ticket), check the scorers "
          "against each other, and train on the kept patches.",
          "LOTUS's data lottery tickets: dropping the 10% least-attended patches keeps near-full accuracy by the "
          "fifth epoch; attention rollout (Abnar & Zuidema, 2020)")


MAX_IMAGES = 32  # images scored at once by index (each one is a full attribution pass)
MAX_INDEX_TEXT = 1000  # characters of the index list read at all


@dataclass(frozen=True)
class Images:
    """The images the user picked: test-set ``indices``, or uploaded ``images`` (uint8, as a numpy array, so
    that the cache hashes it) with their file ``names``."""

    indices: list[int] | None = None
    images: np.ndarray | None = None
    names: tuple[str, ...] = ()


def image_source(ctx: Context) -> Images:
    """The images the user picks: by class, by index, at random, or uploaded."""
    classes = ctx.test.classes
    sources = ["By class", "By index", "At random", "Upload"]
    source = st.radio("Images", sources, horizontal=True, **state.remember("images", sources[0], sources))
    if source == "By class":
        c1, c2 = st.columns([3, 2])
        label = c1.selectbox("Class", range(len(classes)), format_func=lambda c: classes[c],
                             **state.remember("class", 0, range(len(classes))))
        count = c2.slider("Images", 1, 8, **state.remember("class_count", 4, range(1, 9)))
        return Images(indices=class_indices(ctx.test, label, count))
    if source == "By index":
        text = st.text_input("Test-set indices (comma-separated)", **state.remember("indices", "0, 1, 2, 3"))
        with ui.guard():
            try:
                indices = [int(t) for t in text[:MAX_INDEX_TEXT].replace(" ", "").split(",") if t]
            except ValueError:
                raise LotusError("the indices are not a list of whole numbers; write e.g. 0, 1, 2") from None
            if len(text) > MAX_INDEX_TEXT or len(indices) > MAX_IMAGES:
                raise LotusError(f"give at most {MAX_IMAGES} test-set indices at once (scoring is per image)")
        return Images(indices=indices)
    if source == "At random":
        c1, c2 = st.columns(2)
        count = c1.slider("Images", 1, 8, **state.remember("random_count", 4, range(1, 9)))
        seed = c2.number_input("Seed", 0, 10_000, **state.remember("seed", 0, range(10_001)))
        return Images(indices=subset_indices(len(ctx.test), count, int(seed)).tolist())
    files = st.file_uploader("PNG or JPEG images (at most 10 MB and 4096 px a side)", type=["png", "jpg", "jpeg"],
                             accept_multiple_files=True, max_upload_size=MAX_UPLOAD_BYTES // 2**20)
    uploads = read_uploads([(f.name, f.getvalue()) for f in files or []], ctx.data_config)
    for message in uploads.errors:  # they quote the upload's file name: shown literally
        ui.error(message)
    if uploads.images is None:
        st.info("Upload an image: it is converted to the model's input size and channels.")
        st.stop()
    return Images(images=uploads.images.numpy(), names=tuple(uploads.names))


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


@st.cache_data(max_entries=16, show_spinner=False)
def scored(_ctx: Context, context_id: str, scorer: str, drop: float, scoring: PatchScoring, picked: Images,
           inverted: bool) -> Selection:
    """The view of the picked images, cached across reruns (each image is a full attribution pass): keyed by
    ``context_id`` (model, data and device of ``_ctx``) and the choices."""
    images = None if picked.images is None else torch.from_numpy(picked.images)
    return selection(_ctx, scorer, drop, scoring, picked.indices, images, list(picked.names), inverted)


def selection_section(ctx: Context, picked: Images, scorer: str, drop: float, scoring: PatchScoring) -> None:
    """Patch scores and the data lottery ticket of each image (kept patches), with the predictions."""
    inverted = bool(picked.names) and st.session_state.get("invert_uploads", False)
    context_id = f"{ctx.model_id}|{ctx.dataset}|{ctx.test.variant}|{ctx.device}"
    with ui.guard(), st.spinner(f"Scoring patches with {scorer}..."):
        view = scored(ctx, context_id, scorer, drop, scoring, picked, inverted)
    report = view.report
    p = report.grid.num_patches
    m1, m2, m3 = st.columns(3)
    m1.metric("Kept patches per image", f"{report.kept_count} of {p}",
              help=f"dropped = round half up of {100 * drop:.0f}% x {p}, at most {p - 1}")
    m2.metric("Unchanged (pixels)", f"{report.unchanged_lottery} of {len(report.scores)}",
              help="Predictions unchanged when the dropped patches are masked out in pixels (the dataset's mean)")
    if report.unchanged_token_drop is not None:
        m3.metric("Unchanged (tokens)", f"{report.unchanged_token_drop} of {len(report.scores)}",
                  help="Predictions unchanged when the dropped patches' tokens are removed from the sequence")
    charts.show(view.figure, key="overlays")
    st.caption("Titles: the image (test-set index and true class, or the uploaded file), then the prediction on the "
               "original -> on the lottery version (dropped patches, washed out in grey here, filled with the "
               "dataset mean pixel for the model).")
    for note in view.notes:  # they quote the upload's file name: shown literally
        st.warning(ui.literal(note))
    if view.notes or inverted:
        st.checkbox("Invert the uploads' colours", key="invert_uploads",
                    help="Show the model each upload as 255 - pixel: a dark object on a light background becomes a "
                         "light object on a dark one, as its training images")


def fidelity_section(ctx: Context, drop: float, scoring: PatchScoring) -> None:
    """Deletion/insertion curves and agreement of the chosen scorers (stored; computed on request)."""
    st.subheader("Do the scorers find what the model needs, and do they agree?")
    f1, f2 = st.columns([5, 2])
    chosen = f1.multiselect("Scorers to compare", list(SCORERS), **state.remember("fid_scorers", list(SCORERS), SCORERS))
    limit = f2.select_slider("Test images", [50, 100, 200, 500], **state.remember("fid_limit", 100, (50, 100, 200, 500)))
    with ui.guard():
        view = scorer_comparison(ctx, chosen, limit, drop, scoring)
    if not chosen:
        st.info("Pick at least one scorer.")
        return
    if view.result is None:
        if offer(ctx, "fidelity", view.config, f"Deletion and insertion curves and agreement of {len(chosen)} "
                 f"scorers on {limit} test images.", "Compare scorers", "Scorer comparison"):
            with ui.guard():
                view = scorer_comparison(ctx, chosen, limit, drop, scoring)  # stored now (jobs run inline in tests)
        if view.result is None:
            return
    left, right = st.columns(2)
    with left:
        charts.show(fidelity_curves(view.result.curves, view.result.auc, "deletion"), key="deletion")
    with right:
        charts.show(fidelity_curves(view.result.curves, view.result.auc, "insertion"), key="insertion")
    st.markdown(f"**Agreement** (averaged over images; top-k = top {100 * view.config.top_k:.0f}% of patches, "
                f"dropped = the {100 * drop:.0f}% each scorer would drop; chance levels beside them)")
    st.dataframe(view.table, hide_index=True, column_config=AGREEMENT_COLUMNS)


NUMBER = "%.3f"
AGREEMENT_COLUMNS = {  # short headers, so that every column (the chance levels too) fits a phone's width
    "scorer": st.column_config.TextColumn("scorer", width=92),
    "compared with": st.column_config.TextColumn("vs", width=92, help="compared with"),
    "rank agreement (-1 to 1)": st.column_config.NumberColumn(
        "rank", format=NUMBER, width=48, help="Rank agreement of the patch scores, Spearman's rho (-1 to 1)"),
    "share of top patches in common": st.column_config.NumberColumn(
        "top", format=NUMBER, width=48, help="Share of the top patches in common"),
    "by chance": st.column_config.NumberColumn(
        "by chance", format=NUMBER, width=68, help="The share of top patches two random scorers have in common"),
    "share of dropped patches in common": st.column_config.NumberColumn(
        "dropped", format=NUMBER, width=60, help="Share of the dropped patches in common"),
    "by chance (dropped)": st.column_config.NumberColumn(
        "chance", format=NUMBER, width=56, help="The share of dropped patches two random scorers have in common"),
}


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
picked = image_source(ctx)
scorer, drop, scoring = scorer_controls()
selection_section(ctx, picked, scorer, drop, scoring)
fidelity_section(ctx, drop, scoring)
lottery_training_section(ctx, scorer, drop, scoring)
