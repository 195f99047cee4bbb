"""Layers only point down: every import inside ``lotus_core`` (at module level, inside a function or under
``TYPE_CHECKING``) goes to a module of its own layer or a lower one. The layers are declared once, in the
``layers`` block of docs/DEVELOPING.md, which this test reads; a module no pattern names is an error too."""
from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lotus_core"


def declared_layers() -> list[tuple[str, list[str]]]:
    """(layer name, module patterns relative to lotus_core) from the bottom layer up."""
    text = (ROOT / "docs" / "DEVELOPING.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S).group(1)
    layers = []
    for line in block.strip().splitlines():
        name, _, patterns = line.partition(":")
        layers.append((name.strip(), patterns.split()))
    return layers


def modules() -> dict[str, Path]:
    """Dotted module name relative to lotus_core ("" for the package itself) -> file."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int | None:
    """The layer whose most specific pattern matches ``module`` (an exact name beats a glob, a longer glob a
    shorter one)."""
    best: tuple[tuple[int, int], int] | None = None
    for rank, (_, patterns) in enumerate(layers):
        for pattern in patterns:
            pattern = "" if pattern == "lotus_core" else pattern
            if fnmatch.fnmatchcase(module, pattern):
                specificity = (0 if any(c in pattern for c in "*?[") else 1, len(pattern))
                if best is None or specificity > best[0]:
                    best = (specificity, rank)
    return None if best is None else best[1]


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every lotus_core module ``path`` imports, resolved to the most specific module that exists."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()

    def add(dotted: str, names: list[str]) -> None:
        for name in names:
            full = f"{dotted}.{name}".strip(".")
            targets.add(full if full in known else dotted)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "lotus_core" or alias.name.startswith("lotus_core."):
                    targets.add(alias.name.removeprefix("lotus_core").lstrip("."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                dotted = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "lotus_core" or node.module.startswith("lotus_core.")):
                dotted = node.module.removeprefix("lotus_core").lstrip(".")
            else:
                continue
            add(dotted, [a.name for a in node.names])
    return {t for t in targets if t != module}


def test_every_module_has_a_declared_layer():
    layers = declared_layers()
    assert [name for name, _ in layers][:2] == ["core", "data"], "core is the leaf, data right above it"
    assert sorted(m for m in modules() if layer_of(m, layers) is None) == []


def test_imports_only_point_down():
    layers = declared_layers()
    known = modules()
    upward = []
    for module, path in sorted(known.items()):
        mine = layer_of(module, layers)
        for target in sorted(imports_of(module, path, known)):
            theirs = layer_of(target, layers)
            if theirs is not None and mine is not None and theirs > mine:
                upward.append(f"{module or 'lotus_core'} ({layers[mine][0]}) -> {target} ({layers[theirs][0]})")
    assert upward == []


def test_the_core_layer_is_a_leaf_and_never_loads_torch_models_or_streamlit():
    known = modules()
    core = {m: p for m, p in known.items() if m == "core" or m.startswith("core.")}
    for module, path in core.items():
        assert all(t == "core" or t.startswith("core.") for t in imports_of(module, path, known)), module
    for path in known.values():
        assert "import streamlit" not in path.read_text(), path


def test_the_import_walk_sees_function_level_and_type_only_imports(tmp_path):
    """The walk itself: an import inside a function and one under TYPE_CHECKING both count."""
    code = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..context import Context\n"
            "def f():\n    from ..views.figures import style\n")
    path = tmp_path / "probe.py"
    path.write_text(code)
    assert imports_of("core.probe", path, {"context": path, "views.figures": path}) == {"context", "views.figures"}


def test_every_module_is_named_in_the_developers_guide():
    """docs/DEVELOPING.md's layout names every module of lotus_core by its file name (``ticket_transfer.py``)
    or, inside its package's entry, by its stem as a word."""
    text = (ROOT / "docs" / "DEVELOPING.md").read_text()
    layout = text[text.index("## Layout"):text.index("## Conventions")]
    missing = []
    for module, path in modules().items():
        if not module or path.name == "__init__.py":
            continue
        if path.name not in layout and not re.search(rf"\b{re.escape(path.stem)}\b(?!-)", layout):
            missing.append(module)
    assert missing == []
