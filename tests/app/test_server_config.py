"""The dashboard server's settings (.streamlit/config.toml) that its speed under several sessions depends on."""
import tomllib
from pathlib import Path

from streamlit import config

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_does_not_collect_garbage_after_every_script_run_nor_poll_source_files():
    """Streamlit's forced gc.collect(2) after each run held the GIL for about 0.3 s per rerun of every session
    (benchmarks/bench_sessions.py: four sessions' p95 2.61 s with it, 1.14 s without)."""
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["runner"]["postScriptGC"] is False and settings["server"]["fileWatcherType"] == "none"
    options = config.get_config_options()
    assert {"runner.postScriptGC", "server.fileWatcherType"} <= set(options)  # still options this Streamlit knows
    assert options["runner.postScriptGC"].default_val is True  # and the default it overrides
