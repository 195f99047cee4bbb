"""Speed: does sparsity buy speed? Every method at its measured latency beside its accuracy."""
import streamlit as st

from app import charts, provenance, state, ui
from app.jobs import active_jobs, launch
from lotus_core.results.runs import stored_summary
from lotus_core.speed import METHODS
from lotus_core.speed.run import (EPS, SpeedConfig, export_structural, first_view, history, latest, measure_again,
                                   measured_with, progress_text, run_speed, speedup_text)

ui.header("Speed", "Measured latency, FLOPs, size and memory of each way to make the model cheaper, beside its "
          "accuracy: which ones really run faster on this machine?",
          "Essential Sparsity (Jaiswal et al., NeurIPS 2023) reports no runtime; DepGraph (Fang et al., CVPR 2023), "
          "EViT (Liang et al., ICLR 2022), ToMe (Bolya et al., ICLR 2023)")
ctx = state.context()

# drawn on first load, measured inline (one setting per method, about 30 s; the demo store holds it); anything else
# runs as a background job. Every measurement is kept: the page shows the last one of the chosen settings.
DEFAULT = latest(ctx, first_view(state.limit()))
c1, c2 = st.columns([3, 1])
methods = c1.multiselect("Methods", list(METHODS), help="; ".join(f"**{m}**: {METHODS[m].help}" for m in METHODS),
                         **state.remember("speed_methods", list(DEFAULT.methods), METHODS))
BATCHES = [1, 8, 32, 64, 256]
batch_sizes = c2.multiselect("Batch sizes", BATCHES, **state.remember("batches", list(DEFAULT.batch_sizes), BATCHES))
c3, c4, c5 = st.columns(3)
best_batch = c3.checkbox("and this device's best", **state.remember("best_batch", DEFAULT.best_batch),
                         help="Find the batch size with the most images/s for the dense model (doubling from 1) "
                              "and measure every method there too")
eps = c4.number_input("Tolerance eps (accuracy points)", 0.1, 10.0, step=0.1,
                      **state.remember("speed_eps", 100 * EPS, state.between(0.1, 10.0))) / 100
axis = c5.radio("x axis", ["latency", "images/s"], horizontal=True,
                **state.remember("axis", "latency", ["latency", "images/s"]))
with st.expander("Settings of each method"):
    s1, s2, s3, s4, s5 = st.columns(5)
    options = {"sparsities": [0.5, 0.7, 0.9, 0.95, 0.99], "ratios": [0.25, 0.5, 0.75], "keep": [0.9, 0.7, 0.5, 0.3],
               "tome_r": [2, 4, 8, 12, 16], "drops": [0.1, 0.25, 0.5, 0.75]}
    remember = lambda key, field: state.remember(key, list(getattr(DEFAULT, field)), options[key])  # noqa: E731
    sparsities = s1.multiselect("masked / csr sparsity", options["sparsities"], **remember("sparsities", "sparsities"))
    ratios = s2.multiselect("heads / channels removed", options["ratios"], **remember("ratios", "ratios"))
    importance = s2.selectbox("Structural importance", ["magnitude", "taylor"],
                              **state.remember("importance", "magnitude", ["magnitude", "taylor"]))
    keep = s3.multiselect("EViT keep rate", options["keep"], **remember("keep", "keep_rates"))
    fuse = s3.checkbox("EViT: fuse the dropped tokens", **state.remember("fuse_tokens", DEFAULT.fuse))
    tome_r = s4.multiselect("ToMe r (merged per block)", options["tome_r"], **remember("tome_r", "tome_r"))
    drops = s5.multiselect("PatchDropout drop", options["drops"], **remember("drops", "drops"))
    finetune = s5.select_slider("Fine-tune steps (structural)", [0, 50, 100, 300],
                                **state.remember("speed_ft", 0, (0, 50, 100, 300)))
if not methods or not batch_sizes:
    st.info("Pick at least one method and one batch size.")
    st.stop()
chosen = SpeedConfig(methods=tuple(methods), batch_sizes=tuple(batch_sizes), best_batch=best_batch,
                     sparsities=tuple(sparsities),
                     ratios=tuple(ratios), importance=importance, keep_rates=tuple(keep), fuse=fuse, tome_r=tuple(tome_r),
                     drops=tuple(drops), finetune_steps=finetune, limit=DEFAULT.limit,
                     min_run_time=DEFAULT.min_run_time, rounds=DEFAULT.rounds)
chosen = latest(ctx, chosen)
stored = stored_summary(ctx, "speed", chosen) is not None
if st.button("Measure again" if stored else "Measure", type="primary",
             help="Queue a new measurement of these settings on the background worker; earlier ones are kept"):
    with ui.guard():
        run_id = launch(ctx, "speed", measure_again(ctx, chosen) if stored else chosen, here=True)
    st.toast(f"Speed measurement {run_id[:6]} queued")
    chosen = latest(ctx, chosen)
    stored = stored_summary(ctx, "speed", chosen) is not None  # tests run jobs inline
# the chosen measurement once stored; until then the last one shown (on first load: DEFAULT, measured here)
config = chosen if stored else st.session_state.get("speed_config", DEFAULT)
st.session_state["speed_config"] = config
if config != chosen:
    st.info(f"Not measured yet on {chosen.device} ({chosen.device_name}, {chosen.threads} threads): **Measure** runs "
            "it in the background and stores every row as it is measured; the chart shows the last measurement.")
active_jobs(ctx, ("speed",))  # a queued measurement (or a measurement again) and its progress
with ui.guard():
    bar = st.progress(0.0, text="Measuring...")
    result = run_speed(ctx, config, on_progress=lambda p: bar.progress(p["done"] / p["planned"], text=progress_text(p)))
    bar.empty()

best = result.best_batch["best"] if result.best_batch else None
sizes = result.batch_sizes
batch = st.radio("Batch size shown", sizes, horizontal=True, format_func=lambda b: (
    f"{b} (this device's best)" if b == best else str(b)), **state.remember("batch", sizes[-1], sizes)) \
    if len(sizes) > 1 else sizes[0]
if result.best_batch:
    st.caption("Best batch size: " + ", ".join(f"{b}: {ips:,.0f} images/s" for b, ips in result.best_batch["trace"])
               + f" (dense model); the search stopped because {result.best_batch['stopped']}.")
rows = result.at(batch)
doubtful = rows[~rows["reliable"]]
if len(doubtful):
    reasons = "; ".join(dict.fromkeys(doubtful["unreliable"].dropna())) or "measured once, without an interval"
    st.warning(f"{len(doubtful)} of {len(rows)} measurements at this batch size are unreliable ({reasons}): they are "
               "drawn, but never on the frontier, never the best within eps, and never in the Report. **Measure "
               "again** when the machine is quieter.")
where = rows[rows["method"] == "dense"].iloc[0] if (rows["method"] == "dense").any() else rows.iloc[0]
title = (f"batch {batch} · {where['device']} · {int(where['threads'])} threads · torch "
         f"{measured_with(ctx.store.get_run(result.run_id) or {}, 'torch_version')}")  # where it was measured
charts.show(charts.speed_frontier(rows, result.dense["accuracy"], eps, "latency_ms" if axis == "latency" else
                                  "images_per_s", title), key="frontier")
provenance.caption(ctx, result.run_id, "speed")  # measured elsewhere (the shipped demo's): labelled, measure here
for _, row in result.frame[result.frame["unavailable"].notna() & (result.frame["batch_size"] == batch)].iterrows():
    st.info(f"{row['method']} is not measured here: {ui.literal(row['unavailable'])}.")
table = rows.assign(**{
    "FLOPs (M/image)": rows["flops"] / 1e6, "params": rows["params"].astype(int), "size (MB)": rows["bytes"] / 1e6,
    "peak memory (MB)": rows["peak_mem_bytes"] / 1e6, "speed-up": rows["speedup"],
    "95% interval": [speedup_text(r).partition(" ")[2] or "-" for r in rows.to_dict(orient="records")],
    "accuracy (%)": 100 * rows["accuracy"],
    "drop (points)": 100 * rows["drop"], "tokens per block": rows["tokens"].map(lambda t: "" if t is None else str(t))})
columns = ["method", "setting", "latency_ms", "iqr_ms", "images_per_s", "speed-up", "95% interval", "unreliable",
           "FLOPs (M/image)", "params", "size (MB)", "peak memory (MB)", "accuracy (%)", "drop (points)", "pareto",
           "tokens per block"]
if config.finetune_steps:
    table["fine-tuned (%)"] = 100 * rows["accuracy_finetuned"]
    columns.insert(columns.index("drop (points)"), "fine-tuned (%)")
st.dataframe(table[columns], hide_index=True, column_config={
    "latency_ms": st.column_config.NumberColumn("latency (ms)", format="%.3g"),
    "iqr_ms": st.column_config.NumberColumn("IQR (ms)", format="%.2g"),
    "images_per_s": st.column_config.NumberColumn("images/s", format="%.0f"),
    "speed-up": st.column_config.NumberColumn(format="%.2fx"), "pareto": "on frontier"})
st.download_button("Download the table (CSV)", result.frame.to_csv(index=False), "speed.csv", "text/csv")

past = history(ctx, config)
past = past[past["batch_size"] == batch]
st.subheader(f"Measurements of these settings on this machine ({past['take'].nunique()})")
st.caption("Each **Measure again** is stored beside the earlier ones; load is the 1-minute load average before "
           "and after timing (above the cores: busy).")
st.dataframe(past.assign(**{
    "speed-up": [speedup_text(r) for r in past.to_dict(orient="records")],
    "load": past["load"].map(lambda v: " / ".join(f"{x:g}" for x in v) if isinstance(v, list) else "")})[
    ["take", "measured", "load", "method", "setting", "speed-up", "unreliable"]], hide_index=True)

structural = rows[rows["family"] == "structural"]
if len(structural):
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
