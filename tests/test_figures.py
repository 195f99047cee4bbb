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


def _curve_frame():
    rows = [{"method": m, "sparsity": s, "accuracy": a, "ci_low": a - 0.01, "ci_high": a + 0.01}
            for m, pts in {"omp": [(0.3, 0.88), (0.5, 0.86)], "random": [(0.3, 0.7), (0.5, 0.4)],
                           "nm": [(0.5, 0.85), (0.5, 0.85)]}.items() for s, a in pts]
    return pd.DataFrame(rows)


def test_fixed_sparsity_method_is_one_point_and_turning_points_are_named_in_the_legend():
    from lotus_core.views.figures import sparsity_curve

    dense = {"accuracy": 0.89, "ci95": [0.88, 0.90]}
    essential = {"omp": {"essential_sparsity": 0.3}, "random": {"essential_sparsity": 0.0}, "nm": {"essential_sparsity": 0.0}}
    fig = sparsity_curve(_curve_frame(), dense, essential)
    nm = next(t for t in fig.data if t.name == "nm")
    assert nm.mode == "markers" and list(nm.x) == [50.0]  # N:M: one point at 1 - 2/4, no line from the dense model
    omp = next(t for t in fig.data if t.name == "omp")
    assert omp.mode == "lines+markers" and list(omp.x) == [0.0, 30.0, 50.0]
    stars = [t for t in fig.data if t.marker.symbol == "star"]
    assert [t.name for t in stars] == ["omp turning point: 30%", "random turning point: 0%"]
    assert all(t.text is None for t in fig.data)  # no on-chart labels that could collide


def test_sensitivity_heatmap_is_sequential_from_zero_and_labels_every_layer():
    from lotus_core.views.figures import sensitivity_heatmap

    layers = [f"blocks.{i}.attn.qkv.weight" for i in range(12)]
    table = pd.DataFrame([[0.1 * i, -0.2, 3.0] for i in range(12)], index=layers, columns=["50%", "70%", "90%"])
    fig = sensitivity_heatmap(table)
    heat = fig.data[0]
    assert heat.zmin == 0 and heat.zmax == 3.0 and heat.zmid is None
    assert heat.colorscale[0][1] != heat.colorscale[-1][1] and fig.layout.yaxis.tickmode == "array"
    assert list(fig.layout.yaxis.tickvals) == layers


def test_readable_tables_have_no_none_cells_and_keep_numbers_sortable():
    import pandas as pd

    from lotus_core.views.tables import NOT_APPLICABLE, readable

    raw = pd.DataFrame({"run": ["a", "b"], "data fraction": [None, None], "rounds": [3, None], "note": ["x", None],
                        "accuracy": [None, None], "when": pd.to_datetime(["2026-12-01", None])})
    shown = readable(raw, keep=["accuracy"])
    assert list(shown) == ["run", "rounds", "note", "accuracy", "when"]  # the all-empty column that is not kept goes
    assert shown["rounds"].dtype == float and shown["rounds"].tolist()[0] == 3 and pd.isna(shown["rounds"][1])
    assert shown["note"].tolist() == ["x", NOT_APPLICABLE] and shown["accuracy"].isna().all()
    assert shown["when"].dtype.kind == "M" and raw["note"].isna().tolist() == [False, True]  # the input is unchanged
