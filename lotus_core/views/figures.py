"""plotly figures shared by the dashboard pages, the report and its HTML export.

Every figure has axis titles with units; accuracies and sparsities are shown in percent.
"""
from __future__ import annotations

import textwrap

import pandas as pd
import plotly.graph_objects as go

from ..core.text import count_text
from ..core.tolerance import DEFAULT_EPS, Tolerance

COLORS = {"omp": "#c2185b", "omp-layerwise": "#7b1fa2", "random": "#757575", "nm": "#0288d1", "wanda": "#f57c00",
          "lth": "#2e7d32", "issp": "#00897b"}


def _translucent(color: str, alpha: float) -> str:
    """``#rrggbb`` as an rgba() string: fills stay light enough that lines and other fills show through."""
    r, g, b = (int(color.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


TITLE_CHARS = 36  # the longest line of a chart title: fits a half-width chart at 1024 px (about 270 px) and a phone
TITLE_LINE_PX = 24


def titled(fig: go.Figure, title: str, above: int = 30) -> go.Figure:
    """``fig`` titled at its top left, the title wrapped into lines of at most :data:`TITLE_CHARS` characters
    (plotly never wraps one, so a long title is cut off in a narrow window), with the top margin grown to
    ``above`` pixels (e.g. for a legend) plus its lines."""
    lines = textwrap.wrap(title, TITLE_CHARS) or [""]
    fig.update_layout(title=dict(text="<br>".join(lines), x=0, xanchor="left", y=1, yanchor="top", yref="container",
                                 pad=dict(t=10, l=10)), margin_t=above + TITLE_LINE_PX * len(lines))
    return fig


def style(fig: go.Figure, x_title: str, y_title: str, title: str | None = None, height: int = 420) -> go.Figure:
    """Axis titles (with units), a compact margin and a legend on top (under the title, if any)."""
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=30, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), template="plotly_white")
    if title:
        titled(fig, title, above=56)
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def chance_level(fig: go.Figure, chance: float | None, axis: str = "y", **where) -> go.Figure:
    """A dotted grey line at the chance accuracy ``chance`` (a fraction: 1 / classes), labelled, so that no
    accuracy chart reads as good what a coin would reach; ``axis="x"`` for horizontal bars."""
    if chance is not None:
        line = dict(line_dash="dot", line_color="#9e9e9e", annotation_text=f"chance {100 * chance:.1f}%",
                    annotation_font_color="#757575", **where)
        (fig.add_hline(y=100 * chance, annotation_position="bottom left", **line) if axis == "y"
         else fig.add_vline(x=100 * chance, annotation_position="top left", **line))
    return fig


def chance_of(dense: dict) -> float | None:
    """The chance accuracy (1 / classes) of an evaluation summary that lists its classes (``per_class``)."""
    return 1 / len(dense["per_class"]) if dense.get("per_class") else None


def sparsity_curve(frame: pd.DataFrame, dense: dict, essential: dict[str, dict], eps: float = DEFAULT_EPS,
                   title: str | None = None, planned: int | None = None, chance: float | None = None) -> go.Figure:
    """Accuracy against sparsity per method, dense line, the eps band, chance and each turning point.

    ``frame`` has columns method, sparsity, accuracy, ci_low, ci_high (fractions), and for points decided
    early by a turning-point search ``early`` with the bounds ``acc_low``/``acc_high`` of their accuracy. A
    method with a fixed sparsity (N:M: 1 - N/M whatever is asked) is one point, not a line from the dense
    model. Turning points are stars named in the legend (with their sparsity), so labels of several methods
    never collide on the chart. A point decided early is drawn as the bound it is, never as an accuracy: a
    triangle up at "at least" (within tolerance) or down at "at most" (below it).

    ``planned`` marks a curve still being computed: it has that many points in all, its evaluated ones are
    drawn as markers only (no line through sparsities not evaluated) and the title says "n of N points".
    ``chance`` (default: 1 / the dense evaluation's classes) is drawn dotted.
    """
    from ..pruning import PRUNERS

    early = frame["early"].fillna(False).astype(bool) if "early" in frame else pd.Series(False, index=frame.index)
    decided = frame[early & frame["accuracy"].isna()] if "acc_low" in frame else frame.iloc[:0]
    frame = frame[frame["accuracy"].notna()]
    if planned is not None:
        title = f"{title + ': ' if title else ''}{len(frame)} of {planned} points so far" + \
            (f" (+{len(decided)} decided early)" if len(decided) else "")
    fig = go.Figure()
    chance_level(fig, chance if chance is not None else chance_of(dense))
    a = 100 * dense["accuracy"]
    points = count_text(round(100 * eps, 6), "point")
    fig.add_hrect(y0=a - 100 * eps, y1=a, fillcolor="#c2185b", opacity=0.08, line_width=0)
    fig.add_hline(y=a, line_dash="dash", line_color="#424242", annotation_position="top right",
                  annotation_text=f"dense {a:.1f}% (shaded: within {points})")
    dense_row = {"sparsity": 0.0, "accuracy": dense["accuracy"], "ci_low": dense["ci95"][0], "ci_high": dense["ci95"][1]}
    for method, part in frame.groupby("method", sort=False):
        fixed = method in PRUNERS and PRUNERS[method].fixed_sparsity() is not None
        part = part.drop_duplicates("sparsity") if fixed else pd.concat([pd.DataFrame([dense_row]), part])
        part = part.sort_values("sparsity")
        color = COLORS.get(method)
        fig.add_trace(go.Scatter(
            x=100 * part["sparsity"], y=100 * part["accuracy"],
            mode="markers" if fixed or planned is not None else "lines+markers",
            name=method, line=dict(color=color), marker=dict(size=12 if fixed else 6, symbol="diamond" if fixed else "circle"),
            error_y=dict(type="data", symmetric=False, array=100 * (part["ci_high"] - part["accuracy"]),
                         arrayminus=100 * (part["accuracy"] - part["ci_low"]), thickness=1, width=2),
            hovertemplate=f"{method}<br>sparsity %{{x:.1f}}%<br>accuracy %{{y:.2f}}%<extra></extra>"))
        ess = essential.get(method)
        if ess and len(part) > 1 and not fixed and planned is None:
            s = ess["essential_sparsity"]
            hit = part.loc[(part["sparsity"] - s).abs() < 1e-9, "accuracy"]
            y = 100 * float(hit.iloc[0]) if len(hit) else a
            fig.add_trace(go.Scatter(x=[100 * s], y=[y], mode="markers", marker=dict(symbol="star", size=16, color=color),
                                     name=f"{method} turning point: {100 * s:.0f}%", legendgroup=method,
                                     hovertemplate=f"{method} essential sparsity {100 * s:.1f}%<extra></extra>"))
    rule = Tolerance(dense["accuracy"], eps)
    for method, part in decided.groupby("method", sort=False):
        within = rule.within(part["acc_low"])
        y = part["acc_low"].where(within, part["acc_high"])
        fig.add_trace(go.Scatter(
            x=100 * part["sparsity"], y=100 * y, mode="markers", name=f"{method}: decided early (bound)",
            legendgroup=method, marker=dict(size=9, color=COLORS.get(method), symbol=[
                "triangle-up-open" if w else "triangle-down-open" for w in within]),
            text=["at least" if w else "at most" for w in within], customdata=part["seen"],
            hovertemplate=f"{method}<br>sparsity %{{x:.1f}}%<br>accuracy %{{text}} %{{y:.2f}}% "
                          "(decided after %{customdata} images)<extra></extra>"))
    return style(fig, "sparsity (% of scoped weights pruned)", "top-1 accuracy (%)", title)


def layer_sparsity_bars(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Per-layer sparsity (table from lotus_core.pruning.sweep.layer_sparsity_table)."""
    fig = go.Figure()
    for kind, part in table.groupby("kind", sort=False):
        fig.add_trace(go.Bar(x=part["block"], y=100 * part["sparsity"], name=kind,
                             hovertemplate=f"block %{{x}} {kind}: %{{y:.1f}}%<extra></extra>"))
    fig.update_layout(barmode="group")
    return style(fig, "transformer block", "sparsity (% pruned)", title, height=360)


def heatmap(table: pd.DataFrame, x_title: str, y_title: str, colorbar: str, title: str | None = None,
            zmin: float | None = None, zmax: float | None = None, colorscale: str = "RdBu_r",
            zmid: float | None = None) -> go.Figure:
    """A heatmap of a DataFrame (rows: index, columns: columns); ``zmid`` centres a diverging scale."""
    fig = go.Figure(go.Heatmap(z=table.values, x=[str(c) for c in table.columns], y=[str(i) for i in table.index],
                               colorscale=colorscale, zmin=zmin, zmax=zmax, zmid=zmid, colorbar=dict(title=colorbar),
                               hovertemplate="%{y}<br>%{x}: %{z:.2f}<extra></extra>"))
    return style(fig, x_title, y_title, title, height=max(300, 22 * len(table) + 120))


def sensitivity_heatmap(drop_points: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Accuracy drop (points, dense minus pruned) when one layer alone is pruned: layers down, sparsity across.

    A drop is a cost, so the scale is sequential from 0 (no loss; a layer that gains accuracy when
    pruned is shown at 0, its value in the hover) and every layer is labelled.
    """
    fig = heatmap(drop_points, "sparsity of that layer alone", "layer", "accuracy drop (points)", title, zmin=0,
                  zmax=max(1.0, float(drop_points.to_numpy().max())), colorscale="Reds")
    fig.update_yaxes(tickmode="array", tickvals=[str(i) for i in drop_points.index], autorange="reversed")
    return fig


def image_grid(images, labels: list[str], cols: int = 8, height: int = 260) -> go.Figure:
    """A grid of grayscale or RGB uint8 images ``(N, C, H, W)`` with a caption under each."""
    from plotly.subplots import make_subplots

    n = len(images)
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=labels, horizontal_spacing=0.01, vertical_spacing=0.08)
    for i in range(n):
        arr = images[i].expand(3, -1, -1).permute(1, 2, 0).numpy()  # grayscale shown as RGB
        fig.add_trace(go.Image(z=arr, hoverinfo="skip"), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height * rows, margin=dict(l=0, r=0, t=30, b=0), template="plotly_white")
    fig.update_annotations(font_size=11)
    return fig


def similarity_curve(frame: pd.DataFrame, group: str | None, measure: str = "cosine",
                     title: str | None = None) -> go.Figure:
    """``measure`` (cosine or jaccard_pruned) against sparsity per group, each with its chance level.

    The chance level is drawn as a dotted line of the same colour and the gap shaded: a
    similarity means something only as far as it stands above chance.
    """
    fig = go.Figure()
    groups = frame.groupby(group, sort=False) if group else [("", frame)]
    palette = ["#c2185b", "#2e7d32", "#0288d1", "#f57c00", "#7b1fa2", "#757575"]
    for i, (name, part) in enumerate(groups):
        part = part.sort_values("sparsity")
        color = COLORS.get(str(name), palette[i % len(palette)])
        label = str(name) or measure
        fig.add_trace(go.Scatter(x=100 * part["sparsity"], y=100 * part[f"chance_{measure}"], mode="lines",
                                 line=dict(color=color, dash="dot"), name=f"{label}: chance", legendgroup=label))
        fig.add_trace(go.Scatter(x=100 * part["sparsity"], y=100 * part[measure], mode="lines+markers", fill="tonexty",
                                 fillcolor=_translucent(color, 0.12), line=dict(color=color), name=label, legendgroup=label,
                                 hovertemplate=f"{label}<br>sparsity %{{x:.1f}}%<br>{measure} %{{y:.2f}}%<extra></extra>"))
    unit = "cosine similarity of keep-masks (%)" if measure == "cosine" else "Jaccard index of pruned sets (%)"
    return style(fig, "sparsity (% pruned)", unit, title)


def layer_similarity(per_layer: dict[str, dict], measure: str = "cosine", title: str | None = None) -> go.Figure:
    """Per layer (``mask_similarity(...)["per_layer"]``): ``measure`` as a bar, its chance level as a tick."""
    layers = list(per_layer)[::-1]  # first layer on top
    value = [100 * per_layer[n][measure] for n in layers]
    chance = [100 * per_layer[n][f"chance_{measure}"] for n in layers]
    fig = go.Figure([
        go.Bar(x=value, y=layers, orientation="h", name=measure.replace("_", " "), marker_color="#c2185b",
               customdata=[v - c for v, c in zip(value, chance)],
               hovertemplate="%{y}<br>%{x:.2f}% (%{customdata:+.2f} points vs chance)<extra></extra>"),
        go.Scatter(x=chance, y=layers, mode="markers", name="chance", marker=dict(symbol="line-ns-open", size=14,
                   line=dict(width=3, color="#212121")), hovertemplate="%{y}<br>chance %{x:.2f}%<extra></extra>"),
    ])
    unit = "cosine similarity of keep-masks (%)" if measure == "cosine" else "Jaccard index of pruned sets (%)"
    fig = style(fig, unit, "layer", title, height=max(320, 18 * len(layers) + 120))
    fig.update_xaxes(range=[0, 100])
    return fig


def accuracy_lines(frame: pd.DataFrame, dense: float | None = None, title: str | None = None,
                   chance: float | None = None, difference: bool = False,
                   dense_ci: tuple[float, float] | None = None) -> go.Figure:
    """Accuracy against sparsity per series (columns series, sparsity, accuracy), with the dense accuracy and
    ``chance`` (1 / classes) as lines. ``difference`` draws each series minus ``dense`` in points instead:
    curves that all sit on the dense line at the accuracy scale are told apart at this one; there the dense
    accuracy's 95% interval ``dense_ci`` (fractions) is a band around 0, so a ticket inside it is not told
    apart from dense by the test set."""
    fig = go.Figure()
    if difference and dense is None:
        raise ValueError("a difference to dense needs the dense accuracy")
    base = dense if difference else 0.0
    colors: dict[str, str] = {}  # one colour per series (an ISSP run's two share one), the kind's own first
    spare = iter(["#0288d1", "#f57c00", "#5e35b1", "#6d4c41", "#00acc1", "#9e9d24", "#d81b60", "#43a047"] * 4)
    for name, part in frame.groupby("series", sort=False):
        part = part.sort_values("sparsity")
        key = str(name).split(" ")[0].lower()
        run = str(name).removesuffix(" before fine-tune").removesuffix(" fine-tuned")  # both ISSP curves of a run
        if run not in colors:
            colors[run] = COLORS[key] if key in COLORS and COLORS[key] not in colors.values() else next(spare)
        unit = "points vs dense" if difference else "%"
        fig.add_trace(go.Scatter(x=100 * part["sparsity"], y=100 * (part["accuracy"] - base), mode="lines+markers",
                                 name=str(name), line=dict(color=colors[run], dash="dot" if "before" in str(name) else None),
                                 hovertemplate=f"{name}<br>sparsity %{{x:.1f}}%<br>accuracy %{{y:+.2f}} {unit}"
                                               "<extra></extra>" if difference else
                                               f"{name}<br>sparsity %{{x:.1f}}%<br>accuracy %{{y:.2f}}%<extra></extra>"))
    if difference:
        if dense_ci is not None:
            fig.add_hrect(y0=100 * (dense_ci[0] - dense), y1=100 * (dense_ci[1] - dense), fillcolor="#9e9e9e",
                          opacity=0.2, line_width=0, layer="below", annotation_text="dense 95% interval",
                          annotation_position="bottom left")
        fig.add_hline(y=0, line_dash="dash", annotation_text=f"dense {100 * dense:.1f}%")
        return style(fig, "sparsity (% pruned)", "accuracy minus dense (points)", title)
    if dense is not None:
        fig.add_hline(y=100 * dense, line_dash="dash", annotation_text=f"dense {100 * dense:.1f}%")
    chance_level(fig, chance)
    return style(fig, "sparsity (% pruned)", "top-1 accuracy (%)", title)


def kept_weights(a, b, label_a: str, label_b: str, layer: str) -> go.Figure:
    """One layer's kept weights (white = kept) for two masks side by side."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=[label_a, label_b], horizontal_spacing=0.1)
    for col, m in ((1, a), (2, b)):
        fig.add_trace(go.Heatmap(z=m.float().numpy()[::-1], colorscale=[[0, "#212121"], [1, "#fafafa"]], showscale=False,
                                 hovertemplate="out %{y}, in %{x}: %{z}<extra></extra>"), row=1, col=col)
    fig.update_layout(height=420, margin=dict(l=40, r=10, t=40, b=40), template="plotly_white")
    titled(fig, f"{layer}: kept (white) and pruned (black) weights", above=40)
    fig.update_xaxes(title_text="input feature")
    fig.update_yaxes(title_text="output feature", col=1)
    return fig


def per_class_accuracy(dense: dict, title: str | None = None) -> go.Figure:
    """Horizontal bars of a dense evaluation's per-class accuracy (%), worst class at the bottom, with the
    overall accuracy dashed (``dense`` as :meth:`Context.dense_accuracy` returns it)."""
    per_class = pd.Series(dense["per_class"]).sort_values()
    fig = go.Figure(go.Bar(x=100 * per_class.values, y=per_class.index, orientation="h", marker_color="#0288d1",
                           hovertemplate="%{y}: %{x:.1f}%<extra></extra>"))
    fig.add_vline(x=100 * dense["accuracy"], line_dash="dash")
    chance_level(fig, chance_of(dense), axis="x")
    return style(fig, "top-1 accuracy (%)", "class", title, height=max(300, 28 * len(per_class) + 120))


SPEED_COLORS = {"dense": "#212121", "masked": "#c2185b", "csr": "#7b1fa2", "nm-2:4": "#0288d1", "heads": "#2e7d32",
                "channels": "#00897b", "evit": "#f57c00", "tome": "#5d4037", "patch-dropout": "#757575"}


def speed_frontier(rows: pd.DataFrame, dense_accuracy: float, eps: float = DEFAULT_EPS, x: str = "latency_ms",
                   title: str | None = None, chance: float | None = None) -> go.Figure:
    """Accuracy against measured latency (or images/s) of every configuration at one batch size.

    ``rows`` is :meth:`lotus_core.speed.run.SpeedResult.at` (columns method, setting, latency_ms,
    images_per_s, speedup, accuracy, pareto); the dense point is a black star, the eps band is shaded
    below the dense accuracy and the Pareto frontier is a line through its points.
    """
    fig = go.Figure()
    a = 100 * dense_accuracy
    fig.add_hrect(y0=a - 100 * eps, y1=a, fillcolor="#c2185b", opacity=0.08, line_width=0)
    fig.add_hline(y=a, line_dash="dash", line_color="#424242", annotation_position="bottom right",
                  annotation_text=f"dense {a:.1f}% (shaded: within {count_text(round(100 * eps, 6), 'point')})")
    chance_level(fig, chance)
    unit = "ms per batch" if x == "latency_ms" else "images/s"
    for method, part in rows.groupby("method", sort=False):
        dense = method == "dense"
        fig.add_trace(go.Scatter(
            x=part[x], y=100 * part["accuracy"], mode="markers", name=method, text=part["setting"],
            marker=dict(color=SPEED_COLORS.get(method), size=18 if dense else 10, symbol="star" if dense else "circle"),
            customdata=part["speedup"],
            hovertemplate=f"{method} %{{text}}<br>%{{x:.4g}} {unit} (%{{customdata:.2f}}x dense)<br>"
                          "accuracy %{y:.2f}%<extra></extra>"))
    front = rows[rows["pareto"]].sort_values(x)
    fig.add_trace(go.Scatter(x=front[x], y=100 * front["accuracy"], mode="lines", name="Pareto frontier",
                             line=dict(color="#c2185b", width=2, dash="dot"), hoverinfo="skip",
                             line_shape="hv" if x == "latency_ms" else "vh"))
    fig = style(fig, f"measured {'latency' if x == 'latency_ms' else 'throughput'} ({unit})", "top-1 accuracy (%)", title)
    fig.update_xaxes(type="log")
    return fig


def barrier_curve(frame: pd.DataFrame, tolerance: float = 0.02, title: str | None = None,
                  against: str = "k") -> go.Figure:
    """Error barrier (points) against the rewinding step k, one line per series (columns series, k, barrier,
    sparsity; fractions), or with ``against="sparsity"`` against the ticket's sparsity, one line per k;
    the stability tolerance is a dashed line (Frankle et al., ICML 2020)."""
    fig = go.Figure()
    by, x, scale, label = ("series", "k", 1, "k %{x}") if against == "k" else ("k", "sparsity", 100, "sparsity %{x:.0f}%")
    for name, part in frame.groupby(by, sort=False):
        part = part.sort_values(x)
        name = f"k = {name}" if by == "k" else str(name)
        fig.add_trace(go.Scatter(x=scale * part[x], y=100 * part["barrier"], mode="lines+markers", name=name,
                                 hovertemplate=f"{name}<br>{label}<br>barrier %{{y:.2f}} points<extra></extra>"))
    fig.add_hline(y=100 * tolerance, line_dash="dash", annotation_text=f"stable below {100 * tolerance:g} points")
    axis = "rewinding point k (training steps)" if against == "k" else "ticket sparsity (% of scoped weights pruned)"
    return style(fig, axis, "error barrier (points)", title)


def training_curves(losses: pd.DataFrame, rounds: pd.DataFrame, title: str | None = None,
                    chance: float | None = None) -> go.Figure:
    """A ticket run's training: the loss of every step (left axis; a dotted line where each round starts) and the
    accuracy after each round (right axis, at the step the round ended on), from
    :func:`~lotus_core.views.catalog.training_trace`."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=losses["step"], y=losses["loss"], mode="lines", name="training loss",
                             line=dict(color="#1f77b4", width=1.5), customdata=losses["round"],
                             hovertemplate="step %{x} (round %{customdata})<br>loss %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=rounds["step"], y=100 * rounds["accuracy"], mode="lines+markers",
                             name="accuracy after the round", line=dict(color="#c2185b"),
                             customdata=100 * rounds["sparsity"],
                             hovertemplate="after step %{x}: %{y:.1f}%<br>sparsity %{customdata:.1f}%<extra></extra>"),
                  secondary_y=True)
    starts = rounds["step"].tolist()[:-1]
    fig.update_layout(shapes=[dict(type="line", xref="x", yref="paper", x0=s, x1=s, y0=0, y1=1,
                                   line=dict(color="#9e9e9e", dash="dot", width=1)) for s in starts])
    if chance is not None:  # on the accuracy axis
        fig.add_trace(go.Scatter(x=[losses["step"].min(), losses["step"].max()], y=[100 * chance] * 2, mode="lines",
                                 name=f"chance {100 * chance:.1f}%", line=dict(color="#9e9e9e", dash="dot"),
                                 hoverinfo="skip"), secondary_y=True)
    style(fig, "training step (all rounds)", "training loss", title)
    fig.update_yaxes(title_text="top-1 accuracy (%)", secondary_y=True)
    return fig
