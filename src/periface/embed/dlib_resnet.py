"""dlib's ResNet (128-d) on 150x150 chips aligned by dlib's own 5-point shape predictor, as face_recognition does.

The shape predictor starts from a box and was trained on dlib's detectors' boxes, not YuNet's (taller: it includes
the forehead). So by default the points are predicted twice: from the detector's box, then from the box dlib's HOG
detector would draw around those points (``data/dlib_box.json``, ``scripts/fit_dlib_box.py``; one more predictor
run, ~1 ms). Each chip is also averaged with its mirror image. On LFW View-2 (``benchmarks/dlib_mirror.py``): plain
98.68%, mirrored 98.95%, mirrored with the re-seated box 99.17%. ``jitter`` > 1 is dlib's own test-time
augmentation: the mean over that many random resamplings of each chip (that many times slower, not deterministic).
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache

import numpy as np

from ..models import MODEL_FILES, PACKAGE_DATA, model_path, packaged_file, recorded_sha256
from .base import l2_normalise, mirror_averaged

DLIB_BOX_FILE = "dlib_box.json"


class DlibEmbedder:
    name = "dlib"
    dim = 128

    def __init__(self, jitter: int = 0, flip: bool = True, reseat: bool = True) -> None:
        self.jitter = jitter
        self.flip = flip
        self.reseat = reseat
        self.fingerprint = dlib_fingerprint(f"dlib-j{jitter}" + ("-flip" if flip else "")
                                            + (f"-reseat{recorded_sha256(PACKAGE_DATA / DLIB_BOX_FILE)[:8]}"
                                               if reseat else ""))
        self._models = None
        self._lock = threading.Lock()

    def _load(self):
        if self._models is None:
            self._models = load_dlib_models()
        return self._models

    def embed(self, rgb: np.ndarray, boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """dlib places its own five points from each box, so ``landmarks`` are not used, and a box given several
        times (one face under several alignments, as masked faces get) is embedded once."""
        if len(boxes) == 0:
            return np.zeros((0, self.dim), np.float32)
        unique, repeat = np.unique(np.asarray(boxes, np.float32).reshape(-1, 4), axis=0, return_inverse=True)
        return self._embed_boxes(rgb, unique)[repeat.ravel()]

    def _embed_boxes(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        import dlib

        img = np.ascontiguousarray(rgb)
        with self._lock:
            predictor, net = self._load()
            shapes = [predict_shape(predictor, img, box, self.reseat) for box in boxes]
            chips = dlib.get_face_chips(img, dlib.full_object_detections(shapes), size=150, padding=0.25)
            if self.flip:
                chips = list(chips) + [np.ascontiguousarray(c[:, ::-1]) for c in chips]
            vectors = net.compute_face_descriptor(list(chips), self.jitter)
        out = np.array([np.array(v) for v in vectors], np.float32)
        return mirror_averaged(out, len(boxes)) if self.flip else l2_normalise(out)


def load_dlib_models() -> tuple:
    """(5-point shape predictor, ResNet), each file's SHA-256 checked."""
    import dlib

    return (dlib.shape_predictor(str(model_path("dlib_sp5"))),
            dlib.face_recognition_model_v1(str(model_path("dlib_resnet"))))


def predict_shape(predictor, img: np.ndarray, box, reseat: bool = True):
    """dlib's five points of the face in ``box``: started from ``box``, and with ``reseat`` predicted again from the
    box dlib's HOG detector would draw around those first points."""
    shape = predictor(img, dlib_rectangle(box))
    return predictor(img, dlib_rectangle(hog_style_box(shape_points(shape)))) if reseat else shape


def dlib_rectangle(box):
    """A ``dlib.rectangle`` from an xyxy box."""
    import dlib

    return dlib.rectangle(*[int(round(float(v))) for v in box[:4]])


def shape_points(shape) -> np.ndarray:
    """(5, 2) float32 points of a dlib ``full_object_detection``."""
    return np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float32)


def point_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centroid of ``points`` and their RMS distance from it: a frame that moves and scales with the face."""
    centroid = points.mean(0)
    return centroid, float(np.sqrt(((points - centroid) ** 2).sum(1).mean()))


def box_in_point_units(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``box`` (xyxy) as (centre dx, centre dy, width, height) in the frame of ``points``; inverse of
    :func:`box_from_point_units`."""
    centroid, scale = point_frame(points)
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    return np.array([((x0 + x1) / 2 - centroid[0]) / scale, ((y0 + y1) / 2 - centroid[1]) / scale,
                     (x1 - x0) / scale, (y1 - y0) / scale])


def box_from_point_units(points: np.ndarray, units: np.ndarray) -> np.ndarray:
    centroid, scale = point_frame(points)
    cx, cy = centroid + np.asarray(units[:2]) * scale
    w, h = np.asarray(units[2:4]) * scale
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


@lru_cache(maxsize=1)
def _hog_box_units() -> np.ndarray:
    return np.array(json.loads(packaged_file(DLIB_BOX_FILE).read_text())["box"], np.float64)  # SHA-256 checked


def hog_style_box(points: np.ndarray) -> np.ndarray:
    """The box dlib's HOG detector would draw around a face with these five dlib points."""
    return box_from_point_units(points, _hog_box_units())


def dlib_fingerprint(prefix: str) -> str:
    """``prefix`` plus the SHA-256 prefixes of dlib's ResNet and 5-point predictor."""
    return f"{prefix}:{MODEL_FILES['dlib_resnet'].sha256[:16]}:{MODEL_FILES['dlib_sp5'].sha256[:16]}"
