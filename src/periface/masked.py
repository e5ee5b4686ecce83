"""The masked path: how a masked probe is compared with references photographed without a mask.

Two mechanisms, combined by weights learned on LFW View-1 only (``scripts/train_masked_path.py``):

* masked references: the reference face is re-rendered wearing ``variants`` different synthetic masks (worn
  correctly), each embedded with the reference's own landmarks; a masked probe is compared with those, so both
  sides hide the same part of the face. In a gallery these are the ``masked`` templates stored at enrolment.
* an unmasking adapter (``embed.adapter``): a small residual network that maps the embedding of a masked face
  toward the embedding of the same face unmasked; the adapted probe is compared with the plain references.

The fused score has its own calibration (``data/calibration/<embedder>-masked.json``): masked faces look more
alike to each other, so the same cosine means a different false accept rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .embed.base import Embedder
from .models import PACKAGE_DATA

PARAMS_FILE = PACKAGE_DATA / "masked_path.json"


@dataclass(frozen=True)
class MaskedPathParams:
    variants: int = 3  # masked renders per reference face
    weight_masked_refs: float = 0.5  # weight of the masked-reference score; the rest goes to the adapted score
    adapter: str | None = None  # file name in data/ of the adapter for this embedder, or None

    @classmethod
    def load(cls, embedder: str, path: Path = PARAMS_FILE) -> "MaskedPathParams":
        if not path.exists():
            return cls()
        doc = json.loads(path.read_text()).get(embedder)
        return cls(**doc["params"]) if doc else cls()


def render_masked_variants(rgb: np.ndarray, box: np.ndarray, n: int, seed: int, landmarker=None) -> list[np.ndarray]:
    """``n`` copies of ``rgb`` with the face in ``box`` wearing different masks (nose and mouth covered).

    Empty when Face Mesh cannot place a mask on that face.
    """
    from .landmarks.facemesh import shared_landmarker
    from .mask.render import random_style, render_mask

    if n == 0:  # a masked path without masked references (the fusion's)
        return []
    landmarker = landmarker or shared_landmarker()
    mesh = landmarker.landmarks(rgb, box)
    if mesh is None:
        return []
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        out.append(render_mask(rgb, mesh, random_style(rng, coverage="full"), rng).image)
    return out


def masked_reference_embeddings(
    embedder: Embedder, rgb: np.ndarray, box: np.ndarray, landmarks: np.ndarray, n: int, seed: int
) -> np.ndarray:
    """(k, D) embeddings of the reference face wearing k <= n rendered masks, aligned with its unmasked landmarks."""
    variants = render_masked_variants(rgb, box, n, seed)
    if not variants:
        return np.zeros((0, embedder.dim), np.float32)
    return np.concatenate([embedder.embed(v, box[None], landmarks[None]) for v in variants])


def masked_reference_scores(probes: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(P, R) best score of each probe (P, D) against each reference's masked renders (R, k, D); NaN renders are
    ignored, and a reference with none at all scores NaN (``fuse`` then falls back to the adapted score)."""
    import warnings

    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: references Face Mesh could not mask
        return np.nanmax(np.einsum("rkd,pd->prk", refs, probes), axis=2)


def fuse(adapted_score: np.ndarray | float, masked_ref_score: np.ndarray | float, weight_masked_refs: float):
    """Weighted sum; where no masked reference exists (NaN), the adapted score alone."""
    a = np.asarray(adapted_score, np.float64)
    m = np.asarray(masked_ref_score, np.float64)
    fused = np.where(np.isfinite(m), weight_masked_refs * m + (1 - weight_masked_refs) * a, a)
    return float(fused) if fused.ndim == 0 else fused


@lru_cache(maxsize=None)
def params_for(embedder: str) -> MaskedPathParams:
    return MaskedPathParams.load(embedder)
