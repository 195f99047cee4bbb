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


def _shapes_at(fig, y: float) -> list:
    return [s for s in fig.layout.shapes if s.y0 == y and s.y1 == y]


def test_a_curve_still_computing_draws_points_only_and_early_decisions_as_bounds():
    from lotus_core.views.figures import sparsity_curve

    dense = {"accuracy": 0.90, "ci95": [0.89, 0.91], "per_class": {str(c): 0.9 for c in range(10)}}
    nan = float("nan")
    frame = pd.DataFrame([  # two evaluated points, one decided within (at least 89.5%), one below (at most 60%)
        {"method": "omp", "sparsity": 0.3, "accuracy": 0.895, "ci_low": 0.88, "ci_high": 0.90, "early": False,
         "acc_low": 0.895, "acc_high": 0.895, "seen": 2000},
        {"method": "omp", "sparsity": 0.57, "accuracy": 0.70, "ci_low": 0.68, "ci_high": 0.72, "early": False,
         "acc_low": 0.70, "acc_high": 0.70, "seen": 2000},
        {"method": "omp", "sparsity": 0.45, "accuracy": nan, "ci_low": nan, "ci_high": nan, "early": True,
         "acc_low": 0.895, "acc_high": 0.99, "seen": 1900},
        {"method": "omp", "sparsity": 0.8, "accuracy": nan, "ci_low": nan, "ci_high": nan, "early": True,
         "acc_low": 0.10, "acc_high": 0.60, "seen": 600}])
    fig = sparsity_curve(frame, dense, {"omp": {"essential_sparsity": 0.45}}, eps=0.01, planned=9)
    omp = next(t for t in fig.data if t.name == "omp")
    assert omp.mode == "markers" and [round(x, 6) for x in omp.x] == [0.0, 30.0, 57.0]  # no line through 31-56% (never evaluated)
    bound = next(t for t in fig.data if t.name == "omp: decided early (bound)")
    assert [round(v, 6) for v in (*bound.x, *bound.y)] == [45.0, 80.0, 89.5, 60.0]
    assert list(bound.marker.symbol) == ["triangle-up-open", "triangle-down-open"] and list(bound.text) == [
        "at least", "at most"]
    assert fig.layout.title.text.replace("<br>", " ") == "2 of 9 points so far (+2 decided early)"
    assert not [t for t in fig.data if t.marker.symbol == "star"]  # no turning point drawn on a partial curve
    assert len(_shapes_at(fig, 10.0)) == 1  # chance: 1 / 10 classes, dotted
    assert fig.layout.annotations[0].text == "chance 10.0%"
    done = sparsity_curve(frame, dense, {"omp": {"essential_sparsity": 0.45}})  # finished: a line again
    assert next(t for t in done.data if t.name == "omp").mode == "lines+markers"


def test_soup_curves_on_the_dense_line_are_told_apart_as_differences_to_dense_and_chance_is_drawn():
    frame = pd.DataFrame([{"series": "LTH a", "sparsity": 0.5, "accuracy": 0.902},
                          {"series": "ISSP b", "sparsity": 0.5, "accuracy": 0.897}])
    fig = accuracy_lines(frame, 0.90, chance=0.1)
    assert [list(t.y) for t in fig.data] == [[90.2], [89.7]] and len(_shapes_at(fig, 10.0)) == 1
    diff = accuracy_lines(frame, 0.90, chance=0.1, difference=True)
    assert [[round(y, 6) for y in t.y] for t in diff.data] == [[0.2], [-0.3]]
    assert diff.layout.yaxis.title.text == "accuracy minus dense (points)" and len(_shapes_at(diff, 0)) == 1


def test_the_soup_cost_table_says_why_a_number_is_missing_instead_of_none():
    from lotus_core.views.catalog import cost_table

    costs = pd.DataFrame([
        {"run": "LTH a", "kind": "lth", "data fraction": None, "rounds": 3, "final sparsity": 0.488,
         "final accuracy": 0.8812, "training steps": 300, "training time (s)": None},
        {"run": "RigL b", "kind": "rigl", "data fraction": None, "rounds": None, "final sparsity": 0.8,
         "final accuracy": 0.85, "training steps": 1200, "training time (s)": 41.4}])
    table = cost_table(costs)
    assert "data fraction" not in table  # no ISSP run shown
    assert table.to_dict("records") == [
        {"run": "LTH a", "kind": "lth", "rounds": "3", "final sparsity": "48.8%", "final accuracy": "88.12%",
         "training steps": "300", "training time (s)": "— (not recorded: run stored before timing)"},
        {"run": "RigL b", "kind": "rigl", "rounds": "— (trained once)", "final sparsity": "80.0%",
         "final accuracy": "85.00%", "training steps": "1,200", "training time (s)": "41"}]


def test_counts_are_worded_in_the_singular_for_one_and_the_plural_otherwise():
    from lotus_core.core.text import count_text

    assert [count_text(n, "point") for n in (1, 2, 0.5, 0)] == ["1 point", "2 points", "0.5 points", "0 points"]
    assert count_text(2, "thread") == "2 threads" and count_text(1, "finished epoch") == "1 finished epoch"


def test_percent_text_shows_a_dash_for_a_run_without_the_number():
    from lotus_core.views.tables import NOT_APPLICABLE, percent_text

    column = pd.Series([0.88125, None, float("nan"), 0.5], index=[3, 4, 5, 6])
    shown = percent_text(column)
    assert shown.tolist() == ["88.12%", NOT_APPLICABLE, NOT_APPLICABLE, "50.00%"] and list(shown.index) == [3, 4, 5, 6]
