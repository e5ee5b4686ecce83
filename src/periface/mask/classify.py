"""Mask state: none, correct (nose and mouth covered) or incorrect (nose or mouth uncovered).

Features are computed on the ArcFace-aligned face (so the nose and mouth sit at known places): HOG of the whole
face plus colour statistics of horizontal bands (eyes, nose, mouth, chin). A multinomial logistic regression on
top, trained by ``scripts/train_mask_classifier.py``; its arrays ship in ``data/mask_classifier.npz``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..align import align_faces
from ..errors import ModelError
from ..faces import MASK_STATES, Faces
from ..models import PACKAGE_DATA

CLASSIFIER_FILE = PACKAGE_DATA / "mask_classifier.npz"
_HOG = cv2.HOGDescriptor((64, 64), (16, 16), (8, 8), (8, 8), 9)
# Rows of the 112-px template: forehead/eyes, nose, upper lip/mouth, chin.
_BANDS = ((20, 60), (60, 78), (78, 98), (98, 112))


class MaskClassifier(Protocol):
    def classify(self, rgb: np.ndarray, faces: Faces) -> tuple[list[str], np.ndarray]:
        """Per face: a state in ``MASK_STATES`` and the probability that a mask is worn at all."""
        ...


def mask_features(aligned: np.ndarray) -> np.ndarray:
    """(N, 112, 112, 3) aligned RGB crops -> (N, F) float32 features."""
    out = []
    for crop in aligned:
        gray = cv2.cvtColor(cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        hog = _HOG.compute(gray).ravel()
        hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV).astype(np.float32)
        lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
        colour = []
        for y0, y1 in _BANDS:
            band = np.concatenate([hsv[y0:y1, 24:88], lab[y0:y1, 24:88]], axis=2).reshape(-1, 6)
            colour += [band.mean(0), band.std(0)]
        eyes = lab[_BANDS[0][0] : _BANDS[0][1], 24:88].reshape(-1, 3).mean(0)
        # How far each lower band's colour is from the eye region's skin: a mask is a different material.
        contrast = [np.abs(lab[y0:y1, 24:88].reshape(-1, 3).mean(0) - eyes) for y0, y1 in _BANDS[1:]]
        out.append(np.concatenate([hog, np.concatenate(colour) / 255.0, np.concatenate(contrast) / 255.0]))
    return np.asarray(out, np.float32)


class LinearMaskClassifier:
    """Standardised features -> softmax over (none, correct, incorrect)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> None:
        self.mean, self.scale, self.coef, self.intercept = mean, scale, coef, intercept

    @classmethod
    def load(cls, path: Path = CLASSIFIER_FILE) -> "LinearMaskClassifier":
        sums = path.with_name("SHA256SUMS")
        expected = _expected_digest(sums, path.name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        if digest is None or digest != expected:
            raise ModelError(f"mask classifier missing or altered (sha256 {digest}, expected {expected})", source=str(path))
        with np.load(path) as arrays:
            return cls(arrays["mean"], arrays["scale"], arrays["coef"], arrays["intercept"])

    def save(self, path: Path = CLASSIFIER_FILE) -> None:
        np.savez_compressed(path, mean=self.mean, scale=self.scale, coef=self.coef, intercept=self.intercept)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def classify_aligned(self, aligned: np.ndarray) -> tuple[list[str], np.ndarray]:
        if len(aligned) == 0:
            return [], np.zeros((0,), np.float32)
        p = self.probabilities(mask_features(aligned))
        labels = [MASK_STATES[i] for i in p.argmax(axis=1)]
        return labels, (1.0 - p[:, 0]).astype(np.float32)

    def classify(self, rgb: np.ndarray, faces: Faces) -> tuple[list[str], np.ndarray]:
        return self.classify_aligned(align_faces(rgb, faces.landmarks, 112))


def _expected_digest(sums_file: Path, name: str) -> str | None:
    if not sums_file.exists():
        return None
    for line in sums_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == name:
            return parts[0]
    return None


def default_mask_classifier() -> MaskClassifier:
    return LinearMaskClassifier.load()
