"""The Speed page's table: the columns compared at once fit a phone and include accuracy (issue 28 §5: it was the
13th of 16 columns, scrolled out of sight at 1400 px); every other column stays, apart."""
import pandas as pd
import pytest

from lotus_core.views.speed import COMPARE, DETAILS, speed_table


def rows(finetuned: float | None = None) -> pd.DataFrame:
    return pd.DataFrame([{"method": "channels", "setting": "50% (144 ch)", "latency_ms": 2.0, "iqr_ms": 0.1,
                          "images_per_s": 4000.0, "speedup": 1.25, "speedup_low": 1.2, "speedup_high": 1.3,
                          "unreliable": None, "flops": 2.5e7, "params": 1000.0, "bytes": 4e6, "peak_mem_bytes": 8e6,
                          "accuracy": 0.8812, "accuracy_finetuned": finetuned, "drop": 0.0103, "pareto": True,
                          "tokens": None}])


def test_the_compared_columns_are_method_setting_accuracy_and_speed_up_in_percent():
    table, compare, details = speed_table(rows(), finetuned=False)
    assert compare == COMPARE == ["method", "setting", "accuracy (%)", "speed-up"]
    assert details == DETAILS and not set(compare) & set(details) and set(compare + details) <= set(table)
    row = table.iloc[0]
    assert row["accuracy (%)"] == pytest.approx(88.12) and row["drop (points)"] == pytest.approx(1.03)
    assert (row["speed-up"], row["95% interval"], row["FLOPs (M/image)"], row["size (MB)"]) == (1.25, "(1.20-1.30x)",
                                                                                                25.0, 4.0)


def test_a_fine_tuned_run_compares_its_fine_tuned_accuracy_beside_the_accuracy():
    table, compare, _ = speed_table(rows(finetuned=0.9), finetuned=True)
    assert compare == ["method", "setting", "accuracy (%)", "fine-tuned (%)", "speed-up"]
    assert table.iloc[0]["fine-tuned (%)"] == pytest.approx(90.0)
