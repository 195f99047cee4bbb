"""``python -m lotus_core`` (also installed as ``lotus``): every core capability, headless.

Every command takes ``--json`` and then prints exactly one JSON object on stdout.
User errors print one line to stderr and exit 2; nothing prints a traceback for them.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sqlite3
import sys
from typing import Any, Sequence

from .commands import COMMANDS, seed
from .core.errors import LotusError, first_line, os_error_line
from .core.text import visible
from .results.executors import EXECUTORS
from .startup import exit_now, import_vision_stack


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _common(p: argparse.ArgumentParser, context: bool) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--db", default=None, help="results store (default $LOTUS_DB or data/lotus.db)")
    if context:
        p.add_argument("--model", default="default", help="'default', a checkpoint file, or a timm model name")
        p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, cifar10, cifar100, or an image folder: flat <class>/<image> (20%% of each class "
                            "held out for testing, seeded) or train/<class>/<image> + test/<class>/<image> (as given)")
        p.add_argument("--data-root", default=None, help="folder to look for (or download) the dataset in")
        p.add_argument("--weights", default=None, help="local weights file for a timm model (instead of the hub)")
        p.add_argument("--arch", default=None, help="timm architecture of a checkpoint without metadata")
        g = p.add_argument_group("executor", "where an experiment's independent units run (default $LOTUS_EXECUTOR "
                                 "or local)")
        g.add_argument("--executor", default=None, choices=list(EXECUTORS), help="local: in this process; ray: tasks")
        g.add_argument("--ray-address", default=None,
                       help="auto, HOST:6379 or ray://HOST:10001 (default $LOTUS_RAY_ADDRESS; none: a local cluster)")
        g.add_argument("--gpus-per-task", type=float, default=None, help="GPUs per unit; fractions pack units (0.25)")
        g.add_argument("--cpus-per-task", type=float, default=None, help="CPUs per unit (default $LOTUS_THREADS, the threads each unit computes on)")
        p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when present); chosen once")
        p.add_argument("--head-seed", type=seed, default=0, help="seed of a timm head re-initialised for the dataset")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; the options of ``only`` alone when given ("": of none, which is
    enough for ``--help``), because building a command's options may import torch."""
    parser = _Parser(prog="lotus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help.replace("%", "%%"), description=cmd.help)
        if only is None or cmd.name == only:
            _common(p, cmd.context)
            for names, kwargs in cmd.options():
                p.add_argument(*names, **kwargs)
    return parser


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    return obj


def _print_human(result: dict) -> None:
    for key, value in result.items():
        text = json.dumps(_jsonable(value)) if isinstance(value, (dict, list)) else value
        print(f"{key}: {visible(str(text))}")  # stored text (old run names) never drives the terminal


def sqlite_error_line(exc: sqlite3.Error) -> str:
    """One line for an SQLite error that escaped the store's own checks."""
    text = first_line(exc)
    if "full" in text:
        return "the results store's disk is full; free space and rerun to resume (finished results are kept)"
    if "readonly" in text or "unable to open" in text:
        return f"the results store cannot be written ({text}); pass a writable --db path"
    return f"the results store failed ({text}); check --db (or move the store away and rerun)"


def run() -> None:
    """The process's entry (``python -m lotus_core``, ``lotus``): a model command's imports without torch._dynamo,
    :func:`main`, then the exit without teardown (both in :mod:`lotus_core.startup`).

    A reader that goes away before the output ends (``| head``) ends the command quietly with 141, as a process
    killed by SIGPIPE reports it; what was computed is in the store already."""
    argv = sys.argv[1:]
    cmd = COMMANDS.get(argv[0]) if argv else None  # the command comes first
    if cmd is not None and (cmd.context or callable(cmd.arguments)):  # it will import torch and timm
        import_vision_stack()  # here, not in main(): only a process of its own, before any other thread
    try:
        code = main(argv)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush into the pipe
        code = 141
    exit_now(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else "")  # the command comes first
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    cmd = COMMANDS[args.command]
    try:
        ctx, note = None, None
        if cmd.check is not None:  # bad arguments are refused before the model and data load
            cmd.check(args)
        if cmd.context:
            from .context import open_context

            from .core.executor import ExecutorConfig

            executor = ExecutorConfig.from_env(kind=args.executor, address=args.ray_address,
                                               gpus_per_task=args.gpus_per_task, cpus_per_task=args.cpus_per_task)
            ctx = open_context(args.model, args.dataset, args.db, args.data_root, args.weights, args.arch,
                               args.device, args.head_seed, executor)
            limit = getattr(args, "limit", None)
            if limit is not None and limit > len(ctx.test):
                note = (f"lotus {args.command}: note: --limit {limit} is more than the {len(ctx.test)} test images; "
                        f"all {len(ctx.test)} are used")
        with ctx.store.held() if ctx is not None else contextlib.nullcontext():  # no fsync storm per store call
            result = cmd.run(args, ctx)
        if ctx is not None and isinstance(result, dict) and isinstance(result.get("run_id"), str):
            from .results.runs import provenance_label

            result.setdefault("provenance", provenance_label(ctx, result["run_id"]))  # where it was computed
        notes = [*getattr(ctx.model, "lotus_notes", ()), *ctx.test.notes] if ctx is not None else []
        for line in [*notes, *([note] if note else [])]:  # said once the command succeeded: a refusal stays one line
            print(line if line.startswith("lotus ") else f"lotus {args.command}: note: {line}", file=sys.stderr)
    except LotusError as exc:
        print(f"lotus {args.command}: error: {visible(str(exc))}", file=sys.stderr)  # it may quote what was typed
        return 2
    except OSError as exc:  # a path the user gave: read-only, full, too long, a file in the way, ...
        print(f"lotus {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except sqlite3.Error as exc:
        print(f"lotus {args.command}: error: {sqlite_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lotus {args.command}: interrupted; every finished result is in the store, rerun to resume",
              file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(_jsonable(result)))
    else:
        _print_human(result)
    return 0
