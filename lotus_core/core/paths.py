"""Every path LOTUS knows, in one place: the repository, its shipped data, the default store."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import LotusError

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "lotus_core"  # the package itself (shipped to Ray workers as a py_module)
DATA_DIR = REPO_ROOT / "data"  # the embedded default model, demo data and the default results store
EMBEDDED_FMNIST = DATA_DIR / "fashion-mnist"  # full test split + a fixed 10,000-image training subset
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
DEFAULT_DB = DATA_DIR / "lotus.db"
DEMO_DB = DATA_DIR / "demo" / "lotus-demo.db"  # the default model's demo results, shipped with the project
DATA_ROOT_ENV = "LOTUS_DATA_ROOT"  # where downloaded datasets go
CPU_BUDGET_ENV = "LOTUS_CPU_BUDGET_DIR"  # the folder of the host's CPU slot files


def store_path(path: str | Path | None = None) -> Path:
    """The results store's path: ``path`` (``--db``), else ``$LOTUS_DB``, else data/lotus.db.

    ``~`` is expanded. An empty ``$LOTUS_DB``, a ``file:`` URI and a directory are refused with a
    :class:`LotusError` (each would otherwise silently use, or create, some other store).
    """
    source = "--db"
    if path is None or str(path) == "":
        if "LOTUS_DB" in os.environ:
            path, source = os.environ["LOTUS_DB"], "LOTUS_DB"
            if not path.strip():
                raise LotusError("LOTUS_DB is set but empty; unset it to use data/lotus.db or set it to a file path")
        else:
            return DEFAULT_DB
    text = str(path)
    if text.startswith("file:") or "://" in text:
        raise LotusError(f"{source} {text!r} is a URI; give a plain file path such as ~/lotus.db")
    try:
        resolved = Path(text).expanduser()
    except RuntimeError:  # ~name of no user
        raise LotusError(f"{source} {text[:120]!r}: no such user folder {text.split('/')[0][:40]}; "
                         "give another path") from None
    if resolved.is_dir():
        raise LotusError(f"{source} {resolved} is a folder; give a file path inside it such as {resolved / 'lotus.db'}")
    return resolved


def jobs_db(store: str | Path) -> Path:
    """The job queue's database, beside the results store it serves (``<store>-jobs.db``)."""
    return Path(store).with_name(Path(store).stem + "-jobs.db")


def models_dir(store: str | Path) -> Path:
    """Where fine-tuned models go: ``models/`` beside the results store."""
    return Path(store).parent / "models"


def datasets_dir() -> Path:
    """Where downloaded datasets go: ``$LOTUS_DATA_ROOT`` or ``~/.cache/lotus/datasets``."""
    return Path(os.environ.get(DATA_ROOT_ENV, Path.home() / ".cache" / "lotus" / "datasets"))


def cpu_budget_dir() -> Path:
    """The folder of this host's CPU slot files (``$LOTUS_CPU_BUDGET_DIR``, default ``<tmp>/lotus-cpu-budget``),
    created on first use."""
    import tempfile

    path = Path(os.environ.get(CPU_BUDGET_ENV) or Path(tempfile.gettempdir()) / "lotus-cpu-budget")
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_file(*parts: str) -> Path:
    """A file of the lotus_core package (a module loaded by path without importing its package)."""
    return PACKAGE_DIR.joinpath(*parts)

# --------------------------------------------------------------------------- serving beyond localhost
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SERVE_ROOTS_ENV = "LOTUS_SERVE_ROOTS"  # folders (os.pathsep-separated) a dashboard served on a network may read


def serve_roots() -> list[Path]:
    """The folders a network-served dashboard may read models, datasets and weights from:
    ``$LOTUS_SERVE_ROOTS`` (``os.pathsep``-separated), default the repository's data/ folder."""
    text = os.environ.get(SERVE_ROOTS_ENV, "")
    roots = [Path(p).expanduser().resolve() for p in text.split(os.pathsep) if p.strip()]
    return roots or [DATA_DIR.resolve()]


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` answers this machine only (None binds every interface)."""
    return address is not None and address.strip() in LOOPBACK


def served_roots() -> list[Path] | None:
    """The folders every file this process reads for a user must really lie in, or None when it serves no
    network. Serving is declared by ``$LOTUS_SERVE_ROOTS`` (``make run ADDRESS=...`` and the Docker image set
    it; the dashboard's worker inherits it), so the library's readers apply the rule without a page's help."""
    return serve_roots() if os.environ.get(SERVE_ROOTS_ENV, "").strip() else None


def _inside(target: Path, roots: list[Path]) -> bool:
    return any(target == root or root in target.parents for root in roots)


def check_served_file(path: str | Path, what: str = "file") -> None:
    """Refuse to read ``path`` when serving (:func:`served_roots`) and its real path (every symlink on the
    way resolved: a linked class folder or image) lies outside the served folders. Checking the path typed
    is not enough: a dataset folder inside data/ may hold links to anywhere."""
    from .errors import LotusError

    roots = served_roots()
    if roots is None:
        return
    real = Path(os.path.realpath(path))
    if not _inside(real, roots):
        raise LotusError(f"{what} {path} resolves to {real}, outside the folders this dashboard may read "
                         f"({', '.join(map(str, roots))}); copy the file into the folder or set {SERVE_ROOTS_ENV}")


def check_served_path(value: str | None, what: str, roots: list[Path]) -> None:
    """Refuse ``value`` (a --model, --dataset or --weights choice) when it names a file or folder outside
    ``roots`` (symlinks resolved). Registry names (``default``, timm names, ``fashion-mnist``) pass."""
    from .errors import LotusError

    if not value:
        return
    text = value.split(":", 1)[1] if value.startswith("imagefolder:") else value
    looks_like_path = "/" in text or os.sep in text or text.startswith(("~", ".")) or Path(text).exists()
    if value.startswith("hf-hub:") or not looks_like_path:
        return
    target = Path(text).expanduser().resolve()
    if not _inside(target, roots):
        raise LotusError(f"{what} {value!r} is outside the folders this dashboard may read "
                         f"({', '.join(map(str, roots))}); put it there or set {SERVE_ROOTS_ENV}")
