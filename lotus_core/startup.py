"""A command-line process starts without importing torch._dynamo and ends without the interpreter's teardown
(:func:`exit_now`): together about half of a model command's start-up (figures with their loads in
docs/responsive.md, measured by ``benchmarks/bench_essential.py --baseline``).

Two imports pull in TorchDynamo, which LOTUS never uses (it does not compile):

- ``torchvision/ops/roi_align.py`` imports ``is_compile_supported`` from ``torch._dynamo.utils`` at module level,
  although the function beside it says it is written to avoid "eagerly importing dynamo";
- timm decorates a few methods (``naflexvit``) with ``torch.compiler.disable`` at import, which imports dynamo.

:func:`import_vision_stack` imports the three while both are deferred: ``torch._dynamo.utils`` is, for the length of
that import only, a module whose ``is_compile_supported`` imports the real one on its first call, and
``torch.compiler.disable`` returns a wrapper that applies the real ``disable`` on the decorated function's first call.
Both behave as the originals when called; afterwards ``sys.modules`` and ``torch.compiler`` are as they were, and
torch._dynamo imports normally the first time something uses it. Only the command line calls it, at its start,
before any other thread exists (``cli.run``; the dashboard, notebooks and in-process ``cli.main`` import as usual).
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import os
import sys
import threading
import types
from typing import Any, Callable, Iterator, NoReturn


def import_vision_stack() -> None:
    """Import torch, torchvision and timm with torch._dynamo deferred (a no-op where any of them is loaded)."""
    import torch.compiler

    lean = not any(name in sys.modules for name in ("torchvision", "timm", "torch._dynamo"))
    with _deferred_dynamo(torch.compiler) if lean else contextlib.nullcontext():
        import timm  # noqa: F401 - imports torchvision too


@contextlib.contextmanager
def _deferred_dynamo(compiler: types.ModuleType) -> Iterator[None]:
    utils = types.ModuleType("torch._dynamo.utils", "stands in while torchvision imports; see lotus_core.startup")
    utils.is_compile_supported = _is_compile_supported  # type: ignore[attr-defined]
    real_disable = compiler.disable
    sys.modules["torch._dynamo.utils"] = utils
    compiler.disable = functools.partial(_deferred_disable, real_disable)
    try:
        yield
    finally:
        compiler.disable = real_disable
        if sys.modules.get("torch._dynamo.utils") is utils:
            del sys.modules["torch._dynamo.utils"]


def _is_compile_supported(device_type: Any) -> bool:
    return importlib.import_module("torch._dynamo.utils").is_compile_supported(device_type)


def _deferred_disable(real: Callable[..., Any], fn: Callable[..., Any] | None = None, recursive: bool = True,
                      **kwargs: Any) -> Any:
    if fn is None:  # used as @disable(recursive=...)
        return lambda f: _deferred_disable(real, f, recursive, **kwargs)
    disabled: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def call(*args: Any, **kw: Any) -> Any:
        if not disabled:
            disabled.append(real(fn, recursive, **kwargs))
        return disabled[0](*args, **kw)

    return call


def exit_now(code: int) -> NoReturn:
    """End a command-line process with ``code`` without the interpreter's teardown (once torch and timm are
    imported, every module torn down and collected when the process is about to vanish anyway).

    stdout and stderr are flushed and the atexit handlers run first (Ray's shutdown, logging, temporary folders);
    a command closes its store and files before it returns. While another non-daemon thread is alive, the
    process ends the usual way, so that thread is joined as it would be."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader that went away (``| head``), or a closed stream
        pass
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # noqa: SLF001 - what a normal exit runs first, in its order
    os._exit(code)
