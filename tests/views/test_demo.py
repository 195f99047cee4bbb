"""The complete demo: one command computes everything the pages and the Report draw on, resumably."""
from lotus_core.views.demo import demo_plan, missing_steps, prepare_demo
from lotus_core.views.report import ReportOptions, build_report


def test_prepare_demo_fills_every_report_section_and_never_computes_twice(tiny_ctx):
    labels = [s.label for s in demo_plan(100)]
    assert missing_steps(tiny_ctx, 100) == labels  # an empty store misses every step
    seen = []
    first = prepare_demo(tiny_ctx, 100, on_progress=seen.append)
    assert first["computed"] == len(labels) == len(first["steps"]) == len(seen) == 15
    assert [p["step"] for p in seen] == list(range(1, 16)) and seen[0]["eta_s"] is None and seen[-1]["eta_s"] > 0
    assert missing_steps(tiny_ctx, 100) == []
    report = build_report(tiny_ctx, ReportOptions(limit=100, example_images=2))
    assert [s.missing for s in report.sections] == [None] * 8  # every section filled (the claims table too)
    assert prepare_demo(tiny_ctx, 100)["computed"] == 0  # a rerun serves everything from the store
    assert missing_steps(tiny_ctx, 50) == [l for l in labels if l != "patch scorers compared"]  # another protocol


def test_a_compact_copy_leaves_out_only_the_weights_finished_runs_keep_to_resume_and_seeding_never_overwrites(
        tiny_ctx, tmp_path):
    import sqlite3

    from lotus_core.views.demo import compact_copy, seed_store

    store = tiny_ctx.store
    done, running, lth = (store.start_run(kind, {"n": i}) for i, kind in enumerate(("issp", "issp", "lth")))
    store.finish_run(done, {"ok": True})
    store.finish_run(lth, {"ok": True})
    trained = store.start_run("lottery-train", {"n": 3})
    store.finish_run(trained, {"ok": True})
    for rid in (done, running, lth):
        store.put_blob(rid, "soup-round-1.safetensors", b"w" * 1000)
        store.put_blob(rid, "mask-round-1.safetensors", b"m" * 10)
    for name in ("init.safetensors", "full-epoch-1.safetensors", "lottery-epoch-1.safetensors"):
        store.put_blob(trained, name, b"w" * 1000)
    out = tmp_path / "demo" / "ship.db"
    sizes = compact_copy(store.path, out)
    with sqlite3.connect(out) as con:
        kept = sorted(con.execute("SELECT run_id, name FROM blobs").fetchall())
        journal = con.execute("PRAGMA journal_mode").fetchone()[0]
    assert kept == sorted([(done, "mask-round-1.safetensors"), (running, "mask-round-1.safetensors"),
                           (running, "soup-round-1.safetensors"), (lth, "mask-round-1.safetensors"),
                           (lth, "soup-round-1.safetensors")])  # a running ISSP run still needs its soup to resume
    # (and the finished lottery training's weights are gone: its pages read its points)
    assert journal == "delete" and sizes["bytes"] == out.stat().st_size
    target = tmp_path / "fresh" / "lotus.db"
    assert seed_store(target, demo=out) and target.read_bytes() == out.read_bytes()
    target.write_bytes(b"the user's store")
    assert not seed_store(target, demo=out) and target.read_bytes() == b"the user's store"
    assert not seed_store(tmp_path / "other.db", demo=tmp_path / "missing.db")
