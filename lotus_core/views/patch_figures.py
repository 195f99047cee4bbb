"""plotly figures of the Patches page: score heatmaps over images, deletion/insertion curves and
the lottery-training convergence chart. Accuracies are shown in percent."""
from __future__ import annotations

import html
import math
import textwrap

import pandas as pd
import plotly.graph_objects as go
import torch

from .figures import style
from ..patches.grid import PatchGrid

SCORER_COLORS = {"cls": "#c2185b", "rollout": "#7b1fa2", "captum-ablation": "#0288d1", "captum-ig": "#f57c00",
                 "random": "#757575"}
ARM_COLORS = {"lottery": "#2e7d32", "full": "#424242"}
DROPPED_FILL = "rgba(245,245,245,0.78)"  # dropped patches are washed out, not outlined: legible at any drop ratio
DROPPED_LINE = "rgba(120,120,120,0.6)"


TITLE_CHARS = 20  # the longest line of a patch title: two columns of images fit it on a 390 px phone
TITLE_LINES = 3  # lines of a patch title at most (a longer one ends in "…")
TITLE_FONT_PX = 11
ROW_PX = 230  # height of one row of images


def patch_title(where: str, truth: str | None, before: str, after: str) -> str:
    """A patch image's title in plain text (``patch_overlays`` wraps and escapes it): where the image comes from
    (``"#12"``, or an upload's file name) with its true class, then the answer on the whole image -> on its
    lottery version: ``"#12 Coat\nCoat → Shirt"``."""
    return f"{where} {truth}\n{before} → {after}" if truth is not None else f"{where}\n{before} → {after}"


def title_lines(title: str, chars: int = TITLE_CHARS, most: int = TITLE_LINES) -> list[str]:
    """``title`` (lines separated by newlines) wrapped into at most ``most`` lines of at most ``chars``
    characters, the last cut with "…" when more would be needed: plotly never wraps an annotation, so a long
    title overlaps its neighbour's or runs off the chart in a narrow window."""
    lines = [part for line in title.split("\n") for part in (textwrap.wrap(line, chars, break_long_words=True,
                                                                          break_on_hyphens=False) or [""])]
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][:chars - 1].rstrip() + "…"
    return lines


def patch_overlays(images: torch.Tensor, scores: torch.Tensor, keep: torch.Tensor, grid: PatchGrid,
                   titles: list[str], cols: int = 2, opacity: float = 0.45) -> go.Figure:
    """Each uint8 image ``(C, H, W)`` with its patch scores as a heatmap (raw score values, the
    colour-blind-safe Viridis scale) and its dropped patches washed out in light grey, so the
    kept ones stay legible even when half the patches are dropped.

    ``titles`` are plain text (newlines between lines; a user's file name is escaped here), wrapped by
    :func:`title_lines` into lines that fit two columns of images on a 390 px phone: a figure cannot know
    the window's width, so it has the columns that fit the narrowest one, and the gap above each row is the
    height of its titles' lines."""
    from plotly.subplots import make_subplots

    n = len(images)
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    wrapped = [title_lines(t) for t in titles]
    title_px = math.ceil((max((len(lines) for lines in wrapped), default=1) + 0.5) * (TITLE_FONT_PX + 4))
    plot_px = rows * ROW_PX + (rows - 1) * title_px  # the plotting area: rows of images and the titles between them
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=["<br>".join(html.escape(l) for l in lines)
                                                              for lines in wrapped],
                        horizontal_spacing=0.04, vertical_spacing=title_px / plot_px if rows > 1 else 0.0)
    shapes = []
    for i in range(n):
        r, c = i // cols + 1, i % cols + 1
        img = images[i].expand(3, -1, -1) if images[i].shape[0] == 1 else images[i]
        fig.add_trace(go.Image(z=img.permute(1, 2, 0).numpy(), hoverinfo="skip"), row=r, col=c)
        fig.add_trace(go.Heatmap(z=grid.to_grid(scores[i]).numpy(), x0=(grid.patch_w - 1) / 2, dx=grid.patch_w,
                                 y0=(grid.patch_h - 1) / 2, dy=grid.patch_h, colorscale="Viridis", opacity=opacity,
                                 showscale=i == 0, colorbar=dict(title="score", len=0.8, thickness=12),
                                 hovertemplate="patch row %{y:.0f}px, col %{x:.0f}px<br>score %{z:.4g}<extra></extra>"),
                      row=r, col=c)
        axes = fig.data[-1]  # the heatmap's subplot axes ("x", "x2", ...)
        for p in range(grid.num_patches):
            if bool(keep[i, p]):
                continue
            py, px = divmod(p, grid.cols)
            shapes.append(dict(type="rect", xref=axes.xaxis, yref=axes.yaxis, name="dropped",
                               x0=px * grid.patch_w - 0.5, x1=(px + 1) * grid.patch_w - 0.5,
                               y0=py * grid.patch_h - 0.5, y1=(py + 1) * grid.patch_h - 0.5,
                               fillcolor=DROPPED_FILL, line=dict(color=DROPPED_LINE, width=0.5)))
    fig.update_layout(shapes=shapes)  # one layout update: add_shape per patch costs seconds on a page
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, constraintoward="top")  # a narrow image sits under its title, not mid-row
    fig.update_annotations(font_size=TITLE_FONT_PX)  # the subplot titles
    fig.update_layout(height=plot_px + title_px + 10, margin=dict(l=0, r=0, t=title_px, b=10),
                      template="plotly_white")
    return fig


def fidelity_curves(curves: pd.DataFrame, auc: pd.DataFrame, mode: str) -> go.Figure:
    """Accuracy against the fraction of patches deleted (or inserted), one line per scorer, AUC in the legend."""
    fig = go.Figure()
    areas = auc.set_index("scorer")[f"{mode}_auc"]
    for scorer, part in curves[curves["mode"] == mode].groupby("scorer", sort=False):
        part = part.sort_values("fraction")
        fig.add_trace(go.Scatter(x=100 * part["fraction"], y=100 * part["accuracy"], mode="lines+markers",
                                 name=f"{scorer} (AUC {areas[scorer]:.3f})", line=dict(color=SCORER_COLORS.get(scorer)),
                                 hovertemplate=f"{scorer}<br>%{{x:.0f}}% of patches {mode}<br>"
                                               "accuracy %{y:.1f}%<extra></extra>"))
    verb = "deleted (most important first)" if mode == "deletion" else "inserted (most important first)"
    return style(fig, f"patches {verb} (%)", "top-1 accuracy (%)",
                 f"{mode.capitalize()} curve: " + ("lower is a better scorer" if mode == "deletion" else
                                                   "higher is a better scorer"), height=380)


def convergence(frame: pd.DataFrame, best_full: float | None = None) -> go.Figure:
    """Test accuracy after each epoch, lottery data against full images (frame from lottery_data.epoch_frame):
    on whole test images (solid) and, where recorded, on the test images' own tickets (dotted)."""
    fig = go.Figure()
    for arm, part in frame.groupby("arm", sort=False):
        part = part.sort_values("epoch")
        label = "data lottery ticket" if arm == "lottery" else "full images"
        fig.add_trace(go.Scatter(
            x=part["epoch"], y=100 * part["accuracy"], mode="lines+markers", name=label,
            line=dict(color=ARM_COLORS.get(arm)),
            error_y=dict(type="data", symmetric=False, array=100 * (part["ci_high"] - part["accuracy"]),
                         arrayminus=100 * (part["accuracy"] - part["ci_low"]), thickness=1, width=2),
            hovertemplate=f"{label}<br>epoch %{{x}}<br>accuracy %{{y:.2f}}%<extra></extra>"))
        if "ticket_accuracy" in part and part["ticket_accuracy"].notna().all():
            fig.add_trace(go.Scatter(
                x=part["epoch"], y=100 * part["ticket_accuracy"], mode="lines+markers", name=f"{label}, tested on tickets",
                line=dict(color=ARM_COLORS.get(arm), dash="dot"), marker=dict(symbol="circle-open"),
                hovertemplate=f"{label}, tested on the test images' tickets<br>epoch %{{x}}<br>accuracy %{{y:.2f}}%"
                              "<extra></extra>"))
    if best_full is not None:
        fig.add_hrect(y0=100 * best_full - 1, y1=100 * best_full, fillcolor="#2e7d32", opacity=0.08, line_width=0,
                      annotation_text="within 1 point of the best full-data accuracy",
                      annotation_position="bottom left")
    fig.update_xaxes(dtick=1)
    return style(fig, "epoch", "top-1 test accuracy (%)", "Training on data lottery tickets against full images")
