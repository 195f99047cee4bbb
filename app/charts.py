"""Chart helpers for pages: the shared figures (lotus_core.views.figures) and plotly display settings."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from lotus_core.views.figures import (heatmap, image_grid, layer_sparsity_bars, sensitivity_heatmap,  # noqa: F401
                                      sparsity_curve, style)

PLOT_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def show(fig: go.Figure, key: str | None = None) -> None:
    """Draw a plotly figure full width, with PNG download in the toolbar."""
    st.plotly_chart(fig, config=PLOT_CONFIG, key=key)
