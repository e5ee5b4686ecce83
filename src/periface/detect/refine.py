"""A second look at crowd candidates: is this a face, and where exactly is it?

The detector passes of ``CrowdFinder`` are told apart only by their scores. A small CNN that looks at each
candidate's pixels adds what the scores cannot say: a masked face on which YuNet is unsure (score 0.3) looks like
a face, a patterned shirt on which it is fairly sure does not. The same network also moves the candidate's box
onto the face as the annotators drew it (a face looking down, a face cut by the image border), which turns some
"false box + missed face" pairs into one hit.

It is trained by ``scripts/train_face_refiner.py`` on the candidates of the train split of the mask-scenes set
(CPU) and ships as ONNX (``data/face_refiner.onnx``, SHA-256 checked), run with onnxruntime: three networks
(seeds 0, 10, 20) in one graph whose outputs are the members' mean, which the interface below does not see.

>>> logits, boxes = CandidateRefiner.load().refine(rgb, candidate_boxes)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..image import cnn_input, context_crops
from ..models import PACKAGE_DATA, onnx_session, recorded_sha256, verified

MODEL_FILE = PACKAGE_DATA / "face_refiner.onnx"
INPUT_PX = 48
CONTEXT = 1.6  # crop side / longest box side: the face and some of what surrounds it


def apply_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Boxes moved by ``deltas``: per edge (x0, y0, x1, y1), in units of the box's longest side."""
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True)
    return (boxes + deltas * side).astype(np.float32)


def box_deltas(boxes: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The ``deltas`` that ``apply_deltas`` needs to turn ``boxes`` into ``targets``."""
    side = np.max(boxes[:, 2:] - boxes[:, :2], axis=1, keepdims=True)
    return ((targets - boxes) / side).astype(np.float32)


def refine_boxes(outputs, rgb: np.ndarray, boxes: np.ndarray, mirror: bool = False, iterations: int = 1,
                 context: float = CONTEXT) -> tuple[np.ndarray, np.ndarray]:
    """(face logit, refined box) per box, given ``outputs``: (K, 48, 48, 3) crops -> (K, 5) network outputs.

    ``mirror`` averages each crop's outputs with those of its mirror image (whose x deltas swap and change sign);
    ``iterations`` > 1 looks again at the moved box and moves it further. The logit is the first look's: the
    fusion model was fitted on it. ``context`` must be the one the network was trained with.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros((0,), np.float32), np.zeros((0, 4), np.float32)
    logit = None
    for _ in range(iterations):
        crops = context_crops(rgb, boxes, context, INPUT_PX)
        out = outputs(crops)
        if mirror:
            flipped = outputs(np.ascontiguousarray(crops[:, :, ::-1]))
            out = (out + flipped[:, [0, 3, 2, 1, 4]] * np.array([1, -1, 1, -1, 1], np.float32)) / 2
        if logit is None:
            logit = out[:, 0].copy()
        boxes = apply_deltas(boxes, out[:, 1:])
    return logit, boxes


class CandidateRefiner:
    """The shipped CNN: ``refine(rgb, boxes)`` -> (face logit per box, refined boxes)."""

    def __init__(self, path: Path = MODEL_FILE, mirror: bool = False, iterations: int = 1,
                 context: float = CONTEXT) -> None:
        self.mirror, self.iterations, self.context = mirror, iterations, context
        self._session = onnx_session(path, threads=1)  # onnxruntime runs one session from several threads at once

    @classmethod
    def load(cls, path: Path = MODEL_FILE, mirror: bool = False, iterations: int = 1,
             context: float = CONTEXT) -> "CandidateRefiner":
        return cls(verified(path, recorded_sha256(path), "face refiner"), mirror, iterations, context)

    def outputs(self, crops: np.ndarray) -> np.ndarray:
        """(K, 48, 48, 3) uint8 crops -> (K, 5): face logit, then box deltas (x0, y0, x1, y1)."""
        if len(crops) == 0:
            return np.zeros((0, 5), np.float32)
        return np.concatenate([self._session.run(None, {"image": cnn_input(crops[i:i + 256])})[0]
                               for i in range(0, len(crops), 256)]).astype(np.float32)

    def refine(self, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return refine_boxes(self.outputs, rgb, boxes, self.mirror, self.iterations, self.context)
