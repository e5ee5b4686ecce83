"""LFW pair lists (View-1 and View-2 format) and image paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Pair:
    a: str  # relative image path, "Name/Name_0001.jpg"
    b: str
    same: bool
    fold: int


def image_path(name: str, number: int) -> str:
    return f"{name}/{name}_{int(number):04d}.jpg"


def read_pairs(path: Path) -> list[Pair]:
    """Parse ``pairs.txt`` (header ``folds n``) or ``pairsDevTrain.txt`` (header ``n``).

    Each fold holds ``n`` matched then ``n`` mismatched pairs; a single-number header means one fold.
    """
    lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.strip()]
    header = [int(v) for v in lines[0]]
    folds, per = (header[0], header[1]) if len(header) == 2 else (1, header[0])
    body = lines[1:]
    if len(body) != folds * per * 2:
        raise ValueError(f"{path}: expected {folds * per * 2} pairs after the header, found {len(body)}")
    pairs = []
    for i, row in enumerate(body):
        fold = i // (2 * per)
        if len(row) == 3:
            pairs.append(Pair(image_path(row[0], row[1]), image_path(row[0], row[2]), True, fold))
        elif len(row) == 4:
            pairs.append(Pair(image_path(row[0], row[1]), image_path(row[2], row[3]), False, fold))
        else:
            raise ValueError(f"{path}: line {i + 2} has {len(row)} fields")
    return pairs


def pair_labels(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """(same, fold) of each pair as arrays, the form the metrics take."""
    return np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])


def pair_images(pairs: list[Pair]) -> list[str]:
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


def people_in(pairs_files: list[Path]) -> set[str]:
    """Everyone named in the given pair lists."""
    names: set[str] = set()
    for f in pairs_files:
        for p in read_pairs(f):
            names.add(p.a.split("/")[0])
            names.add(p.b.split("/")[0])
    return names
