"""Synthetic thermal scenes with known truth: faces with set skin and canthus temperatures, masks cooler than
skin, glasses, a blackbody at a known temperature, a camera offset drift and sensor noise."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .formats import ThermalFrame
from .planck import Radiometry


@dataclass
class FaceSpec:
    """One synthetic face: ``box`` xyxy in pixels, temperatures in °C."""

    box: tuple[float, float, float, float]
    canthus: float = 35.6
    skin: float = 34.2
    mask: bool = False
    glasses: bool = False


@dataclass
class SyntheticScene:
    frame: ThermalFrame
    truth: list[FaceSpec]
    blackbody: tuple[int, int, int, int, float] | None
    drift: float
    ambient: float


DEFAULT_FACES = (FaceSpec((60, 50, 120, 130), canthus=35.6, skin=34.2, mask=True),
                 FaceSpec((180, 60, 236, 135), canthus=37.4, skin=35.6))


def synthetic_scene(shape: tuple[int, int] = (240, 320), faces: tuple[FaceSpec, ...] | list[FaceSpec] = DEFAULT_FACES,
                    ambient: float = 22.0, blackbody: tuple[int, int, int, int, float] | None = (280, 190, 24, 24, 35.0),
                    drift: float = 0.8, noise: float = 0.05, seed: int = 0, fov_deg: float = 24.0) -> SyntheticScene:
    """Build a scene whose true temperatures are known; the camera reads everything ``drift`` °C too warm.

    >>> scene = synthetic_scene(seed=1)
    >>> scene.frame.temperature.shape, len(scene.truth)
    ((240, 320), 2)

    The truth (``scene.truth``) is drift-free: a correct pipeline must use the blackbody to remove the drift.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.full(shape, ambient, np.float32) + 0.4 * (yy / h)  # a mild gradient, as walls and floors have
    for f in faces:
        x1, y1, x2, y2 = f.box
        fw, fh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        # Body below the head, clothing-covered, a few degrees under skin.
        body = (np.abs(xx - cx) < fw * 0.9) & (yy > y2 + fh * 0.05)
        t[body] = ambient + 0.55 * (f.skin - ambient)
        head = ((xx - cx) / (fw / 2)) ** 2 + ((yy - cy) / (fh / 2)) ** 2 <= 1.0
        t[head] = f.skin
        # Eyes: a warm band, with the inner canthi as small hot spots either side of the nose bridge.
        ey = y1 + 0.40 * fh
        eyes = head & (np.abs(yy - ey) < 0.06 * fh) & (np.abs(xx - cx) < 0.32 * fw)
        t[eyes] = f.skin + 0.5 * (f.canthus - f.skin)
        sigma = max(fw / 24, 0.8)
        for side in (-1, 1):
            px = cx + side * 0.09 * fw
            spot = np.exp(-((xx - px) ** 2 + (yy - ey) ** 2) / (2 * sigma**2))
            t = np.where(spot > 0.05, np.maximum(t, f.skin + (f.canthus - f.skin) * spot), t).astype(np.float32)
        if f.glasses:
            lens = head & (np.abs(yy - ey) < 0.09 * fh) & (np.abs(xx - cx) < 0.38 * fw) & (np.abs(xx - cx) > 0.02 * fw)
            t[lens] = ambient + 0.25 * (f.skin - ambient)
        if f.mask:
            m = head & (yy > y1 + 0.58 * fh)
            t[m] = f.skin - 3.0
    if blackbody is not None:
        bx, by, bw, bh, bt = blackbody
        t[by:by + bh, bx:bx + bw] = bt
    t = cv2.GaussianBlur(t, (0, 0), 0.6)  # optics: a point spreads over about one pixel
    measured = t + drift + rng.normal(0, noise, shape).astype(np.float32)
    frame = ThermalFrame(measured.astype(np.float32), "<synthetic>", "synthetic",
                         Radiometry(distance=0.0, emissivity=0.98, atmosphere=ambient, reflected=ambient),
                         fov_deg=fov_deg)
    return SyntheticScene(frame, list(faces), blackbody, drift, ambient)


def synthetic_stream(n: int = 20, fever_every: int = 7, seed: int = 0) -> list[SyntheticScene]:
    """Frames of one person each, skin varying as in a crowd; every ``fever_every``-th person runs hot."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        hot = fever_every and i % fever_every == fever_every - 1
        canthus = float(rng.normal(35.6, 0.2) + (2.0 if hot else 0.0))
        face = FaceSpec((120, 60, 190, 150), canthus=canthus, skin=canthus - 1.4, mask=bool(rng.random() < 0.5))
        out.append(synthetic_scene(faces=[face], seed=seed * 1000 + i))
    return out
