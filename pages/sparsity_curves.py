"""Sparsity curves: accuracy against sparsity per pruning method, with the essential-sparsity turning point."""
import streamlit as st

from app import charts, provenance, state, ui
from app.jobs import active_jobs, launch, offer
from lotus_core.context import Context
from lotus_core.pruning import PRUNERS
from lotus_core.pruning.controls import CONTROLS
from lotus_core.pruning.essential import noise_warning
from lotus_core.pruning.sweep import PROTOCOLS, PointEvaluator, SweepConfig
from lotus_core.training.finetune import FinetuneConfig
from lotus_core.views.curves import CurveView, curve_view, layer_sparsity, sensitivity_view, turning_point_texts

ui.header("Sparsity curves",
          "Prune the model on demand with several methods and see where accuracy leaves the dense level.",
          "Essential Sparsity (Jaiswal et al., NeurIPS 2023): 30-50% of a pre-trained transformer's weights "
          "can go with one-shot magnitude pruning at almost no cost")

DEFAULT = SweepConfig(methods=("omp",), refine=True)  # drawn on first load (8 points + a 10-point curve)


def protocol_picker(ctx: Context) -> tuple[str, FinetuneConfig | None]:
    """The protocol (PROTOCOLS) and, for the Essential Sparsity one, its fine-tuning recipe."""
    protocol = st.radio("Protocol", list(PROTOCOLS), horizontal=True,
                        **state.remember("protocol", list(PROTOCOLS)[1 if ctx.head_problem else 0], PROTOCOLS),
                        format_func=lambda p: {"lotus": "(a) prune this model (LOTUS)",
                                               "essential": "(b) Essential Sparsity: mask from the pre-trained "
                                                            "weights, then fine-tune every masked model"}[p],
                        help="; ".join(f"{k}: {v}" for k, v in PROTOCOLS.items()))
    if protocol != "essential":
        return protocol, None
    e1, e2, e3 = st.columns(3)
    rates, images = [2e-5, 5e-5, 1e-4, 3e-4, 1e-3], ["all", "1000", "2000", "5000"]
    epochs = e1.number_input("Fine-tune epochs per model", 1, 50, **state.remember("epochs", 2, state.between(1, 50)))
    lr = e2.select_slider("Learning rate", rates, **state.remember("lr", 2e-5, rates))
    train = e3.select_slider("Training images", images, **state.remember("train", "all", images))
    return protocol, FinetuneConfig(epochs=int(epochs), lr=float(lr), train_limit=None if train == "all" else int(train))


def curve_settings(protocol: str, recipe: FinetuneConfig | None, limit: int) -> tuple[SweepConfig | None, bool]:
    """The curve the user asks for (None: no method picked) and whether "Compute curve" was clicked."""
    # the methods on a row of their own, their chips wrapping: every chosen method stays in sight
    methods = st.multiselect("Methods", list(PRUNERS), wrap=True,
                             help="; ".join(f"**{m}**: {PRUNERS[m].help}" for m in PRUNERS),
                             **state.remember("methods", list(DEFAULT.methods), PRUNERS))
    c2, c3 = st.columns([3, 2])
    lo, hi = c2.slider("Sparsity range (%)", 0, 95, step=5, **state.remember("range", (0, 90), range(0, 96, 5)))
    step = c3.select_slider("Grid step (%)", [5, 10, 20], **state.remember("step", 10, (5, 10, 20)))
    r1, r2, r3, r4 = st.columns([5, 3, 3, 3])  # room for "Refine turning point" whole at 1024 px
    refine = r1.checkbox("Refine turning point", **state.remember("refine", DEFAULT.refine),
                         help="Locate the turning point to 1 point of sparsity by bisection over the whole range, each "
                              "point evaluated only until within/below tolerance is certain; the curve fills in "
                              "meanwhile.")
    controls = r2.multiselect("Sanity checks", list(CONTROLS), format_func=lambda c: f"{c}: {CONTROLS[c]}",
                              **state.remember("checks", [], CONTROLS),
                              help="Draw each method's mask again with its kept positions shuffled within every layer, "
                                   "or on re-initialised weights (Frankle et al., ICLR 2021): a method that only found "
                                   "a per-layer budget matches its shuffled curve.")
    eps = r3.number_input("Tolerance eps (fraction; 0.01 = 1 point)", 0.001, 0.1, step=0.001, format="%.3f",
                          help="How far below the dense accuracy a pruned model may fall, as a fraction of accuracy, "
                               "the unit of the CLI's --eps too: 0.01 is 1 accuracy point.",
                          **state.remember("eps", DEFAULT.eps, state.between(0.001, 0.1)))
    finetune = r4.select_slider("Fine-tune steps per point", [0, 30, 100, 300],
                                **state.remember("ft", 0, (0, 30, 100, 300)),
                                help="The essential-sparsity protocol: prune, then fine-tune with the mask held fixed. "
                                     "0 draws the instant one-shot curve; fine-tuned curves run as a background job.")
    compute = st.button("Compute curve", type="primary")
    if not methods:
        return None, compute
    return SweepConfig(methods=tuple(methods), sparsities=tuple(round(s / 100, 4) for s in range(lo, hi + 1, step)),
                       limit=limit, refine=refine, eps=eps, finetune_steps=finetune if protocol == "lotus" else 0,
                       protocol=protocol, recipe=recipe, controls=tuple(controls)), compute


def progress_text(p: dict) -> str:
    """A sweep's progress event in words, for the progress bar."""
    state_text = (f"{100 * p['accuracy']:.1f}%" if p["accuracy"] is not None else
                  "a first look (hardest images)" if p["within"] is None else
                  "within tolerance" if p["within"] else "below tolerance")
    return f"{p['method']} at {100 * p['sparsity']:.1f}% sparsity: {state_text} ({ui.units(p)})"


def curve_section(ctx: Context, chosen: SweepConfig, compute: bool) -> CurveView:
    """Computes, serves or queues the chosen curve (views.curves.curve_view decides) and draws it."""
    bar = st.progress(0.0, text="Computing points...")
    with ui.guard():
        view = curve_view(ctx, chosen, st.session_state.get("curve_config"), compute, lambda k, c: launch(ctx, k, c),
                          on_progress=lambda p: bar.progress(min(1.0, p["done"] / max(p["planned"], p["done"])),
                                                             text=progress_text(p)))
    bar.empty()
    if view.queued:
        st.toast(f"Fine-tuned sweep {view.queued[:6]} queued")
    if view.config is None:  # nothing drawn yet and this curve needs the worker
        st.info("This curve fine-tunes every point: **Compute curve** queues it, and it is drawn when it is done.")
        active_jobs(ctx, ("sweep", "finetune"))
        st.stop()
    st.session_state["curve_config"] = config = view.config
    if view.background:
        st.info("Fine-tuned curves run in the background: **Compute curve** queues this one, and the chart switches "
                "to it when it is done (meanwhile it shows the last curve).")
        active_jobs(ctx, ("sweep",))
    elif view.changed:
        st.info("The settings changed: click **Compute curve** to compute it (the chart shows the last curve).")
    if view.partial:
        st.caption("The curve is being computed in the background: meanwhile the chart shows only the points "
                   "evaluated so far (no line through sparsities not evaluated yet), and a point the search "
                   "decided early as the bound it is (▲ at least, ▼ at most), not as an accuracy.")
        active_jobs(ctx, ("sweep",))
    result = view.result
    charts.show(charts.sparsity_curve(view.frame, result.dense, view.answer.essential, config.eps,
                                      planned=view.planned, chance=1 / len(ctx.test.classes)), key="curve")
    if (noisy := noise_warning(result.dense["accuracy"], result.dense["n"], config.eps)) is not None:
        st.warning(noisy)
    if not view.partial:
        provenance.caption(ctx, result.run_id, "curve")
    recipe = config.finetune_recipe() if config.protocol == "essential" else None
    st.caption(f"Protocol drawn: **{config.protocol}**: {PROTOCOLS[config.protocol]}."
               + (f" Dense line: the dense model fine-tuned with the same recipe ({recipe.epochs} epochs, "
                  f"lr {recipe.lr:g})." if recipe else ""))
    if config.finetune_steps:
        st.caption(f"Every point was fine-tuned for {config.finetune_steps} steps with its mask held fixed; the dense "
                   "line is the model before any fine-tuning.")
    for col, method in zip(st.columns(len(config.methods)), config.methods):
        value, why, note = turning_point_texts(view.answer.essential[method])
        col.metric(f"{method} essential sparsity", value, help=why)
        if note:
            col.caption(note)
    st.download_button("Download the curve (CSV)", result.frame.to_csv(index=False), "sparsity_curve.csv", "text/csv")
    return view


def prune_once_section(ctx: Context, limit: int) -> float:
    """Prune once with a chosen method and sparsity (on click); returns the sparsity (fraction) for the layers."""
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
        m3.download_button("Download mask (safetensors)", mask_bytes,
                           f"mask-{point['method']}-{point['sparsity']}.safetensors")
    return sparsity


def layers_section(ctx: Context, sparsity: float, protocol: str, limit: int) -> None:
    """Per-layer sparsity of the global OMP mask, and the sensitivity analysis (queued on request)."""
    st.subheader("Which layers lose most")
    left, right = st.columns(2)
    with left:
        with ui.guard():
            table = layer_sparsity(ctx, sparsity, protocol)
        charts.show(charts.layer_sparsity_bars(table, f"Per-layer sparsity of the global OMP mask at "
                                                      f"{100 * sparsity:.0f}%"), key="layers")
    with right:
        with ui.guard():
            config, drops = sensitivity_view(ctx, limit)
        levels = ", ".join(f"{100 * s:.0f}" for s in config.sparsities)
        if drops is None and offer(ctx, "sensitivity", config, f"Sensitivity: prune one layer alone at {levels}% and "
                                   "measure the accuracy drop.", "Run sensitivity analysis", "Sensitivity analysis"):
            with ui.guard():
                config, drops = sensitivity_view(ctx, limit)  # stored now (jobs run inline in tests)
        if drops is not None:
            drops.columns = [f"{100 * c:.0f}%" for c in drops.columns]
            charts.show(charts.sensitivity_heatmap(100 * drops, "Sensitivity: accuracy drop when one layer alone is "
                                                                "pruned"), key="sensitivity")


ctx = state.context()
limit = state.limit()
protocol, recipe = protocol_picker(ctx)
chosen, compute = curve_settings(protocol, recipe, limit)
if chosen is None:
    st.info("Pick at least one method.")
    st.stop()
curve_section(ctx, chosen, compute)
sparsity = prune_once_section(ctx, limit)
layers_section(ctx, sparsity, protocol, limit)
