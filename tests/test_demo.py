"""The complete demo: one command computes everything the pages and the Report draw on, resumably."""
import json
import shutil

from lotus_core.cli import main
from lotus_core.core.context import open_context
from lotus_core.training.evaluate import DEFAULT_LIMIT
from lotus_core.views.demo import DEMO_DB, demo_plan, missing_steps, prepare_demo
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


def test_the_shipped_demo_store_holds_every_step_for_the_default_model(tmp_path):
    """data/demo/lotus-demo.db is what `make run` starts from: it must match the code's current keys."""
    db = tmp_path / "lotus.db"
    shutil.copy(DEMO_DB, db)
    assert missing_steps(open_context(db=db), DEFAULT_LIMIT) == []


def test_prepare_demo_cli_reports_steps_as_json(capsys, tmp_path):
    db = tmp_path / "lotus.db"
    shutil.copy(DEMO_DB, db)
    assert main(["prepare-demo", "--db", str(db), "--json"]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out)
    assert res["computed"] == 0 and len(res["steps"]) == 12 and res["limit"] == DEFAULT_LIMIT
    assert err.splitlines()[0].startswith("[1/12] dense accuracy (")
