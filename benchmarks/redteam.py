"""Red-team pass: 100+ bad inputs beyond those of the 2026-12-06 report, each run through the CLI in-process.

Every case names the command line and what must happen: ``refuse`` (exit 2, exactly one stderr line, no
traceback, nothing on stdout) or ``accept`` (exit 0; an optional check of the result, e.g. that a 16-bit PNG
was scaled and the conversion said once). A case that raises out of ``main`` is a traceback; a refusal that
exits 0 is a silent acceptance; anything else (several lines, another exit code) is messy. Classes tried:
seeds and numbers, output and store paths (too long, ``~nouser``, a file in the way, read-only, /dev/full),
SQLite files of other schemas and versions, checkpoint metadata (lotus_head / lotus_arch malformed, nested,
of the wrong type; also in --weights), non-ViT architectures, weight dtypes and values, image folders
(dangling links, loops, one class, exotic pixel modes), ignored flags and absurd data fractions.

    LOTUS_NO_SYSTEM_DATA=1 LOTUS_THREADS=1 PYTHONPATH=. python benchmarks/redteam.py [--json] [-k SUBSTRING]

Bounded and local: fixtures in a temporary folder, no network, a few seconds per case on two CPU cores.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("LOTUS_NO_SYSTEM_DATA", "1")
os.environ.setdefault("LOTUS_OFFLINE", "1")
os.environ.setdefault("LOTUS_THREADS", "1")


@dataclass
class Case:
    name: str
    argv: list[str]
    expect: str = "refuse"  # refuse | accept
    message: str = ""  # a piece of the refusal line (refuse) or of stderr (accept)
    check: Callable[[str, str], str | None] | None = None  # (stdout, stderr) -> why it is wrong, or None


def run_case(case: Case) -> tuple[str, str]:
    """(outcome, detail): outcome is clean | traceback | silent | messy."""
    from lotus_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(case.argv))
            except SystemExit as exc:
                code = exc.code
    except BaseException as exc:  # noqa: BLE001 - what this pass counts
        return "traceback", f"{type(exc).__name__}: {str(exc)[:200]} @ {traceback.format_tb(exc.__traceback__)[-1].strip()[:200]}"
    o, e = out.getvalue(), err.getvalue()
    if case.expect == "refuse":
        if code == 0:
            return "silent", f"exit 0: {e.strip()[-200:]}"
        if code != 2 or o or e.count("\n") != 1 or "Traceback" in e or case.message not in e:
            return "messy", f"exit {code}, stderr {e.strip()[-300:]!r}"
        return "clean", e.strip()[:200]
    if code != 0:
        return "messy", f"expected to run, exit {code}: {e.strip()[-300:]}"
    why = case.check(o, e) if case.check else None
    if why is None and case.message and case.message not in e:
        why = f"stderr lacks {case.message!r}: {e.strip()[-200:]!r}"
    return ("silent", why) if why else ("clean", e.strip()[:200])


# --------------------------------------------------------------------------- fixtures
def fixtures(tmp: Path) -> dict[str, Path]:
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from lotus_core.models.checkpoint import save_checkpoint
    from tests.conftest import TINY_ARCH, make_tiny_vit

    f: dict[str, Path] = {}
    model = make_tiny_vit(0)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    arch = json.dumps(TINY_ARCH)
    head = {"state": "trained", "num_classes": TINY_ARCH["num_classes"], "dataset": "fashion-mnist",
            "classes": None, "seed": None}

    def ckpt(name: str, tensors: dict | None = None, **meta: str) -> None:
        path = tmp / f"{name}.safetensors"
        save_file(tensors if tensors is not None else state, str(path), metadata={"lotus_arch": arch, **meta})
        f[name] = path

    for name, value in {
        "h_null": "null", "h_str": '"trained"', "h_num": "42", "h_state": json.dumps({**head, "state": "weird"}),
        "h_neg": json.dumps({**head, "num_classes": -1}), "h_count": json.dumps({**head, "num_classes": 7}),
        "h_strcount": json.dumps({**head, "num_classes": "10"}), "h_bool": json.dumps({**head, "num_classes": True}),
        "h_classes": json.dumps({**head, "classes": ["a"]}),
        "h_intclasses": json.dumps({**head, "classes": list(range(TINY_ARCH["num_classes"]))}),
        "h_seed": json.dumps({**head, "state": "new", "seed": -1}),
        "h_bigseed": json.dumps({**head, "state": "new", "seed": 2 ** 70}),
        "h_deep": '{"state": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "h_deepobj": '{"a":' * 50_000 + "1" + "}" * 50_000,
        "h_trunc": json.dumps(head)[:-5], "h_dataset": json.dumps({**head, "dataset": {"x": 1}}),
        "h_missing": json.dumps({"num_classes": 10}), "h_nan": json.dumps({**head, "num_classes": float("nan")}),
    }.items():
        ckpt(name, lotus_head=value)
    for name, value in {"a_null": "null", "a_str": '"vit_tiny_patch16_224"', "a_deep": "[" * 200_000 + "]" * 200_000,
                        "a_inf": json.dumps({**TINY_ARCH, "mlp_ratio": float("inf")}),
                        "a_name_int": json.dumps({**TINY_ARCH, "model_name": 123}),
                        "a_empty": "", "a_utf": "\udcff".encode("utf-8", "surrogateescape").decode("latin-1")}.items():
        path = tmp / f"{name}.safetensors"
        save_file(state, str(path), metadata={"lotus_arch": value})
        f[name] = path
    import timm

    for name in ("convnext_atto", "test_resnet"):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            cnn = timm.create_model(name, pretrained=False, num_classes=10)
        cnn.lotus_arch = {"model_name": name, "num_classes": 10}
        f[name] = save_checkpoint(cnn, tmp / f"{name}.safetensors")
    # dtypes and values
    for dt in (torch.int16, torch.int32, torch.float8_e4m3fn, torch.complex64, torch.uint8):
        tag = str(dt).replace("torch.", "")
        ckpt(f"d_{tag}", {k: (v * 10).to(dt) if dt != torch.complex64 else v.to(dt) for k, v in state.items()})
    ckpt("d_float16", {k: v.half() for k, v in state.items()})
    ckpt("d_bf16", {k: v.bfloat16() for k, v in state.items()})
    bad = dict(state)
    bad["head.bias"] = torch.full_like(state["head.bias"], float("-inf"))
    ckpt("v_neginf", bad)
    bad = dict(state)
    bad["blocks.0.attn.qkv.weight"] = state["blocks.0.attn.qkv.weight"].clone()
    bad["blocks.0.attn.qkv.weight"][0, 0] = float("nan")
    ckpt("v_onenan", bad)
    from lotus_core.models.loading import DEFAULT_WEIGHTS
    from lotus_core.models.checkpoint import read_checkpoint

    default_state = read_checkpoint(DEFAULT_WEIGHTS)[0]  # a bare .pt is read as the default architecture
    torch.save({k: v.to(torch.bool) for k, v in default_state.items()}, tmp / "bool.pt")
    f["bool_pt"] = tmp / "bool.pt"
    torch.save({k: v.double() for k, v in default_state.items()}, tmp / "f64.pt")
    f["f64_pt"] = tmp / "f64.pt"
    # --weights for a timm model name: the tiny arch as a vit_tiny checkpoint with bad headers
    for name, meta in {"w_deep": {"lotus_arch": "{" * 100_000}, "w_null": {"lotus_arch": "null"},
                       "w_head": {"lotus_arch": arch, "lotus_head": "[1, 2]"},
                       "w_extra": {"lotus_arch": json.dumps({**TINY_ARCH, "pretrained_cfg": {"file": "/etc/x"}})}}.items():
        path = tmp / f"{name}.safetensors"
        save_file(state, str(path), metadata=meta)
        f[name] = path
    vit_tiny = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    vt = {k: v.contiguous() for k, v in vit_tiny.state_dict().items()}
    save_file({k: v.to(torch.int8) for k, v in vt.items()}, str(tmp / "w_int8.safetensors"))
    f["w_int8"] = tmp / "w_int8.safetensors"
    vt_nan = dict(vt)
    vt_nan["norm.weight"] = torch.full_like(vt["norm.weight"], float("nan"))
    save_file(vt_nan, str(tmp / "w_nan.safetensors"))
    f["w_nan"] = tmp / "w_nan.safetensors"
    # stores
    def sqlite_file(name: str, sql: str, version: int = 0) -> None:
        path = tmp / f"{name}.db"
        con = sqlite3.connect(path)
        con.executescript(sql)
        con.execute(f"PRAGMA user_version={version}")
        con.commit()
        con.close()
        f[name] = path

    sqlite_file("s_other", "CREATE TABLE notes(id INTEGER, body TEXT);")
    sqlite_file("s_runs_other", "CREATE TABLE runs(id TEXT, name TEXT);")
    from lotus_core.results.schema import SCHEMA
    from lotus_core.results.store import Store

    sqlite_file("s_v5", SCHEMA, 5)
    sqlite_file("s_v2", SCHEMA, 2)
    sqlite_file("s_table", SCHEMA + "CREATE TABLE lineage(a TEXT);")
    sqlite_file("s_col", SCHEMA + "ALTER TABLE runs ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;")
    (tmp / "zero.db").write_bytes(b"")
    f["zero_db"] = tmp / "zero.db"
    (tmp / "text.db").write_text("id,kind\n1,evaluate\n")
    f["text_db"] = tmp / "text.db"
    (tmp / "rand.db").write_bytes(os.urandom(100_000))
    f["rand_db"] = tmp / "rand.db"
    good = Store(tmp / "good.db")
    f["good_db"] = good.path
    f["run_id"] = Path(good.start_run("evaluate", {"x": 1}, status="done"))
    # paths
    (tmp / "afile").write_text("x")
    f["afile"] = tmp / "afile"
    (tmp / "blocked").mkdir()
    (tmp / "blocked" / "models").write_text("a file where fine-tuned checkpoints go")
    f["blocked_db"] = tmp / "blocked" / "r.db"
    (tmp / "adir").mkdir()
    f["adir"] = tmp / "adir"
    ro = tmp / "ro"  # a read-only mount (root may write through file modes, not through a read-only mount)
    ro.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(ro)], capture_output=True)
    Store(ro / "ro.db").start_run("evaluate", {"x": 1}, status="done")
    if mount.returncode == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    else:  # not allowed to mount: file modes (a root user writes through them, so these cases then fail)
        for p in ro.iterdir():
            p.chmod(0o444)
        ro.chmod(0o555)
    f["ro"] = ro
    # image folders
    def folder(name: str, classes: list[str], mode: str = "L", value: object = 128, ext: str = "png") -> Path:
        root = tmp / name
        for c in classes:
            (root / c).mkdir(parents=True, exist_ok=True)
            for i in range(3):
                Image.new(mode, (28, 28), value).save(root / c / f"{i}.{ext}")
        f[name] = root
        return root

    folder("one", ["only"])
    split = tmp / "split1"
    folder("split1/train", ["a"]), folder("split1/test", ["a"])
    f["split1"] = split
    dangling = folder("dangling_dir", ["a", "b"])
    (dangling / "c").symlink_to(tmp / "no-such-folder")
    (dangling / "a" / "x.png").symlink_to(tmp / "no-such.png")
    f["dangling_dir"] = dangling
    fifo = folder("fifo", ["a", "b"])
    os.mkfifo(fifo / "a" / "pipe.png")
    devzero = folder("devzero", ["a", "b"])
    (devzero / "b" / "zero.png").symlink_to("/dev/zero")
    loop = folder("loop", ["a", "b"])
    (loop / "a" / "again").symlink_to(loop)  # a loop back to the root: each real file once
    f["loop"] = loop
    wide16 = folder("gray16", ["a", "b"], "I;16", 65535)
    f["gray16"] = wide16
    ftif = folder("float_big", ["a", "b"], "F", 3.5, "tiff")
    f["float_big"] = ftif
    folder("float_ok", ["a", "b"], "F", 0.5, "tiff")
    folder("rgba", ["a", "b"], "RGBA", (0, 0, 0, 0))
    folder("la", ["a", "b"], "LA", (0, 0))
    folder("bits", ["a", "b"], "1", 1)
    folder("cmyk", ["a", "b"], "CMYK", (0, 0, 0, 0), "jpg")
    badidx = tmp / "badidx"
    badidx.mkdir()
    (badidx / "t10k-images-idx3-ubyte").write_bytes(os.urandom(64))
    (badidx / "t10k-labels-idx1-ubyte").write_bytes(os.urandom(64))
    f["badidx"] = badidx
    return f


def pixel_check(expected: int) -> Callable[[str, str], str | None]:
    def check(out: str, err: str) -> str | None:
        return None if "note" in err else f"no conversion note in {err!r}"
    return check


def cases(f: dict[str, Path]) -> list[Case]:
    t = str
    long = "x" * 300
    run = str(f["run_id"])
    good = t(f["good_db"])
    info = ["info", "--db", good]
    ev = ["evaluate", "--limit", "10", "--db", good]
    ft = ["finetune", "--epochs", "1", "--train-limit", "8", "--limit", "8", "--batch-size", "4", "--db", good]
    pr = ["prune", "--method", "omp", "--sparsity", "0.5", "--limit", "10", "--db", good]
    out: list[Case] = [
        # seeds and numbers: one range for every seed flag
        Case("finetune seed -5", [*ft, "--seed", "-5"], message="outside 0..4294967295"),
        Case("finetune seed 2**40", [*ft, "--seed", str(2 ** 40)], message="outside 0..4294967295"),
        Case("lth seed 11 digits", ["lth", "--seed", "99999999999", "--db", good], message="outside"),
        Case("sweep seed -1", ["sweep", "--seed", "-1", "--db", good], message="outside 0..4294967295"),
        Case("head-seed -3", [*info, "--head-seed", "-3"], message="outside 0..4294967295"),
        Case("head-seed 1e3", [*info, "--head-seed", "1e3"], message="not a whole number"),
        Case("head-seed 2**32", [*info, "--head-seed", str(2 ** 32)], message="outside 0..4294967295"),
        Case("head-seed 2**64 timm", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["d_bf16"]),
                                      "--head-seed", str(2 ** 64), "--db", good], message="outside 0..4294967295"),
        Case("instability seed -1", ["instability", "--seed", "-1", "--db", good], message="outside"),
        Case("finetune lr 11", [*ft, "--lr", "11"], message="outside (0, 10]"),
        Case("finetune lr 2", [*ft, "--lr", "2"], message="learning rate 2.0 is outside (0, 1)"),
        Case("finetune lr blank", [*ft, "--lr", " "], message="not a number"),
        Case("finetune lr 0x10", [*ft, "--lr", "0x10"], message="not a number"),
        Case("finetune lr -inf", [*ft, "--lr=-inf"], message="not a finite number"),
        Case("sweep ft-lr nan", ["sweep", "--ft-lr", "nan", "--db", good], message="not a finite number"),
        Case("sweep ft-lr -1", ["sweep", "--ft-lr=-1", "--db", good], message="outside (0, 10]"),
        Case("instability ks beyond steps", ["instability", "--ks", "0,5,1000", "--steps", "10", "--limit", "10",
                                              "--db", good], message="rewinding point 1000 is outside 0..10"),
        Case("instability ks -5", ["instability", "--ks=-5,0", "--limit", "10", "--db", good],
             message="rewinding point -5"),
        Case("instability ks letters", ["instability", "--ks", "a,b", "--db", good], message="cannot read"),
        Case("instability ks empty", ["instability", "--ks", ",", "--db", good], message="no rewinding points"),
        Case("soup-sweep fraction 1e-9", ["soup-sweep", "--data-fractions", "0.5,1e-9", "--limit", "10",
                                           "--db", good], message="fewer than one image per class"),
        Case("soup fraction 1e-30", ["soup", "--data-fraction", "1e-30", "--limit", "10", "--db", good],
             message="fewer than one image per class"),
        Case("lottery-train fraction 1e-12", ["lottery-train", "--fraction", "1e-12", "--limit", "10", "--db", good],
             message="fewer than one image per class"),
        Case("lottery-train fraction 0.0001", ["lottery-train", "--fraction", "0.0001", "--limit", "10",
                                                "--db", good], message="fewer than one image per class"),
        Case("patches index -1", ["patches", "--index", "-1", "--db", good], message="outside"),
        Case("report example-class -1", ["report", "--example-class", "-1", "--db", good], message="outside"),
        Case("cpus-per-task nan", [*ev, "--cpus-per-task", "nan"]),
        Case("gpus-per-task -1", [*ev, "--gpus-per-task", "-1"]),
        Case("device tpu", [*info, "--device", "tpu"]),
        Case("device cuda:99", [*info, "--device", "cuda:99"]),
        # output paths: refused before anything runs
        Case("mask-out existing folder", [*pr, "--mask-out", t(f["adir"])], message="is a folder"),
        Case("mask-out under a file", [*pr, "--mask-out", t(f["afile"] / "m.safetensors")], message="does not exist"),
        Case("mask-out missing folder", [*pr, "--mask-out", t(f["adir"] / "no" / "m.safetensors")],
             message="does not exist"),
        Case("mask-out long name", [*pr, "--mask-out", t(f["adir"] / (long + ".safetensors"))],
             message="longer than the file system"),
        Case("mask-out read-only", [*pr, "--mask-out", t(f["ro"] / "m.safetensors")], message="cannot be written"),
        Case("mask-out ~nouser", [*pr, "--mask-out", "~nouser_lotus_x/m.safetensors"], message="no such user folder"),
        Case("mask-out /dev/full", [*pr, "--mask-out", "/dev/full"], message="disk is full"),
        Case("lth mask-out read-only", ["lth", "--steps", "1", "--mask-out", t(f["ro"] / "m.safetensors"),
                                         "--db", good], message="cannot be written"),
        Case("export out /dev/full", ["export", run, "--out", "/dev/full", "--db", good], message="No space left"),
        Case("export out read-only", ["export", run, "--out", t(f["ro"] / "x.csv"), "--db", good],
             message="cannot be written"),
        Case("export out long", ["export", run, "--out", t(f["adir"] / (long + ".csv")), "--db", good],
             message="longer than the file system"),
        Case("report out read-only", ["report", "--out", t(f["ro"] / "r.html"), "--db", good],
             message="cannot be written"),
        Case("report out folder", ["report", "--out", t(f["adir"]), "--db", good], message="is a folder"),
        Case("speed out a file", ["speed", "--methods", "heads", "--out", t(f["afile"]), "--db", good],
             message="is a file"),
        Case("speed out read-only", ["speed", "--methods", "heads", "--out", t(f["ro"] / "exp"), "--db", good],
             message="cannot be written"),
        Case("train-default out read-only", ["train-default", "--out", t(f["ro"] / "w.safetensors"), "--db", good],
             message="cannot be written"),
        Case("finetune models is a file", [*ft[:-2], "--db", t(f["blocked_db"])], message="is a file"),
        # stores
        Case("runs db long", ["runs", "--db", t(f["adir"] / (long + ".db"))]),
        Case("evaluate db long", [*ev[:3], "--db", t(f["adir"] / (long + ".db"))]),
        Case("evaluate db under a file", [*ev[:3], "--db", t(f["afile"] / "x.db")]),
        Case("evaluate db ~nouser", [*ev[:3], "--db", "~nouser_lotus_x/x.db"]),
        Case("evaluate db read-only folder", [*ev[:3], "--db", t(f["ro"] / "new.db")]),
        Case("evaluate db read-only store", [*ev[:3], "--db", t(f["ro"] / "ro.db")]),
        Case("runs db read-only store", ["runs", "--db", t(f["ro"] / "ro.db")]),
        Case("runs other program", ["runs", "--db", t(f["s_other"])], message="another program"),
        Case("evaluate other program", [*ev[:3], "--db", t(f["s_other"])], message="another program"),
        Case("runs other runs table", ["runs", "--db", t(f["s_runs_other"])], message="not a LOTUS results store"),
        Case("evaluate version 5", [*ev[:3], "--db", t(f["s_v5"])], message="newer LOTUS"),
        Case("runs version 2", ["runs", "--db", t(f["s_v2"])], message="newer LOTUS"),
        Case("runs unknown table", ["runs", "--db", t(f["s_table"])], message="unknown to this LOTUS"),
        Case("evaluate unknown column", [*ev[:3], "--db", t(f["s_col"])], message="unknown to this LOTUS"),
        Case("runs 0-byte", ["runs", "--db", t(f["zero_db"])], message="is empty (0 bytes)",
             check=None),
        Case("export 0-byte", ["export", run, "--out", t(f["adir"] / "z.csv"), "--db", t(f["zero_db"])],
             message="is empty (0 bytes)"),
        Case("runs text file", ["runs", "--db", t(f["text_db"])], message="damaged"),
        Case("evaluate random bytes", [*ev[:3], "--db", t(f["rand_db"])], message="damaged"),
        Case("delete on version 5", ["delete", run, "--db", t(f["s_v5"])], message="newer LOTUS"),
        # checkpoint metadata
        *[Case(f"lotus_head {k[2:]}", ["info", "--model", t(f[k]), "--db", good], message="lotus_head")
          for k in f if k.startswith("h_")],
        *[Case(f"lotus_arch {k[2:]}", ["info", "--model", t(f[k]), "--db", good], message="lotus_arch")
          for k in f if k.startswith("a_")],
        Case("arch convnext", ["info", "--model", t(f["convnext_atto"]), "--db", good], message="not a Vision Transformer"),
        Case("arch test_resnet finetune", [*ft, "--model", t(f["test_resnet"]), "--head-only"],
             message="not a Vision Transformer"),
        Case("timm resnet18", ["info", "--model", "resnet18", "--db", good], message="not a Vision Transformer"),
        Case("timm efficientnet_b0", [*ev[:3], "--model", "efficientnet_b0", "--db", good],
             message="not a Vision Transformer"),
        Case("weights deep arch", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["w_deep"]), "--db", good],
             message="not valid JSON"),
        Case("weights null arch", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["w_null"]), "--db", good],
             message="must be a JSON object"),
        Case("weights list head", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["w_head"]), "--db", good],
             message="lotus_head"),
        Case("weights extra arch key", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["w_extra"]),
                                         "--db", good], message="unsupported key"),
        Case("weights int8", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["w_int8"]), "--db", good],
             message="int8 weights"),
        Case("weights nan", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["w_nan"]), "--db", good],
             message="NaN or infinite"),
        # dtypes and values
        *[Case(f"dtype {k[2:]}", ["info", "--model", t(f[k]), "--db", good], message="weights")
          for k in ("d_int16", "d_int32", "d_float8_e4m3fn", "d_complex64", "d_uint8")],
        Case("bool .pt", ["info", "--model", t(f["bool_pt"]), "--db", good], message="bool weights"),
        Case("-inf head bias", ["info", "--model", t(f["v_neginf"]), "--db", good], message="NaN or infinite"),
        Case("one NaN", [*ev, "--model", t(f["v_onenan"])], message="NaN or infinite"),
        Case("float16 said", ["info", "--model", t(f["d_float16"]), "--db", good], expect="accept",
             message="float16 weights are cast to float32"),
        Case("float64 .pt said", ["info", "--model", t(f["f64_pt"]), "--db", good], expect="accept",
             message="float64 weights are cast to float32"),
        Case("bfloat16 quiet", ["info", "--model", t(f["d_bf16"]), "--db", good], expect="accept",
             check=lambda o, e: None if "note" not in e else f"unexpected note {e!r}"),
        # image folders
        Case("one class", ["info", "--dataset", t(f["one"]), "--db", good], message="has one class"),
        Case("split one class", ["info", "--dataset", t(f["split1"]), "--db", good], message="has one class"),
        Case("dangling class folder+image", ["info", "--dataset", t(f["dangling_dir"]), "--db", good],
             message="dangling"),
        Case("fifo image", ["info", "--dataset", t(f["fifo"]), "--db", good], message="not a file"),
        Case("/dev/zero image", ["info", "--dataset", t(f["devzero"]), "--db", good], message="not a file"),
        Case("float tiff > 1", ["info", "--dataset", t(f["float_big"]), "--db", good], message="[0, 1]"),
        Case("symlink loop counted once", ["info", "--dataset", t(f["loop"]), "--json", "--db", good], expect="accept",
             check=lambda o, e: None if json.loads(o)["train_images"] + json.loads(o)["test_images"] == 6
             else f"loop counted {o[:300]}"),
        Case("16-bit gray scaled", ["info", "--dataset", t(f["gray16"]), "--db", good], expect="accept",
             message="16-bit gray scaled to 8 bits"),
        Case("float tiff scaled", ["info", "--dataset", t(f["float_ok"]), "--db", good], expect="accept",
             message="float intensities"),
        Case("rgba composited", ["info", "--dataset", t(f["rgba"]), "--db", good], expect="accept",
             message="composited over white"),
        Case("LA composited", ["info", "--dataset", t(f["la"]), "--db", good], expect="accept",
             message="composited over white"),
        Case("1-bit said", ["info", "--dataset", t(f["bits"]), "--db", good], expect="accept", message="1-bit"),
        Case("cmyk quiet", ["info", "--dataset", t(f["cmyk"]), "--db", good], expect="accept"),
        Case("dataset long", ["info", "--dataset", t(f["adir"] / long), "--db", good]),
        Case("dataset ~nouser", ["info", "--dataset", "~nouser_lotus_x/data", "--db", good]),
        Case("dataset imagefolder: empty", ["info", "--dataset", "imagefolder:", "--db", good]),
        Case("model long", ["info", "--model", t(f["adir"] / (long + ".safetensors")), "--db", good]),
        Case("model ~nouser", ["info", "--model", "~nouser_lotus_x/m.safetensors", "--db", good]),
        Case("weights long", ["info", "--model", "vit_tiny_patch16_224", "--weights", t(f["adir"] / long), "--db", good]),
        Case("data-root long", ["info", "--data-root", t(f["adir"] / long), "--db", good]),
        Case("data-root a file", ["info", "--data-root", t(f["afile"]), "--db", good]),
        # ignored flags
        Case("fashion data-root of images", ["info", "--data-root", t(f["one"]), "--db", good],
             message="holds no Fashion-MNIST"),
        Case("0to4 data-root of images", ["info", "--dataset", "fashion-mnist-0to4", "--data-root", t(f["rgba"]),
                                           "--db", good], message="holds no Fashion-MNIST"),
        Case("folder plus data-root", ["info", "--dataset", t(f["rgba"]), "--data-root", t(f["la"]), "--db", good],
             message="--data-root applies to named datasets"),
        Case("fashion data-root random idx", ["info", "--data-root", t(f["badidx"]), "--db", good]),
        Case("ray-address with local", [*info, "--executor", "local", "--ray-address", "10.0.0.1:6379"]),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-k", default="", help="run only cases whose name contains this")
    args = parser.parse_args(argv)
    counts = {"tried": 0, "clean": 0, "traceback": 0, "silent": 0, "messy": 0}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        f = fixtures(Path(tmp))
        try:
            for case in cases(f):
                if args.k not in case.name:
                    continue
                outcome, detail = run_case(case)
                counts["tried"] += 1
                counts[outcome] += 1
                if outcome != "clean":
                    failures.append({"case": case.name, "outcome": outcome, "detail": detail})
                if not args.json:
                    print(f"{outcome:9s} {case.name}: {detail[:160]}", flush=True)
        finally:
            if subprocess.run(["umount", str(f["ro"])], capture_output=True).returncode != 0:
                f["ro"].chmod(0o755)
    if args.json:
        print(json.dumps({**counts, "failures": failures}))
    else:
        print(json.dumps(counts))
    return 0 if counts["tried"] == counts["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
