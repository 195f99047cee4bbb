"""Chart helpers for pages: the shared figures (lotus_core.views.figures) and plotly display settings."""
from __future__ import annotations

import re

import plotly.graph_objects as go
import streamlit as st

from lotus_core.views.figures import (TITLE_LINE_PX, heatmap, image_grid, layer_sparsity_bars,  # noqa: F401
                                      sensitivity_heatmap, sparsity_curve, speed_frontier, style)

PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def title_markdown(title: str) -> str:
    """A chart title as bold markdown on one logical line (markdown's special characters escaped)."""
    text = re.sub(r"\s*<br>\s*", " ", title)
    return "**" + re.sub(r"([\\`*_{}\[\]#|<>$~])", r"\\\1", text) + "**"


def show(fig: go.Figure, key: str | None = None) -> None:
    """Draw a plotly figure full width, with PNG download in the toolbar. Its title is drawn as text above
    it instead, so it wraps in a narrow window (plotly never wraps a title, and the legend grows into it)."""
    title = fig.layout.title.text
    if title:
        st.markdown(title_markdown(title))
        top = fig.layout.margin.t if fig.layout.margin.t is not None else 80
        fig = go.Figure(fig).update_layout(title_text=None,
                                           margin_t=max(30, top - TITLE_LINE_PX * (title.count("<br>") + 1)))
    st.plotly_chart(fig, config=PLOT_CONFIG, key=key)
