"""Drawing faces onto images for people to look at (annotated outputs of detect and demo)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .faces import Faces

COLOURS = {"none": (230, 70, 70), "correct": (60, 180, 75), "incorrect": (255, 170, 0)}  # RGB


def draw_faces(rgb: np.ndarray, faces: Faces, out_path: Path | None = None, labels: list[str] | None = None) -> np.ndarray:
    """Boxes coloured by mask state, landmarks as dots, an optional label per face. Writes ``out_path`` if given."""
    canvas = rgb.copy()
    thickness = max(1, round(max(rgb.shape[:2]) / 400))
    for i in range(len(faces)):
        state = faces.mask[i] if faces.mask else "none"
        colour = COLOURS.get(state, (200, 200, 200))
        x0, y0, x1, y1 = [int(round(v)) for v in faces.boxes[i]]
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        for x, y in faces.landmarks[i]:
            cv2.circle(canvas, (int(x), int(y)), thickness + 1, (255, 255, 255), -1)
        text = labels[i] if labels else (f"{state} {faces.mask_score[i]:.2f}" if faces.mask else "")
        if text:
            cv2.putText(canvas, text, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, colour, thickness)
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out_path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    return canvas
