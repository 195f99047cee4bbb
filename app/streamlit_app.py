"""LOTUS dashboard entry point: navigation and the shared sidebar, nothing else."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run app/streamlit_app.py` puts only app/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app.state import sidebar  # noqa: E402

st.set_page_config(page_title="LOTUS: pruning Vision Transformers", page_icon=":lotus:", layout="wide")

# (file, title, icon) in navigation order.
PAGES = [
    ("overview.py", "Overview", ":material/home:"),
    ("patches.py", "Patches", ":material/grid_on:"),
    ("sparsity_curves.py", "Sparsity curves", ":material/show_chart:"),
    ("speed.py", "Speed", ":material/speed:"),
    ("masks.py", "Masks", ":material/compare:"),
    ("soup.py", "Soup", ":material/science:"),
    ("experiments.py", "Experiments", ":material/table_view:"),
    ("report.py", "Report", ":material/summarize:"),
]
pages = [st.Page(ROOT / "pages" / f, title=t, icon=i, default=(f == "overview.py"))
         for f, t, i in PAGES]
nav = st.navigation(pages)
sidebar()
nav.run()
