"""Redaction: blur or pixelate every face, masked or not, with a margin, and write the file without metadata.

The output is re-encoded from pixels only, so EXIF (GPS, camera serial, time), XMP and IPTC blocks are not
carried over. Recall is the detector's: a face the detector misses is not redacted.

>>> out = redact_file("street.jpg", "redacted/")               # doctest: +SKIP
>>> out.faces, out.path.name                                   # doctest: +SKIP
(7, 'street.jpg')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np
from PIL import Image

from ..config import Settings
from ..detect.base import iou_matrix
from ..image import ImageInput, load_image

Method = Literal["blur", "pixelate"]
Detector = Callable[[np.ndarray], np.ndarray]

#: Formats written as they came; anything else becomes PNG.
_KEEP_SUFFIXES = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF",
                  ".tiff": "TIFF"}

class RecallDetector:
    """Face boxes tuned for redaction, where a missed face is a leak and a false alarm only blurs a patch.

    The union of every detector (YuNet, BlazeFace short and full range) at a low score threshold, faces down to
    8 pixels, small images upscaled 2x first so that background faces reach the detectors' working size, and the
    crowd detector's fused candidates down to a probability of ``crowd_probability`` (its YuNet passes at other
    scales and its second look find small faces the others miss). Measured on mask-scenes in PRIVACY.md.
    """

    def __init__(self, score: float = 0.3, min_face_px: int = 8, upscale_below: int = 1280,
                 crowd_probability: float | None = 0.1) -> None:
        self.score, self.min_face_px, self.upscale_below = score, min_face_px, upscale_below
        self.crowd_probability = crowd_probability
        self._finder = None
        self._crowd = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        if self._finder is None:
            from ..detect import FaceFinder

            s = Settings(yunet_score=self.score, blazeface_score=self.score, min_face_px=self.min_face_px,
                         detect_max_side=2 * self.upscale_below)
            self._finder = FaceFinder.default(s)
        h, w = rgb.shape[:2]
        k = 2 if max(h, w) <= self.upscale_below else 1
        img = cv2.resize(rgb, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC) if k > 1 else rgb
        boxes = [np.asarray(self._finder.find_all(img).boxes, dtype=np.float64).reshape(-1, 4) / k]
        if self.crowd_probability is not None:
            if self._crowd is None:
                from ..detect.crowd import CrowdFinder

                self._crowd = CrowdFinder.default(threshold=self.crowd_probability)
            boxes.append(np.asarray(self._crowd.find(rgb).boxes, dtype=np.float64).reshape(-1, 4))
        return merge_overlapping(np.vstack(boxes))


def merge_overlapping(boxes: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """One box per face when several detectors found it: boxes overlapping by ``iou`` or more are replaced by the
    box enclosing them (never smaller than any of them, so no face is uncovered by merging)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        overlap = iou_matrix(boxes, boxes)
        np.fill_diagonal(overlap, 0.0)
        i, j = np.unravel_index(np.argmax(overlap), overlap.shape)
        if overlap[i, j] >= iou:
            enclosing = np.concatenate([np.minimum(boxes[i, :2], boxes[j, :2]), np.maximum(boxes[i, 2:], boxes[j, 2:])])
            boxes = np.vstack([np.delete(boxes, [i, j], axis=0), enclosing[None]])
            merged = True
    return boxes


_default: RecallDetector | None = None


def default_detector(rgb: np.ndarray) -> np.ndarray:
    """Face boxes (N, 4) xyxy from ``RecallDetector``, loaded once on first use."""
    global _default
    if _default is None:
        _default = RecallDetector()
    return _default(rgb)


def expand_boxes(boxes: np.ndarray, shape: tuple[int, ...], margin: float | np.ndarray) -> np.ndarray:
    """Grow each xyxy box by ``margin`` (one for all, or one per box) of its width/height on every side, clip to
    the image; int (N, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    h, w = shape[:2]
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    margin = np.broadcast_to(np.asarray(margin, dtype=np.float64), bw.shape)
    grown = np.stack(
        [boxes[:, 0] - margin * bw, boxes[:, 1] - margin * bh, boxes[:, 2] + margin * bw, boxes[:, 3] + margin * bh],
        axis=1,
    )
    grown[:, [0, 2]] = np.clip(grown[:, [0, 2]], 0, w)
    grown[:, [1, 3]] = np.clip(grown[:, [1, 3]], 0, h)
    out = np.empty_like(grown, dtype=np.int64)
    out[:, :2] = np.floor(grown[:, :2])
    out[:, 2:] = np.ceil(grown[:, 2:])
    return out


# Boxes on faces of a few pixels are often a few pixels off: a larger margin there costs little area and keeps
# the face inside the blur. Chosen on the train split of mask-scenes (PRIVACY.md).
SMALL_FACE_PX, LARGE_FACE_PX, SMALL_FACE_MARGIN_FACTOR = 16, 48, 3.0


def redaction_margins(boxes: np.ndarray, margin: float) -> np.ndarray:
    """Per-box margin: ``margin`` for faces of ``LARGE_FACE_PX`` and more, rising linearly to
    ``SMALL_FACE_MARGIN_FACTOR`` x ``margin`` for faces of ``SMALL_FACE_PX`` and less (shorter side)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    small = np.clip((LARGE_FACE_PX - side) / (LARGE_FACE_PX - SMALL_FACE_PX), 0.0, 1.0)
    return margin * (1.0 + (SMALL_FACE_MARGIN_FACTOR - 1.0) * small)


def _pixelate(region: np.ndarray) -> np.ndarray:
    h, w = region.shape[:2]
    # About 8 blocks across the face: identity is gone, the shape of a head remains.
    blocks = max(1, min(8, w, h))
    small = cv2.resize(region, (blocks, max(1, round(blocks * h / max(w, 1)))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _blur(region: np.ndarray) -> np.ndarray:
    h, w = region.shape[:2]
    # Downsample first so that no Gaussian kernel, however wide, keeps recoverable detail; then blur smooth.
    small = cv2.resize(region, (max(1, w // 12), max(1, h // 12)), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    k = max(3, (min(w, h) // 4) | 1)
    return cv2.GaussianBlur(up, (k, k), 0)


def redact_image(rgb: np.ndarray, boxes: np.ndarray, method: Method = "blur", margin: float = 0.25) -> np.ndarray:
    """A copy of ``rgb`` with every box (N, 4 xyxy), grown by ``margin`` (more for small faces:
    ``redaction_margins``), blurred or pixelated.

    >>> img = np.zeros((100, 100, 3), np.uint8); img[40:60, 40:60] = 255
    >>> redact_image(img, np.array([[40, 40, 60, 60]]), "pixelate")[50, 50].tolist() != [255, 255, 255]
    True
    """
    if method not in ("blur", "pixelate"):
        raise ValueError(f"method must be 'blur' or 'pixelate', got {method!r}")
    if margin < 0:
        raise ValueError("margin must be >= 0")
    out = np.array(rgb, dtype=np.uint8, copy=True)
    apply = _blur if method == "blur" else _pixelate
    for x0, y0, x1, y1 in expand_boxes(boxes, out.shape, redaction_margins(boxes, margin)):
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        out[y0:y1, x0:x1] = apply(np.ascontiguousarray(out[y0:y1, x0:x1]))
    return out


@dataclass
class Redaction:
    """What ``redact_file`` wrote: the path, how many faces it redacted, and their boxes (before the margin)."""

    path: Path
    faces: int
    boxes: np.ndarray = field(repr=False)


def save_without_metadata(rgb: np.ndarray, path: Path) -> Path:
    """Encode pixels only: no EXIF, XMP, IPTC, ICC or text chunks are written."""
    fmt = _KEEP_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        path = path.with_suffix(".png")
        fmt = "PNG"
    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    params: dict = {"quality": 92} if fmt in ("JPEG", "WEBP") else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, **params)
    return path


def redact_file(
    path: ImageInput,
    out_dir: str | Path,
    detector: Detector | None = None,
    *,
    method: Method = "blur",
    margin: float = 0.25,
    settings: Settings | None = None,
    name: str | None = None,
) -> Redaction:
    """Detect faces in ``path``, redact them and write ``out_dir/<same name>`` with no metadata.

    ``detector`` maps an RGB array to (N, 4) xyxy boxes; the default is periface's engine. The image is
    decoded upright (EXIF orientation applied) before the orientation tag is dropped with the rest.
    """
    rgb = load_image(path, settings)
    boxes = np.asarray((detector or default_detector)(rgb), dtype=np.float64).reshape(-1, 4)
    redacted = redact_image(rgb, boxes, method=method, margin=margin)
    filename = name or (Path(path).name if isinstance(path, (str, Path)) else "redacted.png")
    written = save_without_metadata(redacted, Path(out_dir) / Path(filename).name)
    return Redaction(path=written, faces=len(boxes), boxes=boxes)


def coverage(truth: np.ndarray, redacted: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """For each ground-truth box, the fraction of its area inside the redacted regions (boxes after margin)."""
    h, w = shape[:2]
    covered = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(redacted, dtype=np.int64).reshape(-1, 4):
        covered[max(0, y0):min(h, y1), max(0, x0):min(w, x1)] = True
    out = []
    for x0, y0, x1, y1 in np.asarray(truth, dtype=np.float64).reshape(-1, 4):
        xa, ya, xb, yb = int(max(0, x0)), int(max(0, y0)), int(min(w, np.ceil(x1))), int(min(h, np.ceil(y1)))
        area = max(0, xb - xa) * max(0, yb - ya)
        out.append(float(covered[ya:yb, xa:xb].sum()) / area if area else 0.0)
    return np.asarray(out)


def redaction_recall(
    scene_dir: str | Path,
    detector: Detector | None = None,
    *,
    margin: float = 0.25,
    min_coverage: float = 0.8,
    limit: int | None = None,
    select: Callable[[str], bool] | None = None,
    grow_small_faces: bool = True,
) -> dict:
    """Share of annotated faces whose box is at least ``min_coverage`` inside a redacted region, per label and per
    face size, with what it costs: boxes that overlap no annotated face and the share of the image blurred.

    ``scene_dir`` is a Pascal-VOC folder (``evaluation.voc.read_voc_folder``; ``by_label`` is by mask state);
    ``select`` keeps the images whose file name it accepts; ``grow_small_faces=False`` applies ``margin`` to every box alike.
    """
    from ..evaluation.detect_eval import load_scene_image
    from ..evaluation.voc import read_voc_folder

    detector = detector or default_detector
    hits: dict[str, list[int]] = {}
    by_size: dict[str, list[int]] = {"< 32 px": [], ">= 32 px": []}
    images = detections = stray = 0
    blurred = []
    for scene in read_voc_folder(Path(scene_dir), limit=limit).scenes:
        if select is not None and not select(scene.image.name):
            continue
        truth, labels = scene.boxes.astype(np.float64), scene.states
        rgb = load_scene_image(scene)
        found = np.asarray(detector(rgb), dtype=np.float64).reshape(-1, 4)
        regions = expand_boxes(found, rgb.shape, redaction_margins(found, margin) if grow_small_faces else margin)
        sides = np.minimum(truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1])
        # one coverage pass for the faces and, as the last "box", the whole image
        *covs, image_share = coverage(np.vstack([truth, [[0, 0, rgb.shape[1], rgb.shape[0]]]]), regions, rgb.shape)
        for label, side, cov in zip(labels, sides, covs):
            hits.setdefault(label, []).append(int(cov >= min_coverage))
            by_size["< 32 px" if side < 32 else ">= 32 px"].append(int(cov >= min_coverage))
        # A detection that overlaps no annotated face: a patch blurred for nothing (or an unannotated face).
        detections += len(found)
        if len(found) and len(truth):
            stray += int((iou_matrix(found, truth).max(axis=1) < 0.1).sum())
        else:
            stray += len(found)
        blurred.append(float(image_share))
        images += 1
    every = [h for per in hits.values() for h in per]
    return {
        "images": images,
        "faces": len(every),
        "recall": float(np.mean(every)) if every else 0.0,
        "by_label": {k: {"faces": len(v), "recall": float(np.mean(v))} for k, v in sorted(hits.items())},
        "by_size": {k: {"faces": len(v), "recall": float(np.mean(v)) if v else None} for k, v in by_size.items()},
        "detections": detections,
        "detections_off_any_face": stray,
        "blurred_share_of_image": float(np.mean(blurred)) if blurred else 0.0,
        "margin": margin,
        "grow_small_faces": grow_small_faces,
        "min_coverage": min_coverage,
    }
