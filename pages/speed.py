"""Speed: does sparsity buy speed? Every method at its measured latency beside its accuracy. Each section
returns the user's choices or calls one view (lotus_core.views.speed)."""
import streamlit as st

from app import charts, provenance, state, ui
from app.jobs import active_jobs, launch
from lotus_core.context import Context
from lotus_core.core.text import count_text
from lotus_core.speed import METHODS
from lotus_core.speed.run import (EPS, SpeedConfig, SpeedResult, export_structural, first_view, progress_text, run_speed)
from lotus_core.speed.history import latest, measure_again
from lotus_core.views.speed import SpeedView, measurements, shown_measurement, speed_view

ui.header("Speed", "Measured latency, FLOPs, size and memory of each way to make the model cheaper, beside its "
          "accuracy: which ones really run faster on this machine?",
          "Essential Sparsity (Jaiswal et al., NeurIPS 2023) reports no runtime; DepGraph (Fang et al., CVPR 2023), "
          "EViT (Liang et al., ICLR 2022), ToMe (Bolya et al., ICLR 2023)")

BATCHES = [1, 8, 32, 64, 256]
OPTIONS = {"sparsities": [0.5, 0.7, 0.9, 0.95, 0.99], "ratios": [0.25, 0.5, 0.75], "keep": [0.9, 0.7, 0.5, 0.3],
           "tome_r": [2, 4, 8, 12, 16], "drops": [0.1, 0.25, 0.5, 0.75]}
TABLE_COLUMNS = {  # narrow headers and widths: the compared columns fit a phone, accuracy never scrolled away
    "method": st.column_config.TextColumn("method", width=100), "setting": st.column_config.TextColumn("setting", width=96),
    "accuracy (%)": st.column_config.NumberColumn("accuracy (%)", format="%.2f", width=84),
    "fine-tuned (%)": st.column_config.NumberColumn("fine-tuned (%)", format="%.2f", width=84),
    "speed-up": st.column_config.NumberColumn("speed-up", format="%.2fx", width=68),
    "latency_ms": st.column_config.NumberColumn("latency (ms)", format="%.3g"),
    "iqr_ms": st.column_config.NumberColumn("IQR (ms)", format="%.2g"),
    "images_per_s": st.column_config.NumberColumn("images/s", format="%.0f"), "pareto": "on frontier"}


def settings_ui(default: SpeedConfig) -> tuple[SpeedConfig, float, str]:
    """The settings to measure (methods, batch sizes, each method's settings), the tolerance eps (a fraction)
    and the chart's x axis; stops the page when no method or batch size is chosen."""
    c1, c2 = st.columns([3, 1])
    methods = c1.multiselect("Methods", list(METHODS), help="; ".join(f"**{m}**: {METHODS[m].help}" for m in METHODS),
                             **state.remember("speed_methods", list(default.methods), METHODS))
    batch_sizes = c2.multiselect("Batch sizes", BATCHES, **state.remember("batches", list(default.batch_sizes), BATCHES))
    c3, c4, c5 = st.columns(3)
    best_batch = c3.checkbox("and this device's best", **state.remember("best_batch", default.best_batch),
                             help="Find the batch size with the most images/s for the dense model (doubling from 1) "
                                  "and measure every method there too")
    eps = c4.number_input("Tolerance eps (accuracy points)", 0.1, 10.0, step=0.1,
                          **state.remember("speed_eps", 100 * EPS, state.between(0.1, 10.0))) / 100
    axis = c5.radio("x axis", ["latency", "images/s"], horizontal=True,
                    **state.remember("axis", "latency", ["latency", "images/s"]))
    with st.expander("Settings of each method"):
        s1, s2, s3, s4, s5 = st.columns(5)
        remember = lambda key, field: state.remember(key, list(getattr(default, field)), OPTIONS[key])  # noqa: E731
        sparsities = s1.multiselect("masked / csr sparsity", OPTIONS["sparsities"], **remember("sparsities", "sparsities"))
        ratios = s2.multiselect("heads / channels removed", OPTIONS["ratios"], **remember("ratios", "ratios"))
        importance = s2.selectbox("Structural importance", ["magnitude", "taylor"],
                                  **state.remember("importance", "magnitude", ["magnitude", "taylor"]))
        keep = s3.multiselect("EViT keep rate", OPTIONS["keep"], **remember("keep", "keep_rates"))
        fuse = s3.checkbox("EViT: fuse the dropped tokens", **state.remember("fuse_tokens", default.fuse))
        tome_r = s4.multiselect("ToMe r (merged per block)", OPTIONS["tome_r"], **remember("tome_r", "tome_r"))
        drops = s5.multiselect("PatchDropout drop", OPTIONS["drops"], **remember("drops", "drops"))
        finetune = s5.select_slider("Fine-tune steps (structural)", [0, 50, 100, 300],
                                    **state.remember("speed_ft", 0, (0, 50, 100, 300)))
    if not methods or not batch_sizes:
        st.info("Pick at least one method and one batch size.")
        st.stop()
    chosen = SpeedConfig(methods=tuple(methods), batch_sizes=tuple(batch_sizes), best_batch=best_batch,
                         sparsities=tuple(sparsities), ratios=tuple(ratios), importance=importance,
                         keep_rates=tuple(keep), fuse=fuse, tome_r=tuple(tome_r), drops=tuple(drops),
                         finetune_steps=finetune, limit=default.limit, min_run_time=default.min_run_time,
                         rounds=default.rounds)
    return chosen, eps, axis


def measure_section(ctx: Context, chosen: SpeedConfig, default: SpeedConfig) -> SpeedConfig:
    """**Measure** (again) queues the chosen settings on the worker; returns the measurement to draw: the chosen
    one once stored, until then the last one shown (on first load: ``default``, measured here)."""
    shown = shown_measurement(ctx, chosen, st.session_state.get("speed_config", default))
    if st.button("Measure again" if shown.stored else "Measure", type="primary",
                 help="Queue a new measurement of these settings on the background worker; earlier ones are kept"):
        with ui.guard():
            run_id = launch(ctx, "speed", measure_again(ctx, shown.chosen) if shown.stored else shown.chosen, here=True)
        st.toast(f"Speed measurement {run_id[:6]} queued")
        shown = shown_measurement(ctx, chosen, shown.config)  # tests run jobs inline
    st.session_state["speed_config"] = shown.config
    if not shown.stored:
        st.info(f"Not measured yet on {chosen.device} ({chosen.device_name}, {count_text(chosen.threads, 'thread')}): **Measure** "
                "runs it in the background and stores every row as it is measured; the chart shows the last "
                "measurement.")
    active_jobs(ctx, ("speed",))  # a queued measurement (or a measurement again) and its progress
    return shown.config


def measured(ctx: Context, config: SpeedConfig) -> SpeedResult:
    """The stored measurement of ``config`` (the first view is measured here, with a progress bar)."""
    with ui.guard():
        bar = st.progress(0.0, text="Measuring...")
        result = run_speed(ctx, config, on_progress=lambda p: bar.progress(p["done"] / p["planned"],
                                                                           text=progress_text(p)))
        bar.empty()
    return result


def batch_ui(result: SpeedResult) -> int:
    """The batch size shown (the device's best marked), with the best-batch search's trace."""
    best = result.best_batch["best"] if result.best_batch else None
    sizes = result.batch_sizes
    batch = st.radio("Batch size shown", sizes, horizontal=True, format_func=lambda b: (
        f"{b} (this device's best)" if b == best else str(b)), **state.remember("batch", sizes[-1], sizes)) \
        if len(sizes) > 1 else sizes[0]
    if result.best_batch:
        st.caption("Best batch size: " + ", ".join(f"{b}: {ips:,.0f} images/s" for b, ips in result.best_batch["trace"])
                   + f" (dense model); the search stopped because {result.best_batch['stopped']}.")
    return batch


def result_section(ctx: Context, result: SpeedResult, view: SpeedView, eps: float, axis: str) -> None:
    """The frontier chart and the table of one batch size, and the download of every row."""
    if view.warning:
        st.warning(view.warning)
    charts.show(charts.speed_frontier(view.rows, result.dense["accuracy"], eps,
                                      "latency_ms" if axis == "latency" else "images_per_s", view.title), key="frontier")
    provenance.caption(ctx, result.run_id, "speed")  # measured elsewhere (the shipped demo's): labelled, measure here
    for method, why in view.unavailable:
        st.info(f"{method} is not measured here: {ui.literal(why)}.")
    st.dataframe(view.table[view.compare + view.details], hide_index=True, column_order=view.compare,
                 column_config=TABLE_COLUMNS)
    with st.expander("Latency, FLOPs, size, memory and tokens of each row"):
        st.dataframe(view.table[["method", "setting"] + view.details], hide_index=True, column_config=TABLE_COLUMNS)
    st.download_button("Download the table (CSV)", result.frame.to_csv(index=False), "speed.csv", "text/csv")


def history_section(ctx: Context, config: SpeedConfig, batch: int) -> None:
    """Every measurement of these settings on this machine (each **Measure again** is kept)."""
    past = measurements(ctx, config, batch)
    st.subheader(f"Measurements of these settings on this machine ({past['take'].nunique()})")
    st.caption("Each **Measure again** is stored beside the earlier ones; load is the 1-minute load average before "
               "and after timing (above the cores: busy).")
    st.dataframe(past, hide_index=True)


def export_section(ctx: Context, rows, config: SpeedConfig) -> None:
    """Export a structurally pruned model as safetensors and onnxruntime-checked ONNX."""
    structural = rows[rows["family"] == "structural"]
    if not len(structural):
        return
    st.subheader("Export a structurally pruned model")
    e1, e2 = st.columns([3, 2])
    choice = e1.selectbox("Model", list(structural.index), format_func=lambda i: (
        f"{structural.at[i, 'method']} {structural.at[i, 'setting']}: {structural.at[i, 'speedup']:.2f}x, "
        f"{100 * structural.at[i, 'accuracy']:.1f}%"))
    if e2.button("Export"):
        with ui.guard(), st.spinner("Pruning, exporting and checking the ONNX graph with onnxruntime..."):
            pick = structural.loc[choice]
            st.session_state["speed_export"] = (f"{pick['method']}-{pick['value']:g}",
                                                export_structural(ctx, pick["method"], float(pick["value"]),
                                                                  config.importance))
    if "speed_export" in st.session_state:
        stem, exported = st.session_state["speed_export"]
        d1, d2 = st.columns(2)
        d1.download_button("safetensors (loadable by LOTUS)", exported.safetensors, f"{stem}.safetensors")
        d2.download_button("ONNX", exported.onnx, f"{stem}.onnx")
        st.caption(f"{stem}: {len(exported.safetensors) / 1e6:.2f} MB; onnxruntime matches torch to "
                   f"{exported.onnx_max_abs_diff:.1e}; architecture {exported.arch}")


ctx = state.context()
# drawn on first load, measured inline (one setting per method; the demo store holds it); anything else runs as a
# background job. Every measurement is kept: the page shows the last one of the chosen settings.
DEFAULT = latest(ctx, first_view(state.limit()))
chosen, eps, axis = settings_ui(DEFAULT)
config = measure_section(ctx, chosen, DEFAULT)
result = measured(ctx, config)
batch = batch_ui(result)
view = speed_view(ctx, result, config, batch)
result_section(ctx, result, view, eps, axis)
history_section(ctx, config, batch)
export_section(ctx, view.rows, config)
