"""The pipeline in one object: detect -> align -> mask state -> embed -> match.

``Engine`` composes the stages; each stage lives in its own module and can be swapped by passing another object.
Models load lazily, on first use, once per Engine.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .align import EyeAnchoredPoints
from .config import Settings
from .detect import FaceFinder
from .embed import Embedder, create_embedder
from .errors import NoFaceError
from .faces import Faces
from .image import ImageInput, describe, load_image
from .mask.classify import MaskClassifier, default_mask_classifier, states_from_probabilities
from .masked import MaskedPathParams, fuse, masked_reference_embeddings, params_for
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
        embedder: str | Embedder | None = None,
        *,
        finder: FaceFinder | None = None,
        mask_classifier: MaskClassifier | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        embedder = self.settings.embedder if embedder is None else embedder
        self.embedder = create_embedder(embedder, self.settings.threads, self.settings.flip) if isinstance(embedder, str) else embedder
        self.finder = finder or FaceFinder.default(self.settings)
        self._mask_classifier = mask_classifier
        self._calibration: Calibration | None = None
        self._masked_calibration: Calibration | None = None
        self._adapter = None
        self._eye_points: EyeAnchoredPoints | None = None
        self._masked_keypoints = None

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

    # --- the masked path (see periface.masked) ----------------------------------------------------------------

    @property
    def masked_params(self) -> MaskedPathParams:
        return params_for(self.embedder.name)

    @property
    def has_masked_path(self) -> bool:
        """True when this embedder ships a masked-path calibration (else masked probes are matched plainly)."""
        try:
            self.masked_calibration
        except FileNotFoundError:
            return False
        return True

    @property
    def masked_calibration(self) -> Calibration:
        if self._masked_calibration is None:
            self._masked_calibration = calibration_for(f"{self.embedder.name}-masked")
        return self._masked_calibration

    def adapt(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings of masked faces mapped toward their unmasked counterparts (identity if no adapter ships)."""
        name = self.masked_params.adapter
        if name is None:
            return np.atleast_2d(embeddings)
        if self._adapter is None:
            from .embed.adapter import EmbeddingAdapter

            self._adapter = EmbeddingAdapter.load(name)
        return self._adapter(embeddings)

    def masked_references(self, rgb: np.ndarray, faces: Faces, seed: int = 0) -> np.ndarray:
        """(k, D) embeddings of the first face in ``faces`` re-rendered wearing k masks (k = masked_params.variants)."""
        return masked_reference_embeddings(self.embedder, rgb, faces.boxes[0], faces.landmarks[0],
                                           self.masked_params.variants, seed)

    def masked_score(self, probe: np.ndarray, reference: np.ndarray, masked_refs: np.ndarray) -> float:
        """Fused masked-path score of a masked probe against an unmasked reference and its masked renders."""
        adapted = float(self.adapt(probe)[0] @ reference)
        refs = float(np.max(masked_refs @ probe)) if len(masked_refs) else float("nan")
        return float(fuse(adapted, refs, self.masked_params.weight_masked_refs))

    def load(self, source: ImageInput) -> np.ndarray:
        return load_image(source, self.settings)

    def analyze(self, img: ImageInput, *, crop: bool = False, embed: bool = True, mask: bool = True) -> Faces:
        """Every face in ``img`` with boxes, landmarks, mask state and embeddings.

        ``crop=True`` says the image is already a face crop: the result then always holds exactly one face.
        """
        rgb = self.load(img)
        return self.describe(rgb, self._find(rgb, crop), embed=embed, mask=mask)

    def _find(self, rgb: np.ndarray, crop: bool) -> Faces:
        return self.finder.find_in_crop(rgb) if crop else self.finder.find(rgb)

    def describe(self, rgb: np.ndarray, faces: Faces, *, embed: bool = True, mask: bool = True,
                 visibility: bool = True) -> Faces:
        """Fill the mask and embedding fields of faces already found in ``rgb``.

        ``visibility=False`` skips Face Mesh's nose/mouth visibility (the mask state alone routes a comparison).
        """
        if len(faces) == 0:
            faces.mask, faces.mask_score = [], np.zeros((0,), np.float32)
            faces.embeddings = np.zeros((0, self.embedder.dim), np.float32) if embed else None
            return faces
        from .landmarks.facemesh import MeshesOfOneImage, shared_landmarker

        meshes = MeshesOfOneImage(shared_landmarker(), rgb) if mask else None
        if mask:
            self._describe_mask(rgb, faces, meshes, visibility=visibility)
        if embed:
            faces.embeddings = self.embedder.embed(rgb, faces.boxes, faces.landmarks)
            if mask and self.aligns_masked_faces_three_ways:
                self._embed_masked_faces_three_ways(rgb, faces, meshes)
        return faces

    @property
    def aligns_masked_faces_three_ways(self) -> bool:
        """Whether masked faces are embedded on three alignments (``_embed_masked_faces_three_ways``). Measured and
        shipped for masked paths without an unmasking adapter (sface-robust's); an adapter was fitted on embeddings
        of detector-aligned masked faces, so an engine whose masked path uses one (SFace) keeps that alignment."""
        return self.settings.masked_eye_alignment and self.masked_params.adapter is None

    @property
    def eye_points(self) -> EyeAnchoredPoints:
        if self._eye_points is None:
            self._eye_points = EyeAnchoredPoints.load()
        return self._eye_points

    def _embed_masked_faces_three_ways(self, rgb: np.ndarray, faces: Faces, meshes=None) -> None:
        """A masked face's embedding is the mean over three alignments: the detector's five points, five placed from
        the eyes Face Mesh finds above the mask (``align.EyeAnchoredPoints``) and BlazeFace's keypoints. Under a mask
        each source errs in its own way (the detector's eye points drift with its guesses for nose and mouth), and
        the mean of the three embeddings is closer to the unmasked face than any one. A source that finds nothing
        is left out."""
        masked = np.flatnonzero(np.array(faces.mask) != "none")
        if len(masked) == 0:
            return
        blaze = self.masked_keypoint_detector.detect(rgb)
        for i in masked:
            points = list(self.masked_alignments(rgb, faces.boxes[i], blaze, meshes).values())
            if not points:
                continue
            box = faces.boxes[i : i + 1]
            others = self.embedder.embed(rgb, np.repeat(box, len(points), axis=0), np.stack(points))
            mean = faces.embeddings[i] + others.sum(axis=0)
            faces.embeddings[i] = mean / np.linalg.norm(mean)

    def masked_alignments(self, rgb: np.ndarray, box: np.ndarray, blaze: Faces | None = None,
                          meshes=None) -> dict[str, np.ndarray]:
        """The (5, 2) alignments a masked face in ``box`` gets besides the detector's, where found: ``"eyes"`` (from
        Face Mesh) and ``"blazeface"`` (the BlazeFace face overlapping ``box`` with IoU > 0.3; ``blaze``: its
        detections in ``rgb`` when already run; ``meshes``: a ``MeshesOfOneImage`` of ``rgb``, when there is one)."""
        from .detect.base import iou_matrix
        from .landmarks.facemesh import shared_landmarker

        out = {}
        mesh = (meshes or shared_landmarker()).landmarks(rgb, box)
        if mesh is not None:
            out["eyes"] = self.eye_points(mesh)
        blaze = self.masked_keypoint_detector.detect(rgb) if blaze is None else blaze
        if len(blaze):
            overlap = iou_matrix(np.asarray(box, np.float32)[None], blaze.boxes)[0]
            if overlap.max() > 0.3:
                out["blazeface"] = blaze.landmarks[int(np.argmax(overlap))]
        return out

    @property
    def masked_alignments_fingerprint(self) -> str:
        """What the extra alignments of masked faces depend on (for caches of their embeddings)."""
        return f"masked-alignments:detector+eyes:{self.eye_points.sha256}+{self.masked_keypoint_detector.fingerprint}"

    @property
    def masked_keypoint_detector(self):
        """BlazeFace short range at score 0.3: the third alignment of masked faces (its eyes, nose, mouth centre)."""
        if self._masked_keypoints is None:
            from .detect.blazeface import BlazeFaceDetector

            self._masked_keypoints = BlazeFaceDetector("short", score_threshold=0.3)
        return self._masked_keypoints

    def _describe_mask(self, rgb: np.ndarray, faces: Faces, meshes, *, visibility: bool = True) -> None:
        """Mask state and P(mask); with the shipped CNN also nose/mouth visibility, from one pass of the CNN."""
        probabilities = getattr(self.mask_classifier, "probabilities", None)
        if probabilities is None:  # a classifier that only labels (e.g. a test's fake)
            faces.mask, faces.mask_score = self.mask_classifier.classify(rgb, faces)
            return
        p = probabilities(rgb, faces)
        faces.mask = states_from_probabilities(p)
        faces.mask_score = (1.0 - p[:, 0]).astype(np.float32)
        if visibility and self.settings.nose_mouth_visibility:
            from .mask.classify import nose_mouth_visibility

            visible = nose_mouth_visibility(rgb, faces, p, landmarker=meshes)
            faces.nose_visible, faces.mouth_visible = visible[:, 0], visible[:, 1]

    def face(self, img: ImageInput, *, crop: bool = False, name: str | None = None) -> Faces:
        """The one face a 1:1 or 1:N request is about: the largest, with a note when there were several.

        Only that face is described (mask state and embedding; no Face Mesh visibility): background faces cost
        nothing, which matters for verify and search throughput.
        """
        rgb = self.load(img)
        faces = self._find(rgb, crop)
        if len(faces) == 0:
            raise NoFaceError("no face found", source=name or describe(img))
        if len(faces) > 1:
            note = f"{len(faces)} faces found; the largest was used"
            faces = faces.select(faces.largest())
            faces.notes.append(note)
        return self.describe(rgb, faces, visibility=False)

    def embed(self, img: ImageInput, *, crop: bool = False) -> np.ndarray:
        """(D,) embedding of the largest face. Raises ``NoFaceError`` when there is none."""
        return self.face(img, crop=crop).embeddings[0]

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
        """Cosine similarity of embeddings: (D,) x (D,) -> float; (N, D) x (M, D) -> (N, M)."""
        return similarity(a, b)

    def verify(
        self, a: ImageInput, b: ImageInput, *, far: float | None = None, crop: bool = False
    ) -> Verification:
        """Are ``a`` and ``b`` the same person? Images or (D,) embeddings; threshold set at ``far`` (default 1e-3).

        When exactly one image shows a masked face, the masked path decides: the masked face is compared with the
        other one re-rendered wearing masks and, through the unmasking adapter, with the other one as it is; the
        threshold then comes from the masked-path calibration.
        """
        target = self.settings.verify_far if far is None else far
        notes: list[str] = []
        sides = []
        for label, item in (("first", a), ("second", b)):
            if isinstance(item, np.ndarray) and item.ndim == 1:
                sides.append((np.asarray(item, np.float32), None, None, False))
                continue
            rgb = self.load(item)
            face = self.face(rgb, crop=crop, name=describe(item))
            notes += [f"{label} image: {n}" for n in face.notes]
            masked = bool(face.mask) and face.mask[0] != "none"
            if masked:
                notes.append(f"{label} image: mask worn ({face.mask[0]})")
            sides.append((face.embeddings[0], face, rgb, masked))
        (ea, fa, ra, ma), (eb, fb, rb, mb) = sides
        calibration, mode = self.calibration, "plain"
        score = float(similarity(ea, eb))
        if ma != mb and self.has_masked_path:
            probe, ref, ref_face, ref_rgb = (ea, eb, fb, rb) if ma else (eb, ea, fa, ra)
            refs = self.masked_references(ref_rgb, ref_face) if ref_rgb is not None else np.zeros((0, len(probe)))
            score = self.masked_score(probe, ref, refs)
            calibration, mode = self.masked_calibration, "masked"
        threshold = calibration.threshold(target)
        return Verification(
            score=score,
            same=score >= threshold,
            threshold=threshold,
            far=float(calibration.far(score)),
            target_far=target,
            notes=tuple(notes),
            mode=mode,
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
