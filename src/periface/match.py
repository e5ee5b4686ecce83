"""Scores, calibrated thresholds and candidate lists.

A score is the cosine similarity of two unit embeddings. What a score *means* comes from the impostor score
distribution measured on LFW View-1 (``scripts/calibrate.py``): ``far(score)`` is the share of different-person
pairs that score at least as high, and ``threshold(far)`` is its inverse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .models import PACKAGE_DATA

CALIBRATION_DIR = PACKAGE_DATA / "calibration"


def similarity(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Cosine similarity: (D,) x (D,) -> float, (N, D) x (M, D) -> (N, M)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    an = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    if an.ndim == 1 and bn.ndim == 1:
        return float(an @ bn)
    return np.atleast_2d(an) @ np.atleast_2d(bn).T


def mean_probe(embeddings: np.ndarray, masked: np.ndarray | list[bool]) -> tuple[np.ndarray, bool, int]:
    """One probe from several faces of one person (a video track's best frames): (unit mean embedding, masked, faces
    used). Only the faces in the majority's mask state are averaged (the first face's state breaks a tie), so that
    a masked probe holds masked faces only; a single face is returned as it is."""
    masked = np.asarray(masked, bool).reshape(-1)
    if len(masked) == 0:
        raise ValueError("no faces to make a probe from")
    votes = 2 * int(masked.sum()) - len(masked)
    state = bool(votes > 0 or (votes == 0 and masked[0]))
    vectors = np.asarray(embeddings, np.float32).reshape(len(masked), -1)[masked == state]
    if len(vectors) == 1:
        return vectors[0], state, 1
    mean = (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), state, len(vectors)


@dataclass(frozen=True)
class Calibration:
    """Impostor-score quantiles of one embedder: ``fars[i]`` of impostor pairs score >= ``thresholds[i]``."""

    embedder: str
    fars: np.ndarray  # decreasing
    thresholds: np.ndarray  # increasing
    n_impostor: int
    source: str

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        doc = json.loads(Path(path).read_text())
        return cls(
            embedder=doc["embedder"],
            fars=np.asarray(doc["fars"], np.float64),
            thresholds=np.asarray(doc["thresholds"], np.float64),
            n_impostor=int(doc["n_impostor"]),
            source=doc["source"],
        )

    @classmethod
    def from_scores(cls, embedder: str, impostor: np.ndarray, source: str) -> "Calibration":
        impostor = np.sort(np.asarray(impostor, np.float64))
        n = len(impostor)
        fars = np.logspace(0, np.log10(max(1.0 / n, 1e-7)), 121)
        thresholds = np.array([impostor[min(n - 1, int(np.ceil(n * (1 - f))))] for f in fars])
        thresholds = np.maximum.accumulate(thresholds)
        return cls(embedder, fars, thresholds, n, source)

    def to_json(self) -> dict:
        return {
            "embedder": self.embedder,
            "source": self.source,
            "n_impostor": self.n_impostor,
            "fars": [float(f) for f in self.fars],
            "thresholds": [float(t) for t in self.thresholds],
            "shipped": {f"{f:.0e}": self.threshold(f) for f in (1e-2, 1e-3, 1e-4)},
        }

    def threshold(self, far: float) -> float:
        """The score above which a share ``far`` of impostor pairs falls."""
        if far < self.fars[-1]:
            raise ValueError(f"FAR {far} is below what {self.n_impostor} impostor pairs can measure")
        return float(np.interp(np.log10(far), np.log10(self.fars[::-1]), self.thresholds[::-1]))

    def far(self, score: float | np.ndarray) -> float | np.ndarray:
        """The false accept rate a score corresponds to (clamped to the measurable range)."""
        log_far = np.interp(score, self.thresholds, np.log10(self.fars))
        out = np.power(10.0, log_far)
        return float(out) if np.ndim(out) == 0 else out


@lru_cache(maxsize=None)
def calibration_for(embedder: str) -> Calibration:
    path = CALIBRATION_DIR / f"{embedder}.json"
    if not path.exists():
        raise FileNotFoundError(f"no calibration shipped for embedder {embedder!r} ({path}); run scripts/calibrate.py")
    return Calibration.load(path)


@dataclass(frozen=True)
class Verification:
    score: float
    same: bool
    threshold: float
    far: float  # the FAR that ``score`` corresponds to
    target_far: float  # the FAR the threshold was set at
    notes: tuple[str, ...] = ()
    mode: str = "plain"  # "masked" when one face wore a mask and the masked path decided


@dataclass(frozen=True)
class Candidate:
    """One entry of a search's ranked list, for a person to review."""

    identity: str
    score: float
    rank: int
    far: float
    masked_probe: bool = False

    def to_dict(self) -> dict:
        return {
            "identity": self.identity,
            "score": round(self.score, 4),
            "rank": self.rank,
            "far": float(f"{self.far:.3g}"),
            "masked_probe": self.masked_probe,
        }
