"""Sparsity curves: accuracy against sparsity per pruning method, with the essential-sparsity turning point."""
import streamlit as st

from app import charts, provenance, state, ui
from app.jobs import active_jobs, launch, offer
from lotus_core.pruning import PRUNERS
from lotus_core.pruning.controls import CONTROLS
from lotus_core.pruning.essential import noise_warning
from lotus_core.results.runs import run_id_for, stored_summary
from lotus_core.results.store import ACTIVE
from lotus_core.pruning.sensitivity import SensitivityConfig, run_sensitivity
from lotus_core.pruning.sweep import (PROTOCOLS, PointEvaluator, SweepConfig, curve_so_far, layer_sparsity_table,
                                      run_sweep, turning_point_search)
from lotus_core.training.finetune import FinetuneConfig

ui.header("Sparsity curves",
          "Prune the model on demand with several methods and see where accuracy leaves the dense level.",
          "Essential Sparsity (Jaiswal et al., NeurIPS 2023): 30-50% of a pre-trained transformer's weights "
          "can go with one-shot magnitude pruning at almost no cost")
ctx = state.context()

protocol = st.radio("Protocol", list(PROTOCOLS), horizontal=True,
                    **state.remember("protocol", list(PROTOCOLS)[1 if ctx.head_problem else 0], PROTOCOLS),
                    format_func=lambda p: {"lotus": "(a) prune this model (LOTUS)",
                                           "essential": "(b) Essential Sparsity: mask from the pre-trained weights, "
                                                        "then fine-tune every masked model"}[p],
                    help="; ".join(f"{k}: {v}" for k, v in PROTOCOLS.items()))
recipe = None
if protocol == "essential":
    e1, e2, e3 = st.columns(3)
    rates, images = [2e-5, 5e-5, 1e-4, 3e-4, 1e-3], ["all", "1000", "2000", "5000"]
    recipe = FinetuneConfig(epochs=int(e1.number_input("Fine-tune epochs per model", 1, 50,
                                                       **state.remember("epochs", 2, state.between(1, 50)))),
                            lr=float(e2.select_slider("Learning rate", rates, **state.remember("lr", 2e-5, rates))),
                            train_limit=None if (t := e3.select_slider("Training images", images,
                                                                       **state.remember("train", "all", images))) == "all"
                            else int(t))

limit = state.limit()
DEFAULT = SweepConfig(methods=("omp",), limit=limit, refine=True)  # drawn on first load (8 points + a 10-point curve)
c1, c2, c3 = st.columns([3, 3, 2])
methods = c1.multiselect("Methods", list(PRUNERS), help="; ".join(f"**{m}**: {PRUNERS[m].help}" for m in PRUNERS),
                         **state.remember("methods", list(DEFAULT.methods), PRUNERS))
lo, hi = c2.slider("Sparsity range (%)", 0, 95, step=5, **state.remember("range", (0, 90), range(0, 96, 5)))
step = c3.select_slider("Grid step (%)", [5, 10, 20], **state.remember("step", 10, (5, 10, 20)))
r1, r2, r3, r4 = st.columns([4, 3, 3, 3])
refine = r1.checkbox("Refine turning point", **state.remember("refine", DEFAULT.refine),
                     help="Locate the turning point to 1 point of sparsity by bisection over the whole range, each point "
                          "evaluated only until within/below tolerance is certain; the curve fills in meanwhile.")
controls = r2.multiselect("Sanity checks", list(CONTROLS), format_func=lambda c: f"{c}: {CONTROLS[c]}",
                          **state.remember("checks", [], CONTROLS),
                          help="Draw each method's mask again with its kept positions shuffled within every layer, "
                               "or on re-initialised weights (Frankle et al., ICLR 2021): a method that only found "
                               "a per-layer budget matches its shuffled curve.")
eps = r3.number_input("Tolerance eps (fraction; 0.01 = 1 point)", 0.001, 0.1, step=0.001, format="%.3f",
                      help="How far below the dense accuracy a pruned model may fall, as a fraction of accuracy, the "
                           "unit of the CLI's --eps too: 0.01 is 1 accuracy point.",
                      **state.remember("eps", DEFAULT.eps, state.between(0.001, 0.1)))
finetune = r4.select_slider("Fine-tune steps per point", [0, 30, 100, 300], **state.remember("ft", 0, (0, 30, 100, 300)),
                            help="The essential-sparsity protocol: prune, then fine-tune with the mask held fixed. "
                                 "0 draws the instant one-shot curve; fine-tuned curves run as a background job.")
compute = st.button("Compute curve", type="primary")
sparsities = tuple(round(s / 100, 4) for s in range(lo, hi + 1, step))

if not methods:
    st.info("Pick at least one method.")
    st.stop()
chosen = SweepConfig(methods=tuple(methods), sparsities=sparsities, limit=limit, refine=refine, eps=eps,
                     finetune_steps=finetune if protocol == "lotus" else 0, protocol=protocol, recipe=recipe,
                     controls=tuple(controls))
stored = any(c is not None and stored_summary(ctx, "sweep", c) is not None for c in (chosen, turning_point_search(chosen)))
# fine-tuning every point takes minutes: the worker does it
background = (finetune > 0 or protocol == "essential") and not stored
if background and compute:
    with ui.guard():
        run_id = launch(ctx, "sweep", chosen)
    st.toast(f"Fine-tuned sweep {run_id[:6]} queued")
# show the chosen curve when asked, on first load, or when it is already stored (instant);
# otherwise keep the last one drawn until "Compute curve" is clicked
if not background and (compute or "curve_config" not in st.session_state or stored):
    st.session_state["curve_config"] = chosen
if "curve_config" not in st.session_state:  # nothing drawn yet and this curve needs the worker
    st.info("This curve fine-tunes every point: **Compute curve** queues it, and it is drawn when it is done.")
    active_jobs(ctx, ("sweep", "finetune"))
    st.stop()
config = st.session_state["curve_config"]
if background:
    st.info("Fine-tuned curves run in the background: **Compute curve** queues this one, and the chart switches to it "
            "when it is done (meanwhile it shows the last curve).")
    active_jobs(ctx, ("sweep",))
elif config != chosen:
    st.info("The settings changed: click **Compute curve** to compute it (the chart shows the last curve).")
search = turning_point_search(config)
frame, planned = None, None  # while the curve is computed in the background: its points so far, and how many in all
with ui.guard():
    bar = st.progress(0.0, text="Computing points...")
    on_progress = lambda p: bar.progress(  # noqa: E731
        min(1.0, p["done"] / max(p["planned"], p["done"])),
        text=f"{p['method']} at {100 * p['sparsity']:.1f}% sparsity: "
             + (f"{100 * p['accuracy']:.1f}%" if p["accuracy"] is not None else
                "a first look (hardest images)" if p["within"] is None else
                "within tolerance" if p["within"] else "below tolerance")
             + f" ({ui.units(p)})")
    if search is None or stored_summary(ctx, "sweep", config) is not None:
        result = answer = run_sweep(ctx, config, on_progress=on_progress)
    else:  # the answer now, by bisection; the curve is computed in the background and drawn once stored
        answer = run_sweep(ctx, search, on_progress=on_progress)
        curve_run = ctx.store.get_run(run_id_for(ctx, "sweep", config))
        if curve_run is None or curve_run["status"] not in ACTIVE:
            launch(ctx, "sweep", config)
        result = run_sweep(ctx, config) if stored_summary(ctx, "sweep", config) is not None else answer
        if result is answer:
            frame, planned = curve_so_far(ctx, config, answer)
            st.caption("The curve is being computed in the background: meanwhile the chart shows only the points "
                       "evaluated so far (no line through sparsities not evaluated yet), and a point the search "
                       "decided early as the bound it is (▲ at least, ▼ at most), not as an accuracy.")
            active_jobs(ctx, ("sweep",))
        else:
            answer = result  # stored by now: its turning point goes with the curve drawn
    bar.empty()
essential = answer.essential

partial = planned is not None  # the curve is still being computed: only its points so far are drawn
if not partial:
    frame = result.frame
charts.show(charts.sparsity_curve(frame, result.dense, essential, config.eps, planned=planned,
                                  chance=1 / len(ctx.test.classes)), key="curve")
if (noisy := noise_warning(result.dense["accuracy"], result.dense["n"], config.eps)) is not None:
    st.warning(noisy)
if not partial:
    provenance.caption(ctx, result.run_id, "curve")
st.caption(f"Protocol drawn: **{config.protocol}**: {PROTOCOLS[config.protocol]}."
           + (f" Dense line: the dense model fine-tuned with the same recipe ({config.finetune_recipe().epochs} "
              f"epochs, lr {config.finetune_recipe().lr:g})." if config.protocol == "essential" else ""))
if config.finetune_steps:
    st.caption(f"Every point was fine-tuned for {config.finetune_steps} steps with its mask held fixed; the dense "
               "line is the model before any fine-tuning.")
cols = st.columns(len(config.methods))
for col, method in zip(cols, config.methods):
    ess = essential[method]
    hi_txt = "never below" if ess["bracket"][1] is None else f"{100 * ess['bracket'][1]:.1f}%"
    early = f", {ess['decided_early']} decided early" if ess.get("decided_early") else ""
    col.metric(f"{method} essential sparsity", f"{100 * ess['essential_sparsity']:.1f}%",
               help=f"bracket [{100 * ess['bracket'][0]:.1f}%, {hi_txt}], {ess['evaluations']} evaluations{early}")
    if not ess["monotone"]:
        col.caption("Not monotone: accuracy rises again somewhere"
                    + (", even back within tolerance after the first drop" if ess["recovers"] else "")
                    + ". The turning point is the first drop, by the paper's rule.")
st.download_button("Download the curve (CSV)", result.frame.to_csv(index=False), "sparsity_curve.csv", "text/csv")

st.subheader("Prune once")
p1, p2, p3 = st.columns([3, 3, 2])
method = p1.selectbox("Method", list(PRUNERS), key="prune_method")
sparsity = p2.slider("Sparsity (%)", 0, 95, 50, key="prune_sparsity") / 100
if p3.button("Prune", type="primary"):
    with ui.guard(), st.spinner("Pruning and evaluating..."):
        evaluator = PointEvaluator(ctx, SweepConfig(methods=(method,), limit=limit))
        sparsity = evaluator.effective_sparsity(method, sparsity)  # N:M: its fixed 1 - N/M
        point = evaluator.evaluate(method, sparsity)
        st.session_state["pruned"] = (point, evaluator.mask(method, sparsity).to_bytes(),
                                      ctx.dense_accuracy(limit=limit)["accuracy"])
if "pruned" in st.session_state:
    point, mask_bytes, dense_accuracy = st.session_state["pruned"]
    m1, m2, m3 = st.columns([2, 2, 3])
    m1.metric("Pruned accuracy", ui.pct(point["accuracy"], 2),
              delta=f"{100 * (point['accuracy'] - dense_accuracy):+.2f} points vs dense",
              help=f"on {point['n']:,} test images; dense {ui.pct(dense_accuracy, 2)}")
    m2.metric("Sparsity reached", ui.pct(point["sparsity_reached"], 2), help=point["method"])
    m3.download_button("Download mask (safetensors)", mask_bytes, f"mask-{point['method']}-{point['sparsity']}.safetensors")

st.subheader("Which layers lose most")
left, right = st.columns(2)
with left:
    with ui.guard():
        omp_mask = PointEvaluator(ctx, SweepConfig(limit=limit, protocol=protocol)).mask("omp", sparsity)
    charts.show(charts.layer_sparsity_bars(layer_sparsity_table(omp_mask),
                                           f"Per-layer sparsity of the global OMP mask at {100 * sparsity:.0f}%"),
                key="layers")
with right:
    sens_config = SensitivityConfig(limit=limit)
    levels = ", ".join(f"{100 * s:.0f}" for s in sens_config.sparsities)
    if stored_summary(ctx, "sensitivity", sens_config) is not None or offer(
            ctx, "sensitivity", sens_config, f"Sensitivity: prune one layer alone at {levels}% and measure the accuracy "
            "drop.", "Run sensitivity analysis", "Sensitivity analysis"):
        with ui.guard():
            table = run_sensitivity(ctx, sens_config)  # served from the store
        table.columns = [f"{100 * c:.0f}%" for c in table.columns]
        charts.show(charts.sensitivity_heatmap(100 * table, "Sensitivity: accuracy drop when one layer alone is pruned"),
                    key="sensitivity")
