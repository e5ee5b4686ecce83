"""Mask state: none, correct (nose and mouth covered) or incorrect (nose or mouth uncovered).

Three small CNNs (4 conv layers, 324k parameters each) look at a square crop of 1.25x the face box, 64 px, and at
its mirror image; their probabilities of the three states are averaged inside one ONNX graph. They were trained by
``scripts/train_mask_classifier.py`` (torch, seeds 0-2; on a GPU machine, same script, docs/crowds.md) on
real crops, MaskedFace-Net, renders of ``periface.mask.render`` and the train split of the mask-scenes faces, and
ships as ONNX (``data/mask_state.onnx``), run with onnxruntime; its SHA-256 is checked before loading.

Working from the box rather than from aligned landmarks keeps it usable on the 10-30 px faces of crowds, where
five landmarks are guesses.

>>> labels, mask_score = default_mask_classifier().classify(rgb, faces)   # doctest: +SKIP
>>> labels, mask_score                                                    # doctest: +SKIP
(['correct', 'none'], array([0.99, 0.02], dtype=float32))
"""

from __future__ import annotations

import json
import threading
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..faces import MASK_STATES, Faces
from ..image import cnn_input, context_crops
from ..models import PACKAGE_DATA, file_sha256, onnx_session, recorded_sha256, verified

MODEL_FILE = PACKAGE_DATA / "mask_state.onnx"
INPUT_PX = 64
CONTEXT = 1.25  # crop side / longest box side


class MaskClassifier(Protocol):
    def classify(self, rgb: np.ndarray, faces: Faces) -> tuple[list[str], np.ndarray]:
        """Per face: a state in ``MASK_STATES`` and the probability that a mask is worn at all."""
        ...


def states_from_probabilities(p: np.ndarray) -> list[str]:
    """Labels from (N, 3) probabilities: masked when P(mask) = P(correct) + P(incorrect) >= 0.5, then how it is worn.

    A plain argmax over three classes calls a face unmasked at, say, 0.45 / 0.35 / 0.20 although a mask is more
    likely than not; deciding mask-or-not on the marginal first routes more real masked faces to the masked path
    (held-out real crops: 97.9% -> 98.4%) and fixes scene faces whose mask the CNN could not place (93.1% -> 94.4%).
    """
    worn = 1 + p[:, 1:].argmax(axis=1)
    return [MASK_STATES[0] if row[0] >= 0.5 else MASK_STATES[w] for row, w in zip(p, worn)]


class OnnxMaskClassifier:
    """The shipped CNN behind ``MaskClassifier``; one onnxruntime session, single-threaded, loaded once."""

    def __init__(self, path: Path = MODEL_FILE) -> None:
        self._session = onnx_session(path, threads=1)
        self._path = Path(path)
        self._lock = threading.Lock()

    @cached_property
    def fingerprint(self) -> str:
        """Names the weights (for the benchmarks' embedding caches); hashed on first use, not on every load."""
        return f"mask_state:{file_sha256(self._path)[:16]}"

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> "OnnxMaskClassifier":
        return cls(verified(path, recorded_sha256(path), "mask classifier"))

    def probabilities_of_inputs(self, crops: np.ndarray) -> np.ndarray:
        """(N, 64, 64, 3) uint8 crops (from ``context_crop``) -> (N, 3) probabilities in ``MASK_STATES`` order."""
        if len(crops) == 0:
            return np.zeros((0, 3), np.float32)
        with self._lock:
            logits = self._session.run(None, {"image": cnn_input(crops)})[0]
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def probabilities(self, rgb: np.ndarray, faces: Faces) -> np.ndarray:
        """(N, 3) probabilities of none / correct / incorrect for each face of ``faces`` in ``rgb``."""
        return self.probabilities_of_inputs(context_crops(rgb, faces.boxes, CONTEXT, INPUT_PX))

    def classify(self, rgb: np.ndarray, faces: Faces) -> tuple[list[str], np.ndarray]:
        p = self.probabilities(rgb, faces)
        return states_from_probabilities(p), (1.0 - p[:, 0]).astype(np.float32)


def default_mask_classifier() -> MaskClassifier:
    return OnnxMaskClassifier.load()


# ------------------------------------------------------------------------------------ nose and mouth visibility

# Face Mesh points: nose tip and wings; the lips' outer contour; skin under each eye (never under a worn mask).
_NOSE_POINTS = (1, 4, 5, 98, 327, 2)
_MOUTH_POINTS = (0, 13, 14, 17, 61, 291, 37, 267, 84, 314)
_SKIN_POINTS = (118, 347, 117, 346, 50, 280)
_PARTS = (_NOSE_POINTS, _MOUTH_POINTS)
_SKIN_SIGMA = 9.0  # Lab chroma distance (a*, b*) at which a patch stops looking like the face's own skin


VISIBILITY_FILE = PACKAGE_DATA / "visibility.json"  # logistic weights per part, ``benchmarks/nose_mouth_visibility.py --fit``


def nose_mouth_visibility(
    rgb: np.ndarray, faces: Faces, probabilities: np.ndarray | None = None, landmarker=None, min_face_px: int = 24
) -> np.ndarray:
    """(N, 2) probabilities that the nose and the mouth of each face are visible (not under a mask).

    Two cues: the mask-state CNN (``probabilities``, from ``OnnxMaskClassifier.probabilities``; computed when
    None), and the colour at nose and lips against the skin under the eyes (``skin_likeness``). A face "none" shows
    both; "incorrect" almost always shows the nose, and shows the mouth when the lips look like skin (a mask under
    the chin). A logistic model per part, fitted on the train split of real, MaskedFace-Net, scene and rendered faces
    (``VISIBILITY_FILE``), weighs them.

    >>> nose_mouth_visibility(rgb, faces)[:, 0]        # doctest: +SKIP
    array([0.98, 0.03], dtype=float32)
    """
    if probabilities is None:
        probabilities = OnnxMaskClassifier.load().probabilities(rgb, faces) if len(faces) else np.zeros((0, 3))
    return visibility_from_cues(probabilities, skin_likeness(rgb, faces, landmarker, min_face_px))


def skin_likeness(rgb: np.ndarray, faces: Faces, landmarker=None, min_face_px: int = 24) -> np.ndarray:
    """(N, 2) how much the nose and the lips look like the face's own skin, in [0, 1] (1: same chroma).

    Face Mesh places both even under a mask; their (a*, b*) chroma is compared with the skin under the eyes. Faces
    under ``min_face_px`` or without a mesh get 0.5 (no evidence).
    """
    out = np.full((len(faces), len(_PARTS)), 0.5, np.float32)
    if len(faces) == 0:
        return out
    if landmarker is None:
        from ..landmarks.facemesh import FaceMeshLandmarker

        landmarker = FaceMeshLandmarker()
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    for i, box in enumerate(faces.boxes):
        if min(box[2] - box[0], box[3] - box[1]) < min_face_px:
            continue
        mesh = landmarker.landmarks(rgb, box)
        if mesh is None:
            continue
        radius = max(1, int(0.04 * (box[2] - box[0])))
        skin = patch_chroma(lab, mesh[list(_SKIN_POINTS), :2], radius)
        for j, pts in enumerate(_PARTS):
            out[i, j] = skin_similarity(patch_chroma(lab, mesh[list(pts), :2], radius), skin)
    return out


def skin_similarity(chroma: np.ndarray, skin_chroma: np.ndarray) -> float:
    """1 when a patch has the (a*, b*) chroma of the face's own skin, falling off over ``_SKIN_SIGMA``."""
    return float(np.exp(-0.5 * (np.linalg.norm(chroma - skin_chroma) / _SKIN_SIGMA) ** 2))


def visibility_features(probabilities: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """The logistic models' inputs: P(none), P(incorrect), the skin-likenesses, and each gated by P(incorrect)."""
    p_none, p_incorrect = probabilities[:, :1], probabilities[:, 2:3]
    return np.hstack([p_none, p_incorrect, skin, p_incorrect * skin]).astype(np.float64)


def visibility_from_cues(probabilities: np.ndarray, skin: np.ndarray, path: Path = VISIBILITY_FILE) -> np.ndarray:
    """(N, 2) visibility of nose and mouth from the CNN's probabilities and ``skin_likeness``."""
    if len(probabilities) == 0:
        return np.zeros((0, 2), np.float32)
    params = _visibility_params(path)
    x = visibility_features(np.asarray(probabilities), np.asarray(skin))
    z = np.column_stack([x @ np.array(params[part]["coef"]) + params[part]["intercept"] for part in ("nose", "mouth")])
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


@lru_cache(maxsize=4)
def _visibility_params(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def patch_chroma(lab: np.ndarray, points: np.ndarray, radius: int) -> np.ndarray:
    """Median (a*, b*) of small squares around the given (K, 2) pixel points of a Lab image."""
    h, w = lab.shape[:2]
    values = []
    for x, y in points:
        xi, yi = int(round(x)), int(round(y))
        patch = lab[max(0, yi - radius):min(h, yi + radius + 1), max(0, xi - radius):min(w, xi + radius + 1), 1:]
        if patch.size:
            values.append(patch.reshape(-1, 2))
    return np.median(np.concatenate(values), axis=0) if values else np.zeros(2, np.float32)
