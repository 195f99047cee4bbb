"""The host's CPU budget (core/device.py): computations take turns on the cores, interactive ones first."""
import threading
import time

import pytest

from lotus_core.core import device, paths


@pytest.fixture
def budget(tmp_path, monkeypatch):
    """An empty budget of one slot (a 2-core host at 2 threads)."""
    monkeypatch.setenv(paths.CPU_BUDGET_ENV, str(tmp_path))
    monkeypatch.delenv(device.BUDGET_ENV, raising=False)
    monkeypatch.delenv(device.PRIORITY_ENV, raising=False)
    monkeypatch.setattr(device, "host_cores", lambda: 2)
    monkeypatch.setenv(device.THREADS_ENV, "2")
    return tmp_path


def test_slots_are_the_cores_divided_by_the_threads_of_each(budget, monkeypatch):
    assert device.budget_slots() == 1
    monkeypatch.setenv(device.THREADS_ENV, "1")
    assert device.budget_slots() == 2
    monkeypatch.setattr(device, "host_cores", lambda: 1)
    monkeypatch.setenv(device.THREADS_ENV, "4")
    assert device.budget_slots() == 1  # never none


def _worker(events: list, name: str, hold_s: float, background: bool = False) -> threading.Thread:
    def work():
        with device.background_work() if background else _nothing():
            with device.cpu_slot():
                events.append(("start", name, time.monotonic()))
                time.sleep(hold_s)
                events.append(("end", name, time.monotonic()))
    return threading.Thread(target=work)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_two_computations_on_one_slot_take_turns(budget):
    events: list = []
    a, b = _worker(events, "a", 0.3), _worker(events, "b", 0.3)
    a.start()
    time.sleep(0.1)
    b.start()
    a.join(), b.join()
    assert [e[:2] for e in events] == [("start", "a"), ("end", "a"), ("start", "b"), ("end", "b")]


def test_background_work_waits_while_an_interactive_request_waits_for_the_slot(budget):
    events: list = []
    first = _worker(events, "background 1", 0.4, background=True)
    first.start()
    time.sleep(0.1)
    late_bg, page = _worker(events, "background 2", 0.1, background=True), _worker(events, "page", 0.1)
    late_bg.start()  # waiting before the page asks...
    time.sleep(0.1)
    page.start()
    for t in (first, late_bg, page):
        t.join()
    starts = [e[1] for e in events if e[0] == "start"]
    assert starts == ["background 1", "page", "background 2"]  # ...but the page is served first


def test_a_nested_slot_holds_nothing_more_and_off_disables_the_budget(budget, monkeypatch):
    with device.cpu_slot():
        with device.cpu_slot():  # one slot only: a nested request would otherwise wait for itself
            pass
    monkeypatch.setenv(device.BUDGET_ENV, "off")
    events: list = []
    a, b = _worker(events, "a", 0.3), _worker(events, "b", 0.3)
    a.start(), b.start()
    a.join(), b.join()
    assert [e[:2] for e in events][:2] == [("start", "a"), ("start", "b")]


def test_the_slot_of_a_killed_process_is_free_at_once(budget):
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; from lotus_core.core import device\n"
                               "with device.cpu_slot():\n    print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True,
                              env={**__import__("os").environ, "LOTUS_THREADS": "2"})
    try:
        assert holder.stdout.readline().strip() == "held"
        holder.kill()
        holder.wait()
        t0 = time.monotonic()
        with device.cpu_slot():
            assert time.monotonic() - t0 < 1
    finally:
        holder.kill()
