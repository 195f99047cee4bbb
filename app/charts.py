"""plotly figure helpers shared by pages and the report: consistent axes, units and style."""
from __future__ import annotations

import plotly.graph_objects as go

PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def style(fig: go.Figure, x_title: str, y_title: str, title: str | None = None, height: int = 420) -> go.Figure:
    """Axis titles (with units), a compact margin and a legend on top."""
    fig.update_layout(title=title, height=height, margin=dict(l=60, r=20, t=50 if title else 20, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), template="plotly_white")
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def image_grid(images, labels: list[str], cols: int = 8, height: int = 260) -> go.Figure:
    """A grid of grayscale or RGB uint8 images ``(N, C, H, W)`` with a caption under each."""
    from plotly.subplots import make_subplots

    n = len(images)
    rows = (n + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=labels, horizontal_spacing=0.01, vertical_spacing=0.08)
    for i in range(n):
        img = images[i]
        arr = img.expand(3, -1, -1).permute(1, 2, 0).numpy()  # grayscale shown as RGB
        fig.add_trace(go.Image(z=arr, hoverinfo="skip"), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height * rows, margin=dict(l=0, r=0, t=30, b=0), template="plotly_white")
    fig.update_annotations(font_size=11)
    return fig
