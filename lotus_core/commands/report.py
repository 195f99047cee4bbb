"""Report and housekeeping commands: report (the stakeholder report as one HTML file), delete."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import LotusError
from . import progress_stream
from . import arg, command, output_path, positive_int


def _report_args() -> list:
    from ..training.evaluate import DEFAULT_LIMIT

    return [arg("--out", default="report.html", help="HTML file to write (opens offline: plotly.js is embedded)"),
            arg("--limit", type=positive_int, default=DEFAULT_LIMIT, help="test images of the dense accuracy"),
            arg("--example-class", type=int, default=0, help="class index of the patch-selection example images")]


@command("report", "the stakeholder report from stored results, as one self-contained HTML file", _report_args)
def report_cmd(args, ctx) -> dict:
    from ..views.report import ReportOptions, build_report

    if not 0 <= args.example_class < len(ctx.test.classes):
        raise LotusError(f"--example-class {args.example_class} is outside 0..{len(ctx.test.classes) - 1}")
    output_path(args.out, "--out")
    report = build_report(ctx, ReportOptions(limit=args.limit, example_class=args.example_class))
    text = report.to_html()
    out = Path(args.out)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LotusError(f"cannot write {out} ({exc.strerror}); pass a writable --out path") from None
    return {"out": str(out), "bytes": len(text.encode()), **report.to_dict()}


@command("delete", "delete a stored run (and its points and blobs); cancel a running one first", [
    arg("run_id", help="run id, or a unique prefix of it (see `runs`)"),
], context=False)
def delete_cmd(args, ctx) -> dict:
    from ..views.experiments import delete_run
    from ..results.store import Store

    run = delete_run(Store(args.db, create=False), args.run_id)
    return {"deleted": run["id"], "kind": run["kind"], "status": run["status"]}


@command("annotate", "name a stored run and write a note on it (shown in the Experiments table and `runs`)", [
    arg("run_id", help="run id, or a unique prefix of it (see `runs`)"),
    arg("--name", default=None, help="a one-line name (empty clears it; default: keep the current one)"),
    arg("--note", default=None, help="a note (empty clears it; default: keep the current one)"),
], context=False)
def annotate_cmd(args, ctx) -> dict:
    from ..views.experiments import annotate_run, get_run
    from ..results.store import Store

    store = Store(args.db, create=False)
    run = get_run(store, args.run_id)
    run = annotate_run(store, run["id"], run["name"] if args.name is None else args.name,
                       run["note"] if args.note is None else args.note)
    return {"id": run["id"], "kind": run["kind"], "name": run["name"], "note": run["note"]}


@command("diff", "what differs between two stored runs' configurations", [
    arg("run_a", help="run id, or a unique prefix of it (see `runs`)"),
    arg("run_b", help="the other run"),
], context=False)
def diff_cmd(args, ctx) -> dict:
    from ..views.experiments import config_differences, get_run
    from ..results.store import Store

    store = Store(args.db, create=False)
    a, b = get_run(store, args.run_a)["id"], get_run(store, args.run_b)["id"]
    return {"a": a, "b": b, "differences": config_differences(store, a, b).to_dict(orient="records")}


def _prepare_demo_args() -> list:
    from ..training.evaluate import DEFAULT_LIMIT

    return [arg("--limit", type=positive_int, default=DEFAULT_LIMIT,
                help="test images of every evaluation (the sidebar's setting)"),
            arg("--ship", default=None, help="then write a compact copy of the store there (how data/demo/lotus-demo.db "
                                              "is made: python -m lotus_core prepare-demo --ship data/demo/lotus-demo.db)")]


@command("prepare-demo", "compute every result the pages and the Report show for a model (resumable, stored)",
         _prepare_demo_args)
def prepare_demo_cmd(args, ctx) -> dict:
    from pathlib import Path

    from ..views.demo import compact_copy, prepare_demo

    def show(p: dict) -> None:
        eta = "" if p["eta_s"] is None else f", about {p['eta_s'] // 60:.0f} min {p['eta_s'] % 60:.0f} s left"
        print(f"[{p['step']}/{p['of']}] {p['label']} ({p['elapsed_s']:.0f} s elapsed{eta})", file=progress_stream(),
              flush=True)

    out = prepare_demo(ctx, args.limit, on_progress=show)
    if args.ship:  # the store as it ships (data/demo/lotus-demo.db): compact, one file
        out["shipped"] = {"path": args.ship, **compact_copy(ctx.store.path, Path(args.ship))}
    return out
