"""Foundations every other package uses: errors, paths, device choice, and the analysis Context."""
