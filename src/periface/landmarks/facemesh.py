"""Dense landmarks: MediaPipe Face Mesh, 468 points per face, in pixel coordinates.

>>> from periface.image import load_image
>>> mesh = FaceMeshLandmarker().landmarks(load_image("tests/fixtures/obama.jpg"))
>>> mesh.shape, five_points(mesh).shape
((468, 3), (5, 2))

Index names below follow the subject's anatomy where MediaPipe does ("right" = the subject's right, which is the
image's left in a frontal photo); the ``IMAGE_LEFT_*`` / ``IMAGE_RIGHT_*`` aliases say where they land in the image.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..errors import ImageError

# --- index groups of the 468-point canonical mesh -------------------------------------------------------------
NOSE_TIP = 1
NOSE_BRIDGE = (168, 6, 197, 195, 5, 4)  # from between the eyes down to just above the tip
SUBNASALE = 2  # where the nose meets the upper lip
NOSTRILS = (98, 327)  # outer nostril wings, image left then image right
MOUTH_RIGHT = 61  # subject's right corner = image left
MOUTH_LEFT = 291  # subject's left corner = image right
MOUTH_CORNERS = (MOUTH_RIGHT, MOUTH_LEFT)
UPPER_LIP_TOP = 0
UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14
LOWER_LIP_BOTTOM = 17
UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)  # outer contour, image left to right
LOWER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
CHIN = (18, 200, 199, 175, 152)  # from below the lower lip down to the menton (152, lowest point)
MENTON = 152
# The lower face oval from the image-left ear level, around the chin, to the image-right ear level.
JAW_LINE = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
CHEEK_RIGHT = (50, 101, 118, 117, 123, 187, 205)  # subject's right cheek (image left)
CHEEK_LEFT = (280, 330, 347, 346, 352, 411, 425)
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)  # image left
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)  # image right
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
IMAGE_LEFT_EYE, IMAGE_RIGHT_EYE = RIGHT_EYE, LEFT_EYE
IMAGE_LEFT_EAR_LEVEL, IMAGE_RIGHT_EAR_LEVEL = 234, 454

N_POINTS = 468


def five_points(mesh: np.ndarray) -> np.ndarray:
    """The 5 alignment points in ArcFace order, as a (5, 2) float32 array.

    Order: the eye on the image's left (the subject's right eye), the eye on the image's right, the nose tip, the
    mouth corner on the image's left, the mouth corner on the image's right. Eye points are contour centroids.

    >>> five_points(mesh)[2]  # nose tip, (x, y) in pixels
    """
    mesh = np.asarray(mesh, dtype=np.float32)
    if mesh.ndim != 2 or mesh.shape[0] != N_POINTS or mesh.shape[1] < 2:
        raise ValueError(f"expected a ({N_POINTS}, 2|3) mesh, got {mesh.shape}")
    xy = mesh[:, :2]
    pts = np.stack([
        xy[list(RIGHT_EYE)].mean(axis=0),
        xy[list(LEFT_EYE)].mean(axis=0),
        xy[NOSE_TIP],
        xy[MOUTH_RIGHT],
        xy[MOUTH_LEFT],
    ])
    return pts.astype(np.float32)


def mesh_box(mesh: np.ndarray) -> np.ndarray:
    """The xyxy bounding box of a mesh's points (float32)."""
    xy = np.asarray(mesh)[:, :2]
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float32)


class FaceMeshLandmarker:
    """MediaPipe Face Mesh behind a small interface; the model is verified and loaded on first use.

    ``landmarks(rgb)`` returns the largest face's mesh, ``landmarks(rgb, box)`` the face inside ``box`` (xyxy
    pixels), found in a crop around the box so that small faces in crowds get the resolution they need.
    """

    def __init__(self, max_num_faces: int = 4, min_detection_confidence: float = 0.5, box_margin: float = 0.35,
                 crop_min_side: int = 192) -> None:
        self.max_num_faces = max_num_faces
        self.min_detection_confidence = min_detection_confidence
        self.box_margin = box_margin
        self.crop_min_side = crop_min_side
        self._mesh: Any = None
        self._first_face_seen = False
        self._lock = threading.Lock()

    def _model(self) -> Any:
        # Called with the lock held: MediaPipe graphs are not safe to share between threads.
        if self._mesh is None:
            from ..models import model_path, routine_native_notices_hidden

            model_path("face_mesh")  # raises ModelError if the shipped file is missing or altered
            from mediapipe.python.solutions import face_mesh as mp_face_mesh

            with routine_native_notices_hidden():
                self._mesh = mp_face_mesh.FaceMesh(
                    static_image_mode=True, refine_landmarks=False, max_num_faces=self.max_num_faces,
                    min_detection_confidence=self.min_detection_confidence,
                )
                self._mesh.process(np.zeros((64, 64, 3), np.uint8))  # its native threads log as they start
        return self._mesh

    def _run(self, rgb: np.ndarray) -> list[np.ndarray]:
        from ..models import routine_native_notices_hidden

        h, w = rgb.shape[:2]
        with self._lock:
            mesh = self._model()
            if self._first_face_seen:
                result = mesh.process(np.ascontiguousarray(rgb))
            else:  # the landmark stage logs a notice the first time it runs, on the first face found
                with routine_native_notices_hidden():
                    result = mesh.process(np.ascontiguousarray(rgb))
                self._first_face_seen = bool(result.multi_face_landmarks)
        faces = []
        for face in result.multi_face_landmarks or ():
            pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)
            pts[:, 0] *= w
            pts[:, 1] *= h
            pts[:, 2] *= w  # MediaPipe scales z like x
            faces.append(pts)
        return faces

    def landmarks(self, rgb: np.ndarray, box: np.ndarray | None = None) -> np.ndarray | None:
        """(468, 3) float32 pixel coordinates (x, y, z scaled like x) of one face, or None if none is found.

        >>> lm = FaceMeshLandmarker()
        >>> lm.landmarks(img)                                   # the largest face
        >>> lm.landmarks(img, np.array([120, 40, 180, 110]))    # the face inside this xyxy box
        """
        rgb = _check_rgb(rgb)
        if box is None:
            # Face Mesh misplaces its points on non-square frames (its ROI is assumed square), so the image is
            # padded to a square first and the points are mapped back.
            h, w = rgb.shape[:2]
            side = max(h, w)
            square = rgb
            if h != w:
                import cv2

                square = cv2.copyMakeBorder(rgb, 0, side - h, 0, side - w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            faces = self._run(square)
            if not faces:
                return None
            areas = [np.prod(np.ptp(f[:, :2], axis=0)) for f in faces]
            return faces[int(np.argmax(areas))]
        return self._in_box(rgb, np.asarray(box, dtype=np.float64).reshape(4))

    def _in_box(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = box
        if not np.all(np.isfinite(box)) or x1 <= x0 or y1 <= y0:
            raise ValueError(f"box must be a finite xyxy with x1 > x0 and y1 > y0, got {box.tolist()}")
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = max(x1 - x0, y1 - y0) * (1 + 2 * self.box_margin)
        cx0, cy0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        cx1, cy1 = int(round(cx + side / 2)), int(round(cy + side / 2))
        # Pad instead of clipping so the face stays centred in a square crop (what the detector expects).
        pad = ((max(0, -cy0), max(0, cy1 - h)), (max(0, -cx0), max(0, cx1 - w)), (0, 0))
        crop = rgb[max(0, cy0):min(h, cy1), max(0, cx0):min(w, cx1)]
        if crop.size == 0:
            return None
        if any(p for pair in pad[:2] for p in pair):
            import cv2

            crop = cv2.copyMakeBorder(crop, pad[0][0], pad[0][1], pad[1][0], pad[1][1], cv2.BORDER_REPLICATE)
        scale = 1.0
        if crop.shape[0] < self.crop_min_side:
            import cv2

            scale = self.crop_min_side / crop.shape[0]
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        faces = self._run(crop)
        if not faces:
            return None
        for f in faces:
            f /= scale
            f[:, 0] += cx0
            f[:, 1] += cy0
        # The face whose mesh box overlaps the requested box most.
        return max(faces, key=lambda f: _iou(mesh_box(f), box))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        desc = f"{rgb.shape} {rgb.dtype}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ImageError(f"expected an RGB uint8 array of shape (H, W, 3), got {desc}")
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ImageError(f"image of {rgb.shape[1]}x{rgb.shape[0]} pixels is too small for Face Mesh")
    return rgb


class MeshesOfOneImage:
    """Face Mesh for the faces of one image, run once per box: the stages that describe the same faces (nose and
    mouth visibility, the masked faces' eye alignment) share the result instead of each running it again."""

    def __init__(self, landmarker: FaceMeshLandmarker, rgb: np.ndarray) -> None:
        self._landmarker, self._rgb = landmarker, rgb
        self._by_box: dict[bytes, np.ndarray | None] = {}

    def landmarks(self, rgb: np.ndarray, box: np.ndarray | None = None) -> np.ndarray | None:
        if rgb is not self._rgb or box is None:
            return self._landmarker.landmarks(rgb, box)
        key = np.asarray(box, np.float64).reshape(4).tobytes()
        if key not in self._by_box:
            self._by_box[key] = self._landmarker.landmarks(rgb, box)
        return self._by_box[key]


_SHARED: FaceMeshLandmarker | None = None
_SHARED_LOCK = threading.Lock()


def shared_landmarker() -> FaceMeshLandmarker:
    """One process-wide landmarker (Face Mesh loads once; the instance serialises its own calls)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = FaceMeshLandmarker()
        return _SHARED
