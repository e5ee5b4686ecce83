"""Score fusion of two backbones folded into one vector, so that a plain inner product gives the fused score.

With z-normalised scores z_i = (s_i - mu_i) / sigma_i, the fused score sum_i w_i z_i is an increasing affine
function of  sum_i (w_i / sigma_i) s_i , which is the inner product of the concatenations
[sqrt(w_i / sigma_i) e_i]. Normalising the concatenation keeps it a unit vector, so FAISS can search it as is.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import Embedder, l2_normalise


class FusionEmbedder:
    def __init__(self, parts: Sequence[Embedder], weights: Sequence[float], impostor_std: Sequence[float]) -> None:
        if not (len(parts) == len(weights) == len(impostor_std)):
            raise ValueError("parts, weights and impostor_std must have the same length")
        self.parts = list(parts)
        self.weights = tuple(float(w) for w in weights)
        self.name = "fusion"
        self.dim = sum(p.dim for p in parts)
        self.gains = fusion_gains(weights, impostor_std)
        parts, gains = "+".join(p.fingerprint for p in self.parts), ",".join(f"{g:.6f}" for g in self.gains)
        self.fingerprint = f"fusion:{parts}:{gains}"

    def embed(self, rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        blocks = [g * p.embed(rgb, boxes, landmarks) for g, p in zip(self.gains, self.parts)]
        return l2_normalise(np.concatenate(blocks, axis=1))


def fusion_gains(weights: Sequence[float], impostor_std: Sequence[float]) -> np.ndarray:
    """Per-backbone gains sqrt(w_i / sigma_i), scaled so that the concatenation stays a unit vector."""
    gains = np.sqrt(np.asarray(weights, np.float64) / np.asarray(impostor_std, np.float64))
    return (gains / np.sqrt((gains**2).sum())).astype(np.float32)


def reweighted(fused: np.ndarray, gains: Sequence[float], new_gains: Sequence[float], dims: Sequence[int]) -> np.ndarray:
    """(N, D) fused vectors computed with ``gains``, as they would be with ``new_gains``: each backbone's block
    (``dims`` wide) is rescaled and the whole renormalised. Exact also for the mean of several fused vectors (a
    masked face embedded on several alignments), because every block of the mean scales alike."""
    fused = np.asarray(fused, np.float32)
    edges = np.cumsum([0, *dims])
    if edges[-1] != fused.shape[-1]:
        raise ValueError(f"blocks of {list(dims)} do not make vectors of {fused.shape[-1]}")
    blocks = [fused[..., a:b] * (g_new / g) for a, b, g, g_new in zip(edges[:-1], edges[1:], gains, new_gains)]
    return l2_normalise(np.concatenate(blocks, axis=-1))
