"""The one container that flows through the pipeline. Each stage fills its own fields."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

MASK_STATES = ("none", "correct", "incorrect")


@dataclass
class Faces:
    """Faces found in one image, vectorised: row ``i`` of every field is face ``i``.

    >>> faces = Engine().analyze("tests/fixtures/two_people.jpg")   # doctest: +SKIP
    >>> faces.boxes.shape, faces.embeddings.shape                   # doctest: +SKIP
    ((2, 4), (2, 128))
    """

    boxes: np.ndarray  # (N, 4) float32 xyxy, pixels of the input image
    scores: np.ndarray  # (N,) detector confidence
    landmarks: np.ndarray  # (N, 5, 2): eye (image left), eye (image right), nose tip, mouth left, mouth right
    image_size: tuple[int, int]  # (height, width)
    detector: list[str] = field(default_factory=list)  # which detector found each face
    mask: list[str] = field(default_factory=list)  # "none" | "correct" | "incorrect"
    mask_score: np.ndarray | None = None  # (N,) probability that a mask is worn (correctly or not)
    nose_visible: np.ndarray | None = None  # (N,) probability that the nose is not under a mask
    mouth_visible: np.ndarray | None = None  # (N,) probability that the mouth is not under a mask
    embeddings: np.ndarray | None = None  # (N, D) float32, L2-normalised
    notes: list[str] = field(default_factory=list)  # things a caller should know ("several faces, largest used")

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> "Faces":
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            landmarks=np.zeros((0, 5, 2), np.float32),
            image_size=image_size,
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def areas(self) -> np.ndarray:
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def largest(self) -> int:
        """Index of the largest face. Raises ``IndexError`` when there is none."""
        if len(self) == 0:
            raise IndexError("no faces")
        return int(np.argmax(self.areas))

    def select(self, index: Any) -> "Faces":
        """A new ``Faces`` holding only the rows ``index`` (an int, a slice, a mask or a list)."""
        idx = np.atleast_1d(np.arange(len(self))[index])

        def pick(values: list[str]) -> list[str]:
            return [values[i] for i in idx] if values else []

        return replace(
            self,
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            landmarks=self.landmarks[idx],
            detector=pick(self.detector),
            mask=pick(self.mask),
            mask_score=None if self.mask_score is None else self.mask_score[idx],
            nose_visible=None if self.nose_visible is None else self.nose_visible[idx],
            mouth_visible=None if self.mouth_visible is None else self.mouth_visible[idx],
            embeddings=None if self.embeddings is None else self.embeddings[idx],
            notes=list(self.notes),
        )

    def to_records(self, *, with_embeddings: bool = False) -> list[dict[str, Any]]:
        """One JSON-ready dict per face."""
        out = []
        for i in range(len(self)):
            rec: dict[str, Any] = {
                "box": [round(float(v), 1) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 4),
                "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks[i]],
                "detector": self.detector[i] if self.detector else None,
            }
            if self.mask:
                rec["mask"] = self.mask[i]
            if self.mask_score is not None:
                rec["mask_score"] = round(float(self.mask_score[i]), 4)
            if self.nose_visible is not None and self.mouth_visible is not None:
                rec["nose_visible"] = round(float(self.nose_visible[i]), 3)
                rec["mouth_visible"] = round(float(self.mouth_visible[i]), 3)
            if with_embeddings and self.embeddings is not None:
                rec["embedding"] = [round(float(v), 6) for v in self.embeddings[i]]
            out.append(rec)
        return out


def concat(parts: list[Faces], image_size: tuple[int, int]) -> Faces:
    """Stack detections from several detectors into one ``Faces``."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Faces.empty(image_size)
    return Faces(
        boxes=np.concatenate([p.boxes for p in parts]).astype(np.float32),
        scores=np.concatenate([p.scores for p in parts]).astype(np.float32),
        landmarks=np.concatenate([p.landmarks for p in parts]).astype(np.float32),
        image_size=image_size,
        detector=[d for p in parts for d in p.detector],
    )
