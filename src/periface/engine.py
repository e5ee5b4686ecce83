"""The pipeline in one object: detect -> align -> mask state -> embed -> match.

``Engine`` composes the stages; each stage lives in its own module and can be swapped by passing another object.
Models load lazily, on first use, once per Engine.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .config import Settings
from .detect import FaceFinder
from .embed import Embedder, create_embedder
from .errors import NoFaceError
from .faces import Faces
from .image import ImageInput, describe, load_image
from .mask.classify import MaskClassifier, default_mask_classifier
from .match import Calibration, Verification, calibration_for, similarity


class Engine:
    """Find, describe and compare faces, masked or not.

    >>> eng = Engine()
    >>> faces = eng.analyze("tests/fixtures/two_people.jpg")
    >>> len(faces), faces.embeddings.shape
    (2, (2, 128))
    >>> eng.verify("tests/fixtures/obama.jpg", "tests/fixtures/obama2.jpg").same
    True
    """

    def __init__(
        self,
        embedder: str | Embedder = "sface",
        *,
        finder: FaceFinder | None = None,
        mask_classifier: MaskClassifier | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.embedder = create_embedder(embedder) if isinstance(embedder, str) else embedder
        self.finder = finder or FaceFinder.default(self.settings)
        self._mask_classifier = mask_classifier
        self._calibration: Calibration | None = None

    @property
    def mask_classifier(self) -> MaskClassifier:
        if self._mask_classifier is None:
            self._mask_classifier = default_mask_classifier()
        return self._mask_classifier

    @property
    def calibration(self) -> Calibration:
        if self._calibration is None:
            self._calibration = calibration_for(self.embedder.name)
        return self._calibration

    def load(self, source: ImageInput) -> np.ndarray:
        return load_image(source, self.settings)

    def analyze(self, img: ImageInput, *, crop: bool = False, embed: bool = True, mask: bool = True) -> Faces:
        """Every face in ``img`` with boxes, landmarks, mask state and embeddings.

        ``crop=True`` says the image is already a face crop: the result then always holds exactly one face.
        """
        rgb = self.load(img)
        faces = self.finder.find_in_crop(rgb) if crop else self.finder.find(rgb)
        return self.describe(rgb, faces, embed=embed, mask=mask)

    def describe(self, rgb: np.ndarray, faces: Faces, *, embed: bool = True, mask: bool = True) -> Faces:
        """Fill the mask and embedding fields of faces already found in ``rgb``."""
        if len(faces) == 0:
            faces.mask, faces.mask_score = [], np.zeros((0,), np.float32)
            faces.embeddings = np.zeros((0, self.embedder.dim), np.float32) if embed else None
            return faces
        if mask:
            faces.mask, faces.mask_score = self.mask_classifier.classify(rgb, faces)
        if embed:
            faces.embeddings = self.embedder.embed(rgb, faces.boxes, faces.landmarks)
        return faces

    def face(self, img: ImageInput, *, crop: bool = False, name: str | None = None) -> Faces:
        """The one face a 1:1 or 1:N request is about: the largest, with a note when there were several."""
        faces = self.analyze(img, crop=crop)
        if len(faces) == 0:
            raise NoFaceError("no face found", source=name or describe(img))
        if len(faces) > 1:
            note = f"{len(faces)} faces found; the largest was used"
            faces = faces.select(faces.largest())
            faces.notes.append(note)
        return faces

    def embed(self, img: ImageInput, *, crop: bool = False) -> np.ndarray:
        """(D,) embedding of the largest face. Raises ``NoFaceError`` when there is none."""
        return self.face(img, crop=crop).embeddings[0]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
        """Cosine similarity of embeddings: (D,) x (D,) -> float; (N, D) x (M, D) -> (N, M)."""
        return similarity(a, b)

    def verify(
        self, a: ImageInput, b: ImageInput, *, far: float | None = None, crop: bool = False
    ) -> Verification:
        """Are ``a`` and ``b`` the same person? Images or (D,) embeddings; threshold set at ``far`` (default 1e-3)."""
        target = self.settings.verify_far if far is None else far
        notes: list[str] = []
        vectors = []
        for label, item in (("first", a), ("second", b)):
            if isinstance(item, np.ndarray) and item.ndim == 1:
                vectors.append(item)
                continue
            face = self.face(item, crop=crop)
            notes += [f"{label} image: {n}" for n in face.notes]
            if face.mask and face.mask[0] != "none":
                notes.append(f"{label} image: mask worn ({face.mask[0]})")
            vectors.append(face.embeddings[0])
        score = float(similarity(vectors[0], vectors[1]))
        threshold = self.calibration.threshold(target)
        return Verification(
            score=score,
            same=score >= threshold,
            threshold=threshold,
            far=float(self.calibration.far(score)),
            target_far=target,
            notes=tuple(notes),
        )

    def embed_many(self, images: Sequence[ImageInput], *, crop: bool = False) -> list[np.ndarray | None]:
        """Embeddings of the largest face of each image; ``None`` where no face was found."""
        out: list[np.ndarray | None] = []
        for img in images:
            try:
                out.append(self.embed(img, crop=crop))
            except NoFaceError:
                out.append(None)
        return out
