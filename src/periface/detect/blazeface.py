"""MediaPipe BlazeFace (short range for close faces, full range for small ones), from mediapipe 0.10.21's wheel."""

from __future__ import annotations

import threading
from typing import Literal

import numpy as np

from ..faces import Faces
from ..models import model_path, routine_native_notices_hidden

# In the ArcFace template the mouth is 0.83 eye-distances wide; BlazeFace gives only the mouth centre.
_HALF_MOUTH_PER_EYE_VECTOR = 0.414


class BlazeFaceDetector:
    def __init__(self, model: Literal["short", "full"] = "short", score_threshold: float = 0.5) -> None:
        self.model = model
        self.name = f"blazeface_{model}"
        self.score_threshold = score_threshold
        self._solution = None
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:{self.score_threshold}"

    def _model(self):  # mediapipe's solution object
        if self._solution is None:
            model_path("blazeface_short" if self.model == "short" else "blazeface_full")  # SHA-256 check
            from mediapipe.python.solutions.face_detection import FaceDetection

            with routine_native_notices_hidden():
                self._solution = FaceDetection(
                    model_selection=0 if self.model == "short" else 1, min_detection_confidence=self.score_threshold
                )
                self._solution.process(np.zeros((64, 64, 3), np.uint8))  # its native threads log as they start
        return self._solution

    def detect(self, rgb: np.ndarray) -> Faces:
        h, w = rgb.shape[:2]
        with self._lock:
            result = self._model().process(np.ascontiguousarray(rgb))
        detections = result.detections or []
        if not detections:
            return Faces.empty((h, w))
        boxes, scores, landmarks = [], [], []
        for det in detections:
            rel = det.location_data.relative_bounding_box
            x0, y0 = rel.xmin * w, rel.ymin * h
            boxes.append([x0, y0, x0 + rel.width * w, y0 + rel.height * h])
            scores.append(det.score[0])
            kp = np.array([[k.x * w, k.y * h] for k in det.location_data.relative_keypoints], np.float32)
            landmarks.append(five_points_from_blazeface(kp))
        boxes_arr = np.array(boxes, np.float32)
        boxes_arr[:, [0, 2]] = boxes_arr[:, [0, 2]].clip(0, w)
        boxes_arr[:, [1, 3]] = boxes_arr[:, [1, 3]].clip(0, h)
        return Faces(
            boxes=boxes_arr,
            scores=np.array(scores, np.float32),
            landmarks=np.stack(landmarks),
            image_size=(h, w),
            detector=[self.name] * len(boxes),
        )


def five_points_from_blazeface(keypoints: np.ndarray) -> np.ndarray:
    """BlazeFace's eyes, nose tip and mouth centre (rows 0-3) -> the 5-point layout, mouth corners estimated."""
    eye_a, eye_b, nose, mouth = keypoints[:4]
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    half = (right - left) * _HALF_MOUTH_PER_EYE_VECTOR
    return np.stack([left, right, nose, mouth - half, mouth + half]).astype(np.float32)
