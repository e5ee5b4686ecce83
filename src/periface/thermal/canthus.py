"""Inner-canthus measurement inside a face box: the measurement site IEC 80601-2-59 prescribes.

The inner canthi are the hottest points of the eye band, one each side of the nose bridge. Their reading is the
maximum of a small region around each; the face's size says whether that region spans enough pixels to trust.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Face-box geometry (fractions of the box) where the inner canthi lie; wide enough for boxes from either the
# thermal detector or a homography-mapped visible box, which place the eyes 30-50 % down the box.
EYE_BAND = (0.22, 0.58)
INNER_SPAN = (0.12, 0.88)
LOWER_FACE = (0.62, 0.95)
FOREHEAD = (0.08, 0.24)
MIN_CANTHUS_PX = 3
"""The canthus region must span at least this many pixels across (several pixels, as the standard requires)."""
CANTHUS_FRACTION = 1 / 12
"""The inner canthus is about 1/12 of the face width across; the read-out region has that size."""


@dataclass
class CanthusReading:
    """What one face yields. Temperatures in °C, points as (x, y) pixels in the frame."""

    temperature: float
    points: tuple[tuple[float, float], ...]
    region_px: int
    face_px: float
    quality: float
    measurable: bool
    eyes_occluded: bool
    masked: bool
    skin_reference: float
    notes: tuple[str, ...] = ()


def measure_canthus(temperature: np.ndarray, box: np.ndarray, min_face_px: float | None = None) -> CanthusReading:
    """Locate the inner canthi in ``box`` (xyxy) and read their temperature.

    >>> from periface.thermal.synthetic import synthetic_scene
    >>> scene = synthetic_scene(seed=0)
    >>> r = measure_canthus(scene.frame.temperature - scene.drift, scene.truth[0].box)
    >>> abs(r.temperature - scene.truth[0].canthus) < 0.3
    True

    ``quality`` is 0..1: face size against the size at which the canthus region spans 3x the minimum, times
    penalties for hidden eyes. ``measurable`` is False when the face is too small or the eyes are hidden.
    """
    h_img, w_img = temperature.shape
    x1, y1, x2, y2 = [float(v) for v in box]
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    x2, y2 = min(x2, float(w_img)), min(y2, float(h_img))
    fw, fh = x2 - x1, y2 - y1
    if fw < 4 or fh < 4:
        return CanthusReading(float("nan"), (), 0, max(fw, 0.0), 0.0, False, False, False, float("nan"),
                              ("face box too small or outside the frame",))
    region = max(1, int(round(fw * CANTHUS_FRACTION)))
    min_face = min_face_px if min_face_px is not None else MIN_CANTHUS_PX / CANTHUS_FRACTION

    def crop(fy: tuple[float, float], fx: tuple[float, float] = (0.0, 1.0)) -> tuple[np.ndarray, int, int]:
        ya, yb = int(y1 + fy[0] * fh), max(int(y1 + fy[1] * fh), int(y1 + fy[0] * fh) + 1)
        xa, xb = int(x1 + fx[0] * fw), max(int(x1 + fx[1] * fw), int(x1 + fx[0] * fw) + 1)
        return temperature[ya:yb, xa:xb], xa, ya

    band, bx, by = crop(EYE_BAND, INNER_SPAN)
    # Smoothing before the arg-max keeps one noisy pixel from winning; the reading itself is the raw maximum.
    k = max(1, region | 1)
    smooth = cv2.blur(np.nan_to_num(band, nan=-273.0), (k, k)) if min(band.shape) >= k else band
    mid = band.shape[1] // 2
    points, values = [], []
    for part, off in ((smooth[:, :mid], 0), (smooth[:, mid:], mid)):
        if part.size == 0:
            continue
        yy, xx = np.unravel_index(int(np.argmax(part)), part.shape)
        cx, cy = bx + off + xx, by + yy
        r = max(region // 2, 0)
        patch = temperature[max(cy - r, 0):cy + r + 1, max(cx - r, 0):cx + r + 1]
        points.append((float(cx), float(cy)))
        values.append(float(np.nanmax(patch)))
    canthus = max(values) if values else float("nan")

    forehead, _, _ = crop(FOREHEAD, (0.25, 0.75))
    lower, _, _ = crop(LOWER_FACE, (0.2, 0.8))
    skin = float(np.nanpercentile(forehead, 90)) if forehead.size else float("nan")
    lower_med = float(np.nanmedian(lower)) if lower.size else float("nan")
    upper_skin = float(np.nanpercentile(band, 75)) if band.size else float("nan")
    notes: list[str] = []
    # Glass is opaque in the long-wave infrared: spectacles show as a cold patch where the canthi should be
    # warmer than the forehead.
    eyes, _, _ = crop((0.30, 0.50), (0.2, 0.8))
    cold = float(np.mean(eyes < skin - 2.0)) if eyes.size and np.isfinite(skin) else 0.0
    eyes_occluded = bool(np.isfinite(skin) and (canthus < skin - 0.3 or cold > 0.3))
    # A mask is cooler than skin once worn a while; what it covers is never used as a measurement site.
    masked = bool(np.isfinite(lower_med) and np.isfinite(upper_skin) and lower_med < min(skin, upper_skin) - 1.5)
    if eyes_occluded:
        notes.append("eye region colder than forehead: glasses or hair may hide the inner canthi")
    if masked:
        notes.append("lower face cooler than skin: mask (does not hide the canthi)")
    size_q = float(np.clip(fw / (3 * min_face), 0.0, 1.0))
    quality = size_q * (0.3 if eyes_occluded else 1.0)
    measurable = fw >= min_face and not eyes_occluded and np.isfinite(canthus)
    if fw < min_face:
        notes.append(f"face {fw:.0f} px wide: canthus region {region} px, below the {MIN_CANTHUS_PX} px minimum")
    return CanthusReading(canthus, tuple(points), region, fw, round(quality, 3), bool(measurable), eyes_occluded,
                          masked, skin, tuple(notes))
