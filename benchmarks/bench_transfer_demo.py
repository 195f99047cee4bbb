"""The offline transfer demo, end to end through the CLI, one run: the tables of docs/figures-transfer-demo.md.

    python benchmarks/bench_transfer_demo.py [--db data/lotus.db] [--epochs 2] [--lr 3e-4]

Upstream: ``data/transfer_vit.safetensors``, the default architecture pre-trained on the five
Fashion-MNIST classes 0-4 only (T-shirt/top, Trouser, Pullover, Dress, Coat). Downstream:
``fashion-mnist-5to9`` (Sandal, Shirt, Sneaker, Bag, Ankle boot), which it never saw; its head is
re-initialised (seed 0) for them. Reported: accuracy with the random head, after a head-only
probe, after a full fine-tune; essential sparsity (OMP, eps 1 point) under both protocols:
(a) prune the fine-tuned model, (b) Essential Sparsity: masks from the pre-trained weights,
every masked model fine-tuned with the dense reference's recipe.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lotus_core import cli  # noqa: E402
from lotus_core.models.loading import TRANSFER_WEIGHTS  # noqa: E402


def run(argv: list[str]) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main([*argv, "--json"])
    if rc != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({rc})")
    return json.loads(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--probe-lr", type=float, default=3e-3)
    parser.add_argument("--sparsities", default="0.25,0.5,0.75")
    parser.add_argument("--train-limit", type=int, default=2000, help="training images of every fine-tune")
    args = parser.parse_args()
    common = ["--dataset", "fashion-mnist-5to9", *(["--db", args.db] if args.db else [])]
    pre = ["--model", str(TRANSFER_WEIGHTS), *common]
    before = run(["evaluate", *pre])
    budget = ["--epochs", str(args.epochs), "--train-limit", str(args.train_limit)]
    probe = run(["finetune", *pre, *budget, "--lr", str(args.probe_lr), "--head-only"])
    full = run(["finetune", *pre, *budget, "--lr", str(args.lr)])
    lotus = run(["sweep", "--model", full["checkpoint"], *common, "--methods", "omp", "--refine", "--stop-at-drop",
                 "--protocol", "lotus"])
    essential = run(["sweep", *pre, "--methods", "omp", "--sparsities", args.sparsities, "--protocol", "essential",
                     "--ft-epochs", str(args.epochs), "--ft-lr", str(args.lr), "--ft-train-limit", str(args.train_limit)])
    assert essential["dense"]["finetune_run"] == full["run_id"]  # the same recipe: one dense reference
    print(f"model {before['model']} on fashion-mnist-5to9 ({before['n']} test images)")
    print("| what | accuracy | 95% CI | training |")
    print("|---|---|---|---|")
    print(f"| random new head (seed 0) | {100 * before['accuracy']:.2f}% | {100 * before['ci95'][0]:.1f}-"
          f"{100 * before['ci95'][1]:.1f}% | none |")
    for label, r in (("head-only probe", probe), ("full fine-tune", full)):
        print(f"| {label}, {r['epochs']} epochs | {100 * r['accuracy']:.2f}% | {100 * r['ci95'][0]:.1f}-"
              f"{100 * r['ci95'][1]:.1f}% | {r['seconds']:.0f} s |")
    print("| protocol | dense line | essential sparsity (OMP) | bracket | points |")
    print("|---|---|---|---|---|")
    for label, r in (("(a) prune the fine-tuned model", lotus), ("(b) Essential Sparsity", essential)):
        e = r["essential"]["omp"]
        hi = "never below" if e["bracket"][1] is None else f"{100 * e['bracket'][1]:.0f}%"
        pts = ", ".join(f"{100 * p['sparsity']:.0f}%: {100 * p['accuracy']:.1f}%" for p in r["points"])
        print(f"| {label} | {100 * r['dense']['accuracy']:.2f}% | {100 * e['essential_sparsity']:.0f}% | "
              f"[{100 * e['bracket'][0]:.0f}%, {hi}] | {pts} |")


if __name__ == "__main__":
    main()
