"""The dashboard server under several sessions at once, measured at the server's websocket (no browser).

``bench_browser.py`` measures page switches in headless Chromium; with four Chromium instances on the
same two cores as the server, most of its four-session time is the browsers drawing plotly, not the
server. This benchmark speaks Streamlit's own protocol instead: each session is a websocket client that
asks the server to run a page (a ``rerun_script`` BackMsg with the page's script hash, as the browser
sends on a sidebar click) and waits for the server's ``script_finished`` message, having received every
delta of the page on the way. A page switch here is therefore the server's whole share of it: the page
script, the figures serialised, and the messages sent, with ``--sessions`` sessions doing the same.

1. A warm-up session visits every page once (each page stores what a first visit computes).
2. One session cycles through the pages ``--rounds`` times: median and p95 per page.
3. ``--sessions`` sessions (4) cycle through the pages ``--load-rounds`` times at once: median and p95.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_sessions.py [--db data/demo/lotus-demo.db]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import start_server  # noqa: E402


class Session:
    """One dashboard session over the websocket, as a browser tab holds it."""

    def __init__(self, ws):
        self.ws = ws
        self.pages: list[tuple[str, str]] = []  # (title, page script hash), in the navigation's order

    async def run_page(self, page_hash: str = "") -> float:
        """Ask the server to run a page (``""``: the default one); seconds until its script finished."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = page_hash
        t0 = time.monotonic()
        await self.ws.send(msg.SerializeToString())
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(await self.ws.recv())
            kind = reply.WhichOneof("type")
            if kind == "navigation":
                self.pages = [(p.page_name, p.page_script_hash) for p in reply.navigation.app_pages]
            elif kind == "script_finished":
                return time.monotonic() - t0


async def cycle(url: str, rounds: int, times: dict[str, list[float]]) -> None:
    """One session: open the app, then visit every page ``rounds`` times, recording each page's time."""
    import websockets

    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                  max_size=None, open_timeout=120, ping_timeout=None) as ws:
        session = Session(ws)
        await session.run_page()
        for _ in range(rounds):
            for title, page_hash in session.pages[1:] + session.pages[:1]:  # start away from the Overview
                times.setdefault(title, []).append(await session.run_page(page_hash))


async def sessions(url: str, count: int, rounds: int) -> tuple[dict[str, list[float]], float]:
    times: dict[str, list[float]] = {}
    t0 = time.monotonic()
    await asyncio.gather(*(cycle(url, rounds, times) for _ in range(count)))
    return times, time.monotonic() - t0


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(ROOT / "data" / "demo" / "lotus-demo.db"),
                        help="a results store to copy (default: the shipped demo store)")
    parser.add_argument("--rounds", type=int, default=3, help="visits of every page (single session)")
    parser.add_argument("--sessions", type=int, default=4, help="concurrent sessions of the load check")
    parser.add_argument("--load-rounds", type=int, default=3, help="cycles through the pages per concurrent session")
    args = parser.parse_args()
    if not Path(args.db).is_file():
        raise SystemExit(f"{args.db}: no such results store; give one with --db")

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="lotus-bench-sessions-"))
    db = work / "lotus.db"
    shutil.copy(args.db, db)
    server = start_server(db, ROOT / "artifacts" / "bench-sessions-server.log")
    try:
        warm, warm_wall = asyncio.run(sessions(server.url, 1, 1))
        single, _ = asyncio.run(sessions(server.url, 1, args.rounds))
        load, load_wall = asyncio.run(sessions(server.url, args.sessions, args.load_rounds))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nServer-side page switches over Streamlit's websocket (no browser), default model, store {args.db}: "
          f"from the request to run a page to its script_finished message, every delta received. "
          f"{os.cpu_count()} CPUs; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.\n")
    print("| measure | page | median (s) | p95 (s) | target |")
    print("|---|---|---:|---:|---|")
    for title, values in warm.items():
        print(f"| first visit (warm-up), 1 session | {title} | {values[0]:.2f} | - | - |")
    for title, values in single.items():
        print(f"| page switch, 1 session | {title} | {statistics.median(values):.2f} | {p95(values):.2f} | < 1 s |")
    for title, values in load.items():
        print(f"| page switch, {args.sessions} concurrent sessions | {title} | {statistics.median(values):.2f} | "
              f"{p95(values):.2f} | - |")
    everything = [v for values in load.values() for v in values]
    print(f"| page switch, {args.sessions} concurrent sessions | all pages ({len(everything)} switches, "
          f"{load_wall:.0f} s wall) | {statistics.median(everything):.2f} | {p95(everything):.2f} | p95 < 2 s |")


if __name__ == "__main__":
    main()
