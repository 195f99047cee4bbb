"""Exposure: the dashboard answers localhost by default, reads only configured folders when served
on a network, accepts uploads no larger than the upload paths do, and the image runs as non-root."""
from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from lotus_core.core.errors import LotusError
from lotus_core.core.paths import DATA_DIR, check_served_path, is_loopback, serve_roots
from lotus_core.data import MAX_IMAGE_BYTES
from lotus_core.patches.upload import MAX_UPLOAD_BYTES
from lotus_core.pruning.mask import MAX_MASK_BYTES

ROOT = Path(__file__).resolve().parent.parent


def test_streamlit_config_binds_loopback_and_caps_uploads_at_what_the_upload_paths_accept():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "127.0.0.1"
    assert server["maxUploadSize"] * 2**20 == MAX_UPLOAD_BYTES == MAX_IMAGE_BYTES == MAX_MASK_BYTES == 10 * 2**20


def test_make_run_binds_loopback_unless_address_is_given():
    def dry_run(*extra: str) -> str:
        return subprocess.run(["make", "-n", "-W", "requirements.txt", "run", *extra], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout

    assert "--server.address 127.0.0.1" in dry_run()
    assert "--server.address 0.0.0.0" in dry_run("ADDRESS=0.0.0.0")


def test_docker_image_runs_as_a_non_root_user_with_the_store_on_a_volume():
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users == ["lotus"]
    assert 'VOLUME ["/var/lib/lotus"]' in lines
    assert any("LOTUS_DB=/var/lib/lotus/lotus.db" in ln for ln in lines)
    assert any("chown lotus:lotus /var/lib/lotus" in ln for ln in lines)
    assert any("LOTUS_SERVE_ROOTS=/opt/lotus/data:/var/lib/lotus" in ln for ln in lines)


@pytest.mark.parametrize("address, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                               ("0.0.0.0", False), ("192.168.1.5", False), (None, False)])
def test_loopback_addresses(address, loopback):
    assert is_loopback(address) is loopback


def test_served_paths_stay_inside_the_configured_folders(tmp_path, monkeypatch):
    allowed = tmp_path / "models"
    allowed.mkdir()
    (allowed / "ok.safetensors").write_bytes(b"x")
    (allowed / "escape.safetensors").symlink_to("/etc/passwd")
    monkeypatch.setenv("LOTUS_SERVE_ROOTS", str(allowed))
    roots = serve_roots()
    assert roots == [allowed.resolve()]
    for name in ("default", "vit_small_patch16_224.augreg_in21k_ft_in1k", "fashion-mnist", "cifar10", None, ""):
        check_served_path(name, "model", roots)  # registry names are not paths
    check_served_path(str(allowed / "ok.safetensors"), "model", roots)
    check_served_path(f"imagefolder:{allowed}", "dataset", roots)
    refused = ["/etc/passwd", str(allowed / "escape.safetensors"), str(allowed / ".." / "x.pt"), "~/x.pt",
               "imagefolder:/tmp", "./data/../../etc", str(tmp_path)]
    for value in refused:
        with pytest.raises(LotusError, match="is outside the folders this dashboard may read"):
            check_served_path(value, "model", roots)
    monkeypatch.delenv("LOTUS_SERVE_ROOTS")
    assert serve_roots() == [DATA_DIR.resolve()]


def test_the_sidebar_context_refuses_paths_outside_the_folders_when_served_on_a_network(monkeypatch):
    from app import state

    monkeypatch.setattr(state.st, "get_option", lambda name: "0.0.0.0" if name == "server.address" else None)
    state.load_context.clear()
    with pytest.raises(LotusError, match="model '/etc/passwd' is outside the folders"):
        state.load_context("/etc/passwd", "fashion-mnist")
    with pytest.raises(LotusError, match="weights '/tmp/w.pth' is outside the folders"):
        state.load_context("vit_tiny_patch16_224", "fashion-mnist", "/tmp/w.pth")
