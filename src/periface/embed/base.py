"""The Embedder interface: an image and its faces' landmarks in, (N, D) L2-normalised float32 vectors out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int
    fingerprint: str  # changes whenever the vectors would (weights, options); embedding caches are keyed by it

    def embed(self, rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(N, D) float32 unit vectors for the faces given by ``boxes`` (N, 4) and ``landmarks`` (N, 5, 2)."""
        ...


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def mirror_averaged(vectors: np.ndarray, n: int) -> np.ndarray:
    """``vectors`` of n faces followed by their n mirror images -> (n, D): each pair's unit vectors averaged."""
    out = l2_normalise(vectors)
    return l2_normalise(out[:n] + out[n:])
