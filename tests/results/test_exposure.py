"""Exposure: the dashboard answers localhost by default, reads only configured folders when served
on a network, accepts uploads no larger than the upload paths do, and the image runs as non-root."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lotus_core.core.errors import LotusError
from lotus_core.core.paths import DATA_DIR, check_served_path, is_loopback, serve_roots
from lotus_core.data.folders import MAX_IMAGE_BYTES
from lotus_core.patches.upload import MAX_UPLOAD_BYTES
from lotus_core.core.mask import MAX_MASK_BYTES

ROOT = Path(__file__).resolve().parents[2]


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


def _png(path: Path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)


def test_served_dataset_folders_refuse_class_folders_and_images_that_link_outside(tmp_path, monkeypatch):
    from lotus_core.data import load_dataset

    served, outside = tmp_path / "data", tmp_path / "private"
    folder = served / "set" / "test"  # the split layout: test/<class>/<image>, read as given
    for c in ("a", "b"):
        _png(folder / c / "0.png", 10)
    _png(outside / "secret" / "0.png", 200)
    _png(outside / "one.png", 201)

    def count() -> int:
        return len(load_dataset(f"imagefolder:{served / 'set'}", "test").labels)

    monkeypatch.setenv("LOTUS_SERVE_ROOTS", str(served))
    assert count() == 2  # plain files: read
    (folder / "c").symlink_to(outside / "secret", target_is_directory=True)  # a linked class folder
    with pytest.raises(LotusError, match=r"image .*/test/c/0.png resolves to .*/private/secret/0.png, outside the "
                                         r"folders this dashboard may read"):
        count()
    (folder / "c").unlink()
    (folder / "a" / "1.png").symlink_to(outside / "one.png")  # a linked image
    with pytest.raises(LotusError, match=r"image .*/test/a/1.png resolves to .*/private/one.png, outside"):
        count()
    (folder / "a" / "1.png").unlink()
    (folder / "a" / "2.png").symlink_to(folder / "b" / "0.png")  # a link that stays inside is fine
    count()  # no error
    monkeypatch.delenv("LOTUS_SERVE_ROOTS")  # not serving: the user's own links are theirs to follow
    (folder / "c").symlink_to(outside / "secret", target_is_directory=True)
    assert count() == 3


def test_make_run_on_a_network_declares_the_served_folders():
    def dry_run(*extra: str) -> str:
        return subprocess.run(["make", "-n", "-W", "requirements.txt", "run", *extra], cwd=ROOT, capture_output=True,
                              text=True, check=True, env={k: v for k, v in os.environ.items()
                                                          if k != "LOTUS_SERVE_ROOTS"}).stdout

    assert "LOTUS_SERVE_ROOTS" not in dry_run()
    assert f'LOTUS_SERVE_ROOTS="${{LOTUS_SERVE_ROOTS:-{ROOT}/data}}"' in dry_run("ADDRESS=0.0.0.0")


LISTENERS = """
import json, os, sys
sys.path.insert(0, {root!r})
import ray
from lotus_core.core.executor import ExecutorConfig
from lotus_core.results.executors.ray_executor import connect

connect(ExecutorConfig(kind="ray"))  # what `sweep --executor ray` does without --ray-address
assert ray.get(ray.remote(lambda: 1).remote()) == 1  # one tiny unit: a worker process exists
children = {{}}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{{pid}}/stat").read()
    except OSError:
        continue
    children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(pid))
todo, sockets = [os.getpid()], {{}}
while todo:  # this process and every process it started (GCS, raylet, agents, workers)
    pid = todo.pop()
    todo += children.get(pid, [])
    try:
        fds = os.listdir(f"/proc/{{pid}}/fd")
        name = open(f"/proc/{{pid}}/comm").read().strip()
    except OSError:
        continue
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{{pid}}/fd/{{fd}}")
        except OSError:
            continue
        if link.startswith("socket:["):
            sockets[link[8:-1]] = name
listening = []
for table in ("tcp", "tcp6"):
    for line in open(f"/proc/net/{{table}}").read().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in sockets:  # state 0A: LISTEN
            listening.append([sockets[fields[9]], table, fields[1].split(":")[0]])
ray.shutdown()
print(json.dumps(listening))
"""


def _address_is_loopback(table: str, hex_address: str) -> bool:
    """An address of /proc/net/tcp (4 bytes, little-endian) or tcp6 (4 little-endian words) is loopback."""
    raw = bytes.fromhex(hex_address)
    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def test_proc_addresses_decode_to_the_right_interfaces():
    assert _address_is_loopback("tcp", "0100007F") and not _address_is_loopback("tcp", "00000000")
    assert not _address_is_loopback("tcp", "020200C0")  # 192.0.2.2
    assert _address_is_loopback("tcp6", "0000000000000000FFFF00000100007F")  # ::ffff:127.0.0.1
    assert _address_is_loopback("tcp6", "00000000000000000000000001000000")  # ::1
    assert not _address_is_loopback("tcp6", "00000000000000000000000000000000")  # ::


def test_a_local_ray_cluster_listens_on_loopback_only():
    """Listing Linux's /proc (as CI runs): every listening socket of the driver and the processes it started."""
    out = subprocess.run([sys.executable, "-c", LISTENERS.format(root=str(ROOT))], capture_output=True, text=True,
                         timeout=180, env={**os.environ, "RAY_ADDRESS": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    listening = json.loads(out.stdout.strip().splitlines()[-1])
    names = {name for name, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names and len(listening) >= 4  # the cluster's servers were found
    assert [entry for entry in listening if not _address_is_loopback(entry[1], entry[2])] == []


LINK = "[Session expired - click to sign in again](http://127.0.0.1:9/p)"
IMAGE = "![x](http://127.0.0.1:9/p.png)"
UNESCAPED_LINK = re.compile(r"(?<!\\)\]\(")  # CommonMark links and images need a literal "](" : none may survive


def test_literal_text_escapes_every_markdown_construct_and_control_character():
    from app.ui import literal

    wj = "\u2060"  # a word joiner where GFM would autolink (after escapes are resolved)
    assert literal(IMAGE) == r"\!\[x\]\(http" + wj + r"://127.0.0.1:9/p.png\)"
    assert literal("**a** `b` $x$ :red[c] <img src=x> #h 1. WWW.x.io a@b.c --weights a_b.pt & ~x~ |t|") == (
        r"\*\*a\*\* \`b\` \$x\$ :red\[c\] \<img src=x\> \#h 1. WWW" + wj + ".x.io a" + wj + "@b.c --weights "
        r"a\_b.pt \& \~x\~ \|t\|")
    assert literal("- item\n  1. first\n+ x\n===") == "\\- item\n  1\\. first\n\\+ x\n\\==="  # no list, no heading
    assert literal("a\x1b[2Jb\u2028c\nd") == r"a\\u001b\[2Jb\\u2028c" + "\nd"


@pytest.mark.parametrize("page", sorted(p.stem for p in (ROOT / "pages").glob("*.py")))
def test_a_link_or_image_in_a_url_parameter_shows_as_literal_text_on_every_page(page, monkeypatch):
    from app.ui import literal
    from tests.pages.helpers import ENTRY
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=120)
    at.query_params.update({"model": LINK, "dataset": IMAGE})
    at.switch_page(str(ROOT / "pages" / f"{page}.py")).run()  # the link opens this page
    assert not at.exception
    shown = [e.value for kind in ("error", "warning", "info", "markdown", "caption", "success")
             for e in getattr(at, kind)]
    assert any(literal(IMAGE) in text for text in at.error.values)  # the dataset typed, quoted as typed
    assert [text for text in shown if UNESCAPED_LINK.search(str(text))] == []


def test_a_model_path_with_a_link_is_quoted_literally_in_the_error_box():
    from app.ui import literal
    from tests.pages.helpers import ENTRY
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(ENTRY, default_timeout=120)
    at.query_params.update({"model": LINK + "/x.safetensors"})
    at.run()
    assert not at.exception
    assert any(text.startswith(literal("checkpoint " + LINK.split("(")[0] + "(http:/")) for text in at.error.values)
    assert [text for text in at.error.values if UNESCAPED_LINK.search(text)] == []


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from tests.commands.test_core import run_cli

    return run_cli(capsys, *args)


@pytest.mark.parametrize("bad", ["\x1b[2J\x1b[31mPWNED\x1b]0;title\x07", "a\rb", "a\x0bc", "a\x0cd", "a\u2028e",
                                 "a\u2029e", "a\x7fb", "a\x85b", "a\x9bb", "a\tb", "two\nlines", "a\x00b"])
def test_run_names_refuse_control_characters_with_one_line(capsys, tmp_path, bad):
    from lotus_core.core.text import CONTROL
    from lotus_core.results.store import Store

    db = str(tmp_path / "r.db")
    rid = Store(db).start_run("evaluate", {"limit": 1})
    code, out, err = _cli(capsys, "annotate", rid, "--name", bad, "--db", db)
    assert code != 0 and out == "" and err.count("\n") == 1
    assert err.startswith("lotus annotate: error: a run name contains control characters (U+")
    assert not CONTROL.search(err[:-1]) and Store(db).get_run(rid)["name"] is None  # nothing stored
    if bad != "two\nlines":  # a note may have several lines, nothing else
        code, _, err = _cli(capsys, "annotate", rid, "--note", bad, "--db", db)
        assert code != 0 and err.startswith("lotus annotate: error: a run note contains control characters")
    code, out, _ = _cli(capsys, "annotate", rid, "--name", "ok", "--note", "two\nlines", "--db", db)
    assert code == 0 and Store(db).get_run(rid)["note"] == "two\nlines"


def test_runs_and_annotate_never_echo_control_characters_stored_before_names_were_checked(capsys, tmp_path):
    from lotus_core.core.text import CONTROL
    from lotus_core.results.store import Store

    db = str(tmp_path / "old.db")
    store = Store(db)
    rid = store.start_run("evaluate", {"limit": 1})
    store.annotate(rid, "\x1b[2J\x1b]0;title\x07PWNED\x7f", "a\x9bb\u2028c")  # written straight to the store
    for args in (("runs",), ("annotate", rid, "--note", "fine"), ("runs", "--json")):
        code, out, err = _cli(capsys, *args, "--db", db)
        assert code == 0, err
        assert [c for c in out.replace("\n", "") if CONTROL.match(c)] == []  # line ends only
        assert "\\u001b[2J\\u001b]0;title\\u0007PWNED" in out  # shown, escaped
