"""Drive the dashboard in a real browser: ``streamlit run`` on a free local port and Debian's
Chromium through Playwright (a Playwright-downloaded browser is not available here). Shared by
the browser tests (tests/e2e) and the browser benchmark (benchmarks/bench_browser.py)."""
from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
APP_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
EXCEPTION = '[data-testid="stException"]'
PLOT = ".js-plotly-plot .main-svg"


@dataclass(frozen=True)
class NavPage:
    title: str  # the label in the sidebar navigation
    path: str  # URL path Streamlit derives from the file name ("" for the default page)


def nav_pages() -> list[NavPage]:
    """The navigation of app/streamlit_app.py, in order: pages whose file exists (read from its PAGES list)."""
    tree = ast.parse((ROOT / "app" / "streamlit_app.py").read_text())
    pages = next(ast.literal_eval(n.value) for n in tree.body
                 if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "PAGES")
    return [NavPage(title, "" if f == "overview.py" else Path(f).stem) for f, title, _ in pages
            if (ROOT / "pages" / f).exists()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    db: Path

    def stop(self) -> None:
        """Stop the server and everything it started: its process group and the background-job worker
        (which runs in a session of its own so that jobs outlive a dashboard restart)."""
        from lotus_core.jobs import worker_pid  # a live worker, verified by its heartbeat in the store

        pid = worker_pid(self.db)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(20)


def die_with_parent() -> None:
    """Run in the server's process before it starts: the kernel sends it SIGTERM when the test process dies,
    even by SIGKILL (a CI time limit), so no dashboard outlives the tests; its worker (``--exit-with-parent``)
    follows the dashboard. Linux's PR_SET_PDEATHSIG; elsewhere nothing."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def start_server(db: Path, log: Path, timeout_s: float = 180) -> Server:
    """``streamlit run app/streamlit_app.py`` on a free port with ``LOTUS_DB=db``, once /_stcore/health answers."""
    port = free_port()
    env = {**os.environ, "LOTUS_DB": str(db), "LOTUS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.pop("LOTUS_JOBS_IMMEDIATE", None)
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "wb")
    process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.port",
                                str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                                "--browser.gatherUsageStats", "false"],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               start_new_session=True, preexec_fn=die_with_parent)
    server = Server(f"http://127.0.0.1:{port}", process, log, db)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"streamlit did not answer /_stcore/health within {timeout_s:.0f} s; see {log}")


def launch_browser(playwright):
    """Headless Debian Chromium."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def wait_for_page(page, timeout_s: float = 300, chart_s: float = 30, settle_s: float = 0.3) -> float | None:
    """Wait until the page's script has finished and a chart is drawn.

    Returns the ``time.monotonic()`` at which both first held (confirmed by the script staying
    finished for ``settle_s``), or None when no chart appears within ``chart_s`` of the script
    finishing. Polls every 50 ms.
    """
    deadline = time.monotonic() + timeout_s
    idle_since = ready = None
    while True:
        now = time.monotonic()
        if page.locator(APP_IDLE).count():
            idle_since = idle_since or now
            if ready is None and page.locator(PLOT).count():
                ready = now
            if ready is not None and now - ready >= settle_s:
                return ready
            if ready is None and now - idle_since >= chart_s:
                return None
        else:
            idle_since = ready = None
        if now > deadline:
            raise TimeoutError(f"the script of {page.url} did not finish within {timeout_s:.0f} s")
        page.wait_for_timeout(50)


def current_path(page) -> str:
    """The page's URL path without slashes ("" on the default page)."""
    return urlparse(page.url).path.strip("/")


def heading(page) -> str:
    h1 = page.locator("h1")
    return h1.first.inner_text() if h1.count() else ""


def open_page(page, nav: NavPage, timeout_s: float = 300) -> float | None:
    """Click ``nav`` in the sidebar and wait as :func:`wait_for_page` (whose result it returns)."""
    if current_path(page) == nav.path:
        return wait_for_page(page, timeout_s)
    before = heading(page)
    page.locator('[data-testid="stSidebarNavLink"]', has_text=nav.title).first.click()
    page.wait_for_url(lambda url: urlparse(url).path.strip("/") == nav.path, timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while heading(page) == before and time.monotonic() < deadline:  # the new page's script has started
        page.wait_for_timeout(50)
    return wait_for_page(page, timeout_s)


def screenshot(page, path: Path, max_height: int = 9000) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main container, not the document, so
    the viewport is stretched to the content's height for the shot and restored afterwards."""
    size = page.viewport_size
    height = page.evaluate("""() => Math.max(document.body.scrollHeight, ...Array.from(document.querySelectorAll(
        '[data-testid="stMain"], [data-testid="stAppViewContainer"], [data-testid="stMainBlockContainer"]'))
        .map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": size["width"], "height": min(max_height, max(size["height"], int(height) + 40))})
    page.wait_for_timeout(800)  # charts re-layout
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
