"""The one place that knows the alignment template.

Faces are warped with a similarity transform that maps their five landmarks onto the ArcFace 112x112 template
(the one SFace and most modern recognisers were trained on).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Eye (image left), eye (image right), nose tip, mouth left, mouth right, in a 112x112 crop.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity (rotation, uniform scale, translation) taking ``src`` points to ``dst`` (Umeyama)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]]).astype(np.float32)


def align_face(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp one face to the ``size`` x ``size`` ArcFace template. ``landmarks`` is (5, 2) in image pixels."""
    template = ARCFACE_112 * (size / 112.0)
    matrix = similarity_transform(landmarks, template)
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def align_faces(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """(N, 5, 2) landmarks -> (N, size, size, 3) aligned RGB crops."""
    if len(landmarks) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([align_face(rgb, lm, size) for lm in landmarks])


def template_landmarks_for_box(box: np.ndarray) -> np.ndarray:
    """Where the template's five points fall in ``box`` (xyxy) when the box is taken to be a tight face crop.

    Used when nothing better is known: a face crop in which no detector found landmarks.
    """
    x0, y0, x1, y1 = [float(v) for v in box]
    # The template face spans roughly x 0.19..0.81 and y 0.12..0.98 of a 112 crop; map that span onto the box.
    norm = (ARCFACE_112 - np.array([21.0, 13.0])) / np.array([70.0, 96.0])
    return (norm * np.array([x1 - x0, y1 - y0]) + np.array([x0, y0])).astype(np.float32)


#: Face Mesh contour points of each eye (image left, image right): what a mask never covers.
EYE_MESH_POINTS = (
    (33, 133, 159, 145, 160, 144, 158, 153, 157, 154, 155, 173, 246, 161, 163, 7),
    (362, 263, 386, 374, 385, 380, 387, 373, 384, 381, 382, 398, 466, 388, 390, 249),
)
EYE_ALIGNMENT_FILE = "eye_alignment.json"


def eye_frame(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origin, 2x2 matrix) of the similarity taking image points to a frame where the eyes' centres are (0, 0)
    and (1, 0): mesh points in that frame describe the eyes' shape apart from position, size and roll."""
    left, right = (mesh[list(idx), :2].mean(0) for idx in EYE_MESH_POINTS)
    d = right - left
    s = float(np.hypot(*d))
    c, si = d / s
    return left, np.array([[c, si], [-si, c]]) / s


def to_eye_frame(points: np.ndarray, frame: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(N, 2) image points in the eye frame of ``eye_frame``."""
    origin, rot = frame
    return (points[:, :2] - origin) @ rot.T


def eye_features(mesh: np.ndarray, frame: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The eyes' 32 mesh points in the eye frame (``frame``: the mesh's, when already computed), flattened (64,)."""
    idx = list(EYE_MESH_POINTS[0] + EYE_MESH_POINTS[1])
    return to_eye_frame(mesh[idx], frame or eye_frame(mesh)).ravel()


@dataclass(frozen=True)
class EyeAnchoredPoints:
    """The five alignment points of a masked face placed from its eyes alone.

    A detector's five points on a masked face are guesses for the nose and mouth, and its eye points drift with
    them (on LFW renders ~5 px in the 112 crop against the same face unmasked; Face Mesh's eyes move ~1 px). A
    linear model fitted on *unmasked* faces (``scripts/fit_eye_alignment.py``: Face Mesh eye points in the eye
    frame -> the detector's five points) places all five from the eyes. ``Engine`` averages the embeddings of a
    masked face aligned on these points, on the detector's and on BlazeFace's (see ``Engine.describe``).
    """

    coef: np.ndarray  # (10, 64)
    intercept: np.ndarray  # (10,)
    sha256: str

    @classmethod
    def load(cls, name: str = EYE_ALIGNMENT_FILE) -> "EyeAnchoredPoints":
        import json

        from .models import packaged_file, recorded_sha256

        path = packaged_file(name)  # SHA-256 checked
        doc = json.loads(path.read_text())
        return cls(np.array(doc["coef"], np.float64), np.array(doc["intercept"], np.float64), recorded_sha256(path))

    def __call__(self, mesh: np.ndarray) -> np.ndarray:
        """(5, 2) float32 image points from a (468, 2|3) Face Mesh."""
        origin, rot = frame = eye_frame(mesh)
        in_frame = (self.coef @ eye_features(mesh, frame) + self.intercept).reshape(5, 2)
        return (in_frame @ np.linalg.inv(rot).T + origin).astype(np.float32)
