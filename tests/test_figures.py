"""Shared figures: series colours tell runs apart."""
import pandas as pd

from lotus_core.views.figures import COLORS, accuracy_lines


def test_each_ticket_run_gets_its_own_colour_and_an_issp_runs_two_curves_share_one():
    names = ["omp", "LTH 1a2b3c", "ISSP aaaaaa f=0.1 before fine-tune", "ISSP aaaaaa f=0.1 fine-tuned",
             "ISSP bbbbbb f=0.3 before fine-tune", "ISSP bbbbbb f=0.3 fine-tuned", "LTH 1a2b3c shuffle control"]
    frame = pd.DataFrame([{"series": n, "sparsity": 0.5, "accuracy": 0.8} for n in names])
    fig = accuracy_lines(frame)
    color = {t.name: t.line.color for t in fig.data}
    assert color["omp"] == COLORS["omp"] and color["LTH 1a2b3c"] == COLORS["lth"]
    assert color["ISSP aaaaaa f=0.1 before fine-tune"] == color["ISSP aaaaaa f=0.1 fine-tuned"] == COLORS["issp"]
    assert color["ISSP bbbbbb f=0.3 before fine-tune"] == color["ISSP bbbbbb f=0.3 fine-tuned"] != COLORS["issp"]
    assert len({color[n] for n in names}) == 5  # omp, the LTH ticket, two ISSP runs, the control
    assert [t.line.dash for t in fig.data].count("dot") == 2  # the soups before their fine-tune
