"""The dashboard's speed in a real browser (Debian Chromium via Playwright), on the default model.

1. First page load of a fresh server, including the model load: from ``goto`` to the Overview's
   script finished and its chart drawn (target < 10 s on a 2-core CPU), with the results
   stored and, separately, on an empty store (the dense accuracy is then computed).
2. With results stored, switching to each page and seeing its charts: from the click in the
   sidebar to the script finished and a chart drawn (target < 1 s per page). A warm-up visit of
   every page stores what each page computes on its first visit.
3. Load check: ``--sessions`` browser sessions (4) cycling through the pages at once; median
   and p95 page time. Here the four Chromium instances draw on the server's own two cores.
4. The same load as users on their own machines would bring it: one Chromium session measured while
   ``--sessions`` - 1 other sessions use the server at the same time through Streamlit's websocket
   protocol (``bench_sessions.py``'s clients: the server does all of their work, no browser draws
   for them on this machine).

The stored results: a copy of ``--db`` (left untouched), or, without it, a fresh store filled
with small LTH, ISSP and lottery-training runs (about two minutes). Prints a markdown table.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_browser.py [--db data/lotus.db] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import launch_browser, nav_pages, open_page, start_server, wait_for_page  # noqa: E402


def populate(db: Path) -> None:
    """Small LTH, ISSP and lottery-training runs on the default model (what the Report and Masks pages read)."""
    from lotus_core.context import open_context
    from lotus_core.lottery.issp import ISSPConfig, run_issp
    from lotus_core.lottery.lth import LTHConfig, run_lth
    from lotus_core.patches.ticket_training import LotteryTrainConfig, run_lottery_train
    from lotus_core.results.runs import run_experiment

    ctx = open_context(db=db)
    run_experiment(ctx, "lth", LTHConfig(target=0.5, steps=10, limit=500), run_lth)
    run_experiment(ctx, "issp", ISSPConfig(target=0.5, per_round=0.2, denoisers=2, lookahead_steps=5,
                                           finetune_steps=10, limit=500), run_issp)
    run_experiment(ctx, "lottery-train", LotteryTrainConfig(epochs=2, fraction=0.02, limit=500), run_lottery_train)


def first_load(playwright, db: Path, log: Path) -> tuple[float, float]:
    """(server start to health, goto to the Overview drawn) in seconds, on a fresh server."""
    t0 = time.monotonic()
    server = start_server(db, log)
    started = time.monotonic() - t0
    try:
        browser = launch_browser(playwright)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        t0 = time.monotonic()
        page.goto(server.url)
        ready = wait_for_page(page)
        if ready is None:
            raise RuntimeError("the Overview drew no chart")
        loaded = ready - t0
        browser.close()
    finally:
        server.stop()
    return started, loaded


def cycle(url: str, rounds: int, times: dict[str, list[float]], errors: list[str], warm: bool = False) -> None:
    """One browser session: load the app, then visit every page ``rounds`` times, recording each switch."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(600_000)
        page.goto(url)
        wait_for_page(page, timeout_s=600)
        pages = nav_pages()
        for _ in range(rounds):
            for nav in pages[1:] + pages[:1]:  # start away from the Overview, end on it
                t0 = time.monotonic()
                ready = open_page(page, nav, timeout_s=600)
                if ready is None:
                    if not warm:
                        errors.append(f"{nav.title}: no chart")
                    continue
                times.setdefault(nav.title, []).append(ready - t0)
        browser.close()


def mixed_load(url: str, others: int, rounds: int, errors: list[str]) -> dict[str, list[float]]:
    """One Chromium session's page switches while ``others`` websocket sessions cycle through the pages too
    (they keep cycling until the browser is done, so the load lasts the whole measurement)."""
    import asyncio

    from benchmarks.bench_sessions import cycle as protocol_cycle

    done = threading.Event()

    async def load() -> None:
        async def one() -> None:
            while not done.is_set():
                await protocol_cycle(url, 1, {})
        await asyncio.gather(*(one() for _ in range(others)))

    loader = threading.Thread(target=lambda: asyncio.run(load()))
    loader.start()
    try:
        times: dict[str, list[float]] = {}
        cycle(url, rounds, times, errors)
    finally:
        done.set()
        loader.join()
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="a results store to copy (default: build one)")
    parser.add_argument("--rounds", type=int, default=3, help="visits of every page (single session)")
    parser.add_argument("--sessions", type=int, default=4, help="concurrent sessions of the load check")
    parser.add_argument("--load-rounds", type=int, default=2, help="cycles through the pages per concurrent session")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="lotus-bench-browser-"))
    db, empty = work / "lotus.db", work / "empty" / "lotus.db"
    empty.parent.mkdir()
    if args.db:
        for suffix in ("", "-wal", "-shm"):
            if Path(args.db + suffix).exists():
                shutil.copy(args.db + suffix, str(db) + suffix)
    else:
        print("building a results store with small LTH, ISSP and lottery-training runs...", file=sys.stderr)
        populate(db)
    log = ROOT / "artifacts" / "bench-browser-server.log"

    with sync_playwright() as playwright:
        start_cold, load_cold = first_load(playwright, db, log)  # the first start: imports and files not cached yet
        start_stored, load_stored = first_load(playwright, db, log)
        start_empty, load_empty = first_load(playwright, empty, log)

    server = start_server(db, log)
    try:
        errors: list[str] = []
        cycle(server.url, 1, {}, errors, warm=True)  # every page stores its first-visit results
        single: dict[str, list[float]] = {}
        cycle(server.url, args.rounds, single, errors)
        load: dict[str, list[float]] = {}
        threads = [threading.Thread(target=cycle, args=(server.url, args.load_rounds, load, errors))
                   for _ in range(args.sessions)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_wall = time.monotonic() - t0
        mixed = mixed_load(server.url, args.sessions - 1, args.rounds, errors)
    finally:
        server.stop()
    shutil.rmtree(work, ignore_errors=True)

    print(f"\nBrowser benchmark: Debian Chromium (headless) via Playwright, default model, "
          f"{args.rounds} visits per page (single session), {args.sessions} sessions x {args.load_rounds} cycles "
          "(load check). Times in seconds from the click (or goto) to the script finished and a chart drawn. "
          f"{os.cpu_count()} CPUs; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.\n")
    print("| measure | page | median (s) | p95 (s) | target |")
    print("|---|---|---:|---:|---|")
    print(f"| server start to /_stcore/health | - | {start_stored:.2f} | - | - |")
    for what, seconds in (("first start of the server, results stored", load_cold),
                          ("results stored (model load included)", load_stored),
                          ("empty store (dense accuracy computed)", load_empty)):
        print(f"| first page load, fresh server, {what} | Overview | {seconds:.2f} | - | < 10 s |")
    for title, values in single.items():
        print(f"| page switch, results stored, 1 session | {title} | {statistics.median(values):.2f} | "
              f"{p95(values):.2f} | < 1 s |")
    everything = [v for values in load.values() for v in values]
    for title, values in load.items():
        print(f"| page switch, {args.sessions} concurrent sessions | {title} | {statistics.median(values):.2f} | "
              f"{p95(values):.2f} | - |")
    print(f"| page switch, {args.sessions} concurrent sessions | all pages ({len(everything)} switches, "
          f"{load_wall:.0f} s wall) | {statistics.median(everything):.2f} | {p95(everything):.2f} | - |")
    measured = [v for values in mixed.values() for v in values]
    print(f"| page switch, 1 Chromium session + {args.sessions - 1} websocket sessions at once | all pages "
          f"({len(measured)} switches) | {statistics.median(measured):.2f} | {p95(measured):.2f} | p95 < 2 s |")
    if errors:
        print("\nproblems: " + "; ".join(sorted(set(errors))))


if __name__ == "__main__":
    main()
