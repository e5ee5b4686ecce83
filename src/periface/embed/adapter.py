"""An unmasking adapter: a small residual network on top of an embedding, run with numpy.

    f(e) = normalise(e + W2 · relu(W1 · e + b1) + b2)

trained (``scripts/train_masked_path.py``) so that f(embedding of a masked face) comes close to the embedding of
the same face without the mask, and f(unmasked) stays where it was. The arrays ship in ``data/`` with their
SHA-256 in ``data/SHA256SUMS``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..models import packaged_file
from .base import l2_normalise


class EmbeddingAdapter:
    def __init__(self, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> None:
        self.w1, self.b1, self.w2, self.b2 = (np.asarray(a, np.float32) for a in (w1, b1, w2, b2))

    def __call__(self, e: np.ndarray) -> np.ndarray:
        e = np.atleast_2d(np.asarray(e, np.float32))
        hidden = np.maximum(e @ self.w1.T + self.b1, 0.0)
        out = l2_normalise(e + hidden @ self.w2.T + self.b2)
        return out

    def save(self, path: Path) -> str:
        np.savez_compressed(path, w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    @classmethod
    def load(cls, name: str) -> "EmbeddingAdapter":
        """The adapter ``data/<name>``, verified against its recorded SHA-256."""
        with np.load(packaged_file(name)) as z:
            return cls(z["w1"], z["b1"], z["w2"], z["b2"])
