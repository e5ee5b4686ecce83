"""Visible -> thermal registration for dual-spectrum cameras: a homography fitted from point pairs, kept as JSON.

A homography is exact only for points on one plane; for people walking through at 2-5 m in front of a camera pair
a few centimetres apart, the parallax error is a few thermal pixels, which the face box absorbs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import PerifaceError


class RegistrationError(PerifaceError):
    """Point pairs that cannot give a homography, or a registration file that is not one."""

    code = "bad_registration"
    exit_code = 2
    http_status = 422


@dataclass
class Homography:
    """Maps visible-image pixels to thermal-image pixels.

    >>> h = Homography.fit([[0, 0], [100, 0], [100, 100], [0, 100]], [[0, 0], [50, 0], [50, 50], [0, 50]])
    >>> h.map_boxes([[10, 10, 30, 30]]).round(1).tolist()
    [[5.0, 5.0, 15.0, 15.0]]
    """

    matrix: np.ndarray
    rmse_px: float = 0.0
    pairs: int = 0

    @classmethod
    def fit(cls, visible_pts: np.ndarray | list, thermal_pts: np.ndarray | list) -> "Homography":
        """Least-squares homography from >= 4 point pairs (RANSAC from 6 on, to drop a mis-clicked pair)."""
        src = np.asarray(visible_pts, np.float64).reshape(-1, 2)
        dst = np.asarray(thermal_pts, np.float64).reshape(-1, 2)
        if len(src) != len(dst):
            raise RegistrationError(f"{len(src)} visible points but {len(dst)} thermal points")
        if len(src) < 4:
            raise RegistrationError(f"a homography needs at least 4 point pairs, got {len(src)}")
        method = cv2.RANSAC if len(src) >= 6 else 0
        matrix, _ = cv2.findHomography(src, dst, method, 3.0)
        if matrix is None or not np.all(np.isfinite(matrix)):
            raise RegistrationError("point pairs are degenerate (collinear or repeated)")
        h = cls(matrix)
        h.rmse_px = float(np.sqrt(((h.map_points(src) - dst) ** 2).sum(axis=1).mean()))
        h.pairs = len(src)
        return h

    def map_points(self, pts: np.ndarray | list) -> np.ndarray:
        p = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(p, self.matrix).reshape(-1, 2)

    def map_boxes(self, boxes: np.ndarray | list) -> np.ndarray:
        """Map xyxy boxes; each result is the bounding box of the four mapped corners."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(b):
            return np.zeros((0, 4))
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], axis=1)
        mapped = self.map_points(corners.reshape(-1, 2)).reshape(-1, 4, 2)
        return np.concatenate([mapped.min(axis=1), mapped.max(axis=1)], axis=1)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps({"type": "periface.homography", "visible_to_thermal": self.matrix.tolist(),
                                 "rmse_px": self.rmse_px, "pairs": self.pairs}, indent=1) + "\n")
        return p

    @classmethod
    def load(cls, path: str | Path) -> "Homography":
        p = Path(path)
        try:
            raw = json.loads(p.read_text())
            matrix = np.asarray(raw["visible_to_thermal"], np.float64)
        except FileNotFoundError:
            raise RegistrationError("registration file not found", source=str(p)) from None
        except (ValueError, KeyError, TypeError) as err:
            raise RegistrationError(f"not a periface homography JSON: {err}", source=str(p)) from err
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
            raise RegistrationError("homography must be a finite 3x3 matrix", source=str(p))
        return cls(matrix, float(raw.get("rmse_px", 0.0)), int(raw.get("pairs", 0)))


def read_point_pairs(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Point pairs from a CSV (``xv,yv,xt,yt`` per line, '#' comments) or a JSON list of such 4-lists."""
    p = Path(path)
    if not p.is_file():
        raise RegistrationError("point-pair file not found", source=str(p))
    text = p.read_text()
    try:
        if p.suffix.lower() == ".json":
            rows = np.asarray(json.loads(text), np.float64)
        else:
            lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            if lines and not lines[0].replace(",", "").replace(".", "").replace("-", "").replace(" ", "").isdigit():
                lines = lines[1:]  # a header row
            rows = np.asarray([[float(v) for v in ln.split(",")] for ln in lines], np.float64)
    except (ValueError, TypeError) as err:
        raise RegistrationError(f"point pairs must be numbers xv,yv,xt,yt: {err}", source=str(p)) from err
    if rows.ndim != 2 or rows.shape[1] != 4:
        raise RegistrationError(f"expected rows of 4 numbers (xv,yv,xt,yt), got shape {rows.shape}", source=str(p))
    return rows[:, :2], rows[:, 2:]


__all__ = ["Homography", "RegistrationError", "read_point_pairs"]
