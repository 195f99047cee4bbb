"""The complete demo: one command computes everything the pages and the Report draw on, resumably."""
from lotus_core.views.demo import demo_plan, missing_steps, prepare_demo
from lotus_core.views.report import ReportOptions, build_report


def test_prepare_demo_fills_every_report_section_and_never_computes_twice(tiny_ctx):
    labels = [s.label for s in demo_plan(100)]
    assert missing_steps(tiny_ctx, 100) == labels  # an empty store misses every step
    seen = []
    first = prepare_demo(tiny_ctx, 100, on_progress=seen.append)
    assert first["computed"] == len(labels) == len(first["steps"]) == len(seen) == 12
    assert [p["step"] for p in seen] == list(range(1, 13)) and seen[0]["eta_s"] is None and seen[-1]["eta_s"] > 0
    assert missing_steps(tiny_ctx, 100) == []
    report = build_report(tiny_ctx, ReportOptions(limit=100, example_images=2))
    assert [s.missing for s in report.sections] == [None] * 6  # every section filled
    assert prepare_demo(tiny_ctx, 100)["computed"] == 0  # a rerun serves everything from the store
    assert missing_steps(tiny_ctx, 50) == [l for l in labels if l != "patch scorers compared"]  # another protocol
