"""Streamlit helpers shared by the pages: sidebar state, error handling, chart helpers."""
