"""Every path LOTUS knows, in one place: the repository, its shipped data, the default store."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"  # the embedded default model, demo data and the default results store
EMBEDDED_FMNIST = DATA_DIR / "fashion-mnist"  # full test split + a fixed 10,000-image training subset
DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
DEFAULT_DB = DATA_DIR / "lotus.db"
