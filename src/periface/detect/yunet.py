"""YuNet run with ``cv2.FaceDetectorYN``: boxes and 5 landmarks, robust to masks. ``model="yunet"`` is OpenCV Zoo's
int8 network; ``"yunet_scenes"`` the same network fine-tuned here on the mask-scenes train photos
(``scripts/finetune_yunet.py``), which draws boxes as those annotators do."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from ..faces import Faces
from ..image import scaled
from ..models import model_path, packaged_file

MODELS = ("yunet", "yunet_scenes")


class YuNetDetector:
    def __init__(self, score_threshold: float = 0.6, nms_iou: float = 0.3, max_side: int = 1280,
                 model: str = "yunet", path: Path | None = None) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown YuNet model {model!r}; known: {MODELS}")
        self.name = model
        self.path = path  # another network of the same kind (training scripts: a fold's network), not checked
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        # Large photos give YuNet spurious large boxes; detection runs on a copy no longer than this.
        self.max_side = max_side
        self._net: cv2.FaceDetectorYN | None = None
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:{self.score_threshold}:{self.nms_iou}:{self.max_side}"

    def _model(self) -> cv2.FaceDetectorYN:
        if self._net is None:
            path = self.path or (model_path("yunet") if self.name == "yunet" else packaged_file(f"{self.name}.onnx"))
            self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), self.score_threshold, self.nms_iou, 5000)
        return self._net

    def detect(self, rgb: np.ndarray) -> Faces:
        h, w = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        bgr = scaled(bgr, scale)
        with self._lock:
            net = self._model()
            net.setInputSize((bgr.shape[1], bgr.shape[0]))
            _, rows = net.detect(bgr)
        if rows is None or len(rows) == 0:
            return Faces.empty((h, w))
        rows = rows.astype(np.float32)
        rows = rows[np.isfinite(rows).all(axis=1)] / np.float32(scale)
        rows[:, 14] *= scale  # the score column is not a coordinate
        if len(rows) == 0:
            return Faces.empty((h, w))
        boxes = np.stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2], rows[:, 1] + rows[:, 3]], axis=1)
        return Faces(
            boxes=boxes,
            scores=rows[:, 14].copy(),
            landmarks=rows[:, 4:14].reshape(-1, 5, 2).copy(),
            image_size=(h, w),
            detector=[self.name] * len(rows),
        )
