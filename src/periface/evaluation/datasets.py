"""Where the shared real data lives: ``$PERIFACE_DATASETS`` or ``../shared/datasets`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[3]


def datasets_root() -> Path | None:
    """The datasets folder, or None when this machine has none (a fresh clone without ``../shared``)."""
    candidates = [os.environ.get("PERIFACE_DATASETS"), _REPO_ROOT.parent / "shared" / "datasets",
                  Path.cwd().parent / "shared" / "datasets"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def require_datasets() -> Path:
    root = datasets_root()
    if root is None:
        raise FileNotFoundError("../shared/datasets not found: set PERIFACE_DATASETS to the real-data folder")
    return root


def training_lfw_photos() -> list[Path]:
    """The LFW photos of ``data/robust/train_list.txt``: people in no LFW pair list, so no benchmark sees them."""
    from ..models import PACKAGE_DATA

    root = require_datasets()
    listing = (PACKAGE_DATA / "robust" / "train_list.txt").read_text().splitlines()
    return [root / ln.split("\t")[2] for ln in listing if ln.startswith("lfw\t")]
