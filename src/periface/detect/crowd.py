"""Crowd detection: several detector passes (upscaled, tiled), calibrated, fused into one set of faces.

Scenes such as a subway entrance hold many small, mostly masked faces. No single detector finds them all: YuNet
finds small faces but also fires on texture; BlazeFace is precise on close faces but blind below ~40 px. So:

0. **large frames** - a frame longer than ``WORKING_SIZE`` is searched as a pyramid: its shrunk whole, tiles at its
   own pixels and, for frames over four times that size, tiles of views between; each view goes through the steps
   below like a photo of the fitted size (``find_in_large_frame``);
1. **passes** - each detector runs on the image upscaled (small photos) or cut into overlapping tiles, at a low
   raw threshold; one of them is YuNet fine-tuned on the mask scenes' train photos (``yunet_scenes``,
   ``scripts/finetune_yunet.py``), which reaches more of the masked, small and cut faces;
2. **clusters** - boxes of all passes that overlap (IoU >= ``cluster_iou``) are one candidate face;
3. **fusion** - a candidate's features (each pass's best score, how many passes agree, its size) go through a
   logistic model fitted on the train split of the mask-scenes set (``benchmarks/detect_scenes.py --fit``), which
   gives a calibrated probability that the candidate is a face; the box is the score-weighted mean of its members
   (weighted boxes fusion), the landmarks those of its best YuNet member (BlazeFace has no mouth corners).

>>> finder = CrowdFinder.default()
>>> faces = finder.find(load_image("tests/fixtures/two_people.jpg"))   # doctest: +SKIP
>>> len(faces), faces.detector                                        # doctest: +SKIP
(2, ['crowd', 'crowd'])
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..faces import Faces, concat
from ..image import scaled
from ..models import PACKAGE_DATA
from .base import Detector, box_areas, intersection_matrix, iou_matrix, nms
from .blazeface import BlazeFaceDetector
from .refine import CONTEXT, CandidateRefiner
from .yunet import MODELS as YUNET_MODELS
from .yunet import YuNetDetector

CALIBRATION_FILE = PACKAGE_DATA / "crowd_calibration.json"


@dataclass(frozen=True)
class Pass:
    """One run of one detector: on the image scaled so its longest side reaches ``upscale_to`` (never more than
    ``max_upscale`` times, never downscaled), cut into a ``tiles`` x ``tiles`` grid with ``overlap``."""

    detector: str  # "yunet" | "yunet_scenes" | "blazeface_short" | "blazeface_full"
    upscale_to: int = 0
    max_upscale: float = 1.0
    tiles: int = 1
    overlap: float = 0.25
    # Box correction fitted on the train split, in box widths/heights added to (x0, y0, x1, y1): each detector
    # draws a face's box its own way (YuNet includes the forehead), and fusion needs them to agree.
    box_offsets: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "box_offsets", tuple(float(v) for v in self.box_offsets))

    @property
    def name(self) -> str:
        return f"{self.detector}@{self.upscale_to}x{self.max_upscale:g}/t{self.tiles}"

    def scale_for(self, shape: tuple[int, ...]) -> float:
        long_side = max(shape[:2])
        return float(np.clip(self.upscale_to / long_side, 1.0, self.max_upscale)) if self.upscale_to else 1.0


# Frames larger than this (longest side, px) are searched as a pyramid of shrunk views and tiles
# (CrowdFinder.find_in_large_frame); every mask-scenes photo the finder was fitted on is smaller.
WORKING_SIZE = 640
PART_OF_LARGER = 0.5  # a tile's face lying this much inside a face of a coarser level is a part of that face
LEVEL_RATIO = 4.0  # = working size / tile overlap: a level between keeps faces of 40 (30, see below) to 160 px
# A coarser level also keeps faces down to this share of its lower limit: a face measured just under the limit there
# and just over it at the finer level would otherwise be kept by neither (the final NMS merges the two boxes).
LEVEL_BAND_SLACK = 0.75
MAX_TILE_WORKERS = 8  # each thread holds its own detectors (a YuNet network, a mediapipe graph)

# Raw thresholds are low on purpose: the fusion model, not the detector, decides what is a face.
RAW_SCORE = {"yunet": 0.15, "yunet_scenes": 0.15, "blazeface_short": 0.2, "blazeface_full": 0.2}


def make_detector(kind: str, raw_score: float | None = None) -> Detector:
    score = RAW_SCORE[kind] if raw_score is None else raw_score
    if kind in YUNET_MODELS:
        return YuNetDetector(score, 0.3, max_side=100_000, model=kind)  # the pass decides the scale, not the detector
    if kind in ("blazeface_short", "blazeface_full"):
        return BlazeFaceDetector(kind.split("_")[1], score)
    raise ValueError(f"unknown detector {kind!r}")


def frame_tiles(h: int, w: int, size: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) tiles of ``size`` px covering an (h, w) frame, neighbours overlapping by at least
    ``overlap`` px; the last row and column end at the frame's edge."""

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        step = size - overlap
        n = -(-(length - size) // step) + 1
        return sorted({min(i * step, length - size) for i in range(n)})

    return [(x, y, min(w, x + size), min(h, y + size)) for y in starts(h) for x in starts(w)]


@dataclass(frozen=True)
class PyramidLevel:
    """One view of a large frame: the frame scaled by ``scale``, keeping the faces whose shorter side, in the
    frame's own px, is in [smallest, largest)."""

    scale: float
    smallest: float
    largest: float


def pyramid(longer_side: int, size: int, overlap: int, ratio: float,
            slack: float = LEVEL_BAND_SLACK) -> list[PyramidLevel]:
    """A large frame's levels, coarsest first: the whole frame shrunk to ``size``; the frame shrunk by ``ratio``**k
    for each k > 0 that leaves it longer than ``size``; the frame itself. Every level but the coarsest is searched
    in tiles overlapping by ``overlap``, so it sees faces smaller than ``overlap`` of its own px whole; larger faces
    are left to the next coarser level, which keeps them down to ``slack`` times that limit."""
    finer = [1.0]
    while longer_side * finer[-1] / ratio > size:
        finer.append(finer[-1] / ratio)
    scales = [size / longer_side] + finer[::-1]
    return [PyramidLevel(scale, slack * overlap / scales[i + 1] if i + 1 < len(scales) else 0.0,
                         overlap / scale if i > 0 else np.inf) for i, scale in enumerate(scales)]


def available_cores() -> int:
    """The cores this process may run on (``taskset`` and container limits included), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _shorter_side(boxes: np.ndarray) -> np.ndarray:
    return np.min(boxes[:, 2:] - boxes[:, :2], axis=1) if len(boxes) else np.zeros((0,), np.float32)


def _touches(boxes: np.ndarray, tile_wh: tuple[int, int], margin: float = 2.0) -> np.ndarray:
    """(N, 4) bool: whether each box reaches the tile's left, top, right, bottom edge."""
    tw, th = tile_wh
    return np.stack([boxes[:, 0] <= margin, boxes[:, 1] <= margin, boxes[:, 2] >= tw - margin,
                     boxes[:, 3] >= th - margin], axis=1) if len(boxes) else np.zeros((0, 4), bool)


def _tiles(h: int, w: int, n: int, overlap: float) -> list[tuple[int, int, int, int]]:
    if n <= 1:
        return [(0, 0, w, h)]
    out = []
    tw, th = w / (n - (n - 1) * overlap), h / (n - (n - 1) * overlap)
    for iy in range(n):
        for ix in range(n):
            x0, y0 = ix * tw * (1 - overlap), iy * th * (1 - overlap)
            out.append((int(x0), int(y0), min(w, int(round(x0 + tw))), min(h, int(round(y0 + th)))))
    return out


def run_pass(detector: Detector, p: Pass, rgb: np.ndarray) -> Faces:
    """Faces of one pass, in the input image's pixel coordinates."""
    h, w = rgb.shape[:2]
    scale = p.scale_for(rgb.shape)
    img = scaled(rgb, scale)
    parts = []
    for x0, y0, x1, y1 in _tiles(img.shape[0], img.shape[1], p.tiles, p.overlap):
        f = detector.detect(np.ascontiguousarray(img[y0:y1, x0:x1]))
        if len(f) == 0:
            continue
        f.boxes = (f.boxes + np.array([x0, y0, x0, y0], np.float32)) / scale
        f.landmarks = (f.landmarks + np.array([x0, y0], np.float32)) / scale
        parts.append(f)
    faces = concat(parts, (h, w))
    if len(faces) == 0:
        return faces
    wh = faces.boxes[:, 2:] - faces.boxes[:, :2]
    ok = np.isfinite(faces.boxes).all(1) & np.isfinite(faces.landmarks).all((1, 2)) & (np.nan_to_num(wh).min(1) >= 4)
    faces = faces.select(np.flatnonzero(ok))
    if p.tiles > 1 and len(faces):  # the same face seen in two overlapping tiles
        faces = faces.select(np.sort(nms(faces.boxes, faces.scores, 0.5)))
    return correct_boxes(faces, p.box_offsets)


def correct_boxes(faces: Faces, offsets: Sequence[float]) -> Faces:
    """A copy of ``faces`` with each box moved by ``offsets`` (fractions of its width/height per edge)."""
    if len(faces) == 0 or not any(offsets):
        return faces
    wh = faces.boxes[:, 2:] - faces.boxes[:, :2]
    out = faces.select(slice(None))
    out.boxes = (faces.boxes + np.asarray(offsets, np.float32) * np.concatenate([wh, wh], axis=1)).astype(np.float32)
    return out


@dataclass
class Candidates:
    """Clusters of overlapping boxes from all passes: one row per candidate face."""

    boxes: np.ndarray  # (K, 4) fused boxes
    landmarks: np.ndarray  # (K, 5, 2)
    best: np.ndarray  # (K, P) best raw score of each pass in the cluster, 0 where the pass has no member
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.boxes)


def cluster(per_pass: Sequence[Faces], image_size: tuple[int, int], cluster_iou: float = 0.45) -> Candidates:
    """Greedy clustering of all passes' boxes (best raw score first) and weighted box fusion inside each cluster."""
    n_pass = len(per_pass)
    boxes = np.concatenate([f.boxes for f in per_pass]) if per_pass else np.zeros((0, 4), np.float32)
    if len(boxes) == 0:
        return Candidates(np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros((0, n_pass), np.float32), image_size)
    scores = np.concatenate([f.scores for f in per_pass]).astype(np.float32)
    lms = np.concatenate([f.landmarks for f in per_pass]).astype(np.float32)
    src = np.concatenate([np.full(len(f), i) for i, f in enumerate(per_pass)])
    is_yunet = np.concatenate([np.array([d.startswith("yunet") for d in f.detector], bool) for f in per_pass])
    iou = iou_matrix(boxes, boxes)
    free = np.ones(len(boxes), bool)
    out_b, out_l, out_s = [], [], []
    for i in np.argsort(-scores):
        if not free[i]:
            continue
        members = np.flatnonzero(free & (iou[i] >= cluster_iou))
        free[members] = False
        w = scores[members][:, None]
        out_b.append((boxes[members] * w).sum(0) / w.sum())
        yun = members[is_yunet[members]]
        out_l.append(lms[yun[np.argmax(scores[yun])]] if len(yun) else lms[i])
        best = np.zeros(n_pass, np.float32)
        np.maximum.at(best, src[members], scores[members])
        out_s.append(best)
    return Candidates(np.array(out_b, np.float32), np.array(out_l, np.float32), np.array(out_s, np.float32), image_size)


def candidate_features(c: Candidates, refiner_logit: np.ndarray | None = None) -> np.ndarray:
    """(K, F) inputs of the fusion model: per pass its best score and whether it fired; agreement; log size; and,
    when a ``CandidateRefiner`` looked at the pixels, its face logit."""
    fired = (c.best > 0).astype(np.float32)
    wh = np.clip(c.boxes[:, 2:] - c.boxes[:, :2], 1, None)
    log_side = np.log(np.sqrt(wh[:, 0] * wh[:, 1]))[:, None]
    aspect = np.log(wh[:, 1] / wh[:, 0])[:, None]
    columns = [c.best, fired, fired.sum(1, keepdims=True), log_side, log_side ** 2, c.best * log_side, aspect, aspect ** 2]
    if refiner_logit is not None:
        columns.append(np.asarray(refiner_logit, np.float32).reshape(-1, 1))
    return np.concatenate(columns, axis=1).astype(np.float32)


@dataclass
class Fusion:
    """Logistic model over ``candidate_features``: the probability that a candidate is a face."""

    coef: np.ndarray
    intercept: float
    threshold: float

    def probability(self, c: Candidates, refiner_logit: np.ndarray | None = None) -> np.ndarray:
        if len(c) == 0:
            return np.zeros((0,), np.float32)
        z = candidate_features(c, refiner_logit) @ self.coef + self.intercept
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def select_faces(boxes: np.ndarray, probability: np.ndarray, threshold: float, min_face_px: int, dedupe: bool,
                 contained: float = 0.0) -> np.ndarray:
    """Indices of the candidates kept as faces, most probable first: probability >= ``threshold`` and shorter side
    >= ``min_face_px``; ``dedupe`` (boxes moved by the refiner) drops one of two boxes that now cover the same face;
    ``contained`` > 0 also drops a box of which at least that fraction lies inside a more probable, larger kept box
    (a part of a face - eyes, mouth - taken for a whole one)."""
    keep = np.flatnonzero((probability >= threshold) & (_shorter_side(boxes) >= min_face_px))
    keep = keep[np.argsort(-probability[keep])]
    if dedupe and len(keep):
        keep = keep[np.sort(nms(boxes[keep], probability[keep], 0.5))]
    if contained > 0 and len(keep) > 1:
        keep = keep[~inside_larger_earlier(boxes[keep], contained)]
    return keep


def inside_larger_earlier(boxes: np.ndarray, fraction: float) -> np.ndarray:
    """(N,) bool: box j has ``fraction`` of its area inside some box i < j that is larger than it."""
    inter = intersection_matrix(boxes, boxes)  # [i, j]
    area = box_areas(boxes)
    covers = (inter >= fraction * area[None, :]) & (area[:, None] > area[None, :])
    return np.triu(covers, 1).any(axis=0)


@dataclass
class CrowdFinder:
    """Detector fusion for crowds; ``find(rgb)`` gives every face with a calibrated score.

    ``threshold`` (a probability) trades recall for false boxes: the default is the one fitted on the train split
    for at most 5% false boxes among faces of 32 px or more.
    """

    passes: list[Pass]
    fusion: Fusion
    cluster_iou: float = 0.45
    min_face_px: int = 8
    threshold: float | None = None
    refiner: CandidateRefiner | None = None
    contained: float = 0.0  # see select_faces; chosen with the refiner, out of fold on the train split
    working_size: int | None = WORKING_SIZE  # frames larger than this are searched as a pyramid (find_in_large_frame)
    level_ratio: float = LEVEL_RATIO  # the most two neighbouring pyramid levels' scales differ; inf: two levels only
    # Threads that search a large frame's tiles side by side (0: one per available core, at most MAX_TILE_WORKERS).
    # The faces found do not depend on it: each tile is searched alone and the results are put together in order.
    tile_workers: int = 0
    # Detectors keep per-call state (input size, a mediapipe graph), so every thread gets its own.
    _per_thread: threading.local = field(default_factory=threading.local, init=False, repr=False, compare=False)
    _pool: ThreadPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)
    _pool_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def default(cls, path: Path = CALIBRATION_FILE, **overrides: Any) -> "CrowdFinder":
        """The fitted configuration shipped in ``data/crowd_calibration.json``."""
        cfg = json.loads(Path(path).read_text())
        passes = [Pass(**p) for p in cfg["passes"]]
        fusion = Fusion(np.array(cfg["coef"], np.float32), float(cfg["intercept"]), float(cfg["threshold"]))
        kwargs = {"cluster_iou": cfg.get("cluster_iou", 0.45), "min_face_px": cfg.get("min_face_px", 8),
                  "contained": cfg.get("contained", 0.0)}
        if cfg.get("refiner") and "refiner" not in overrides:
            kwargs["refiner"] = CandidateRefiner.load(mirror=cfg["refiner"].get("mirror", False),
                                                      iterations=cfg["refiner"].get("iterations", 1),
                                                      context=cfg["refiner"].get("context", CONTEXT))
        kwargs.update(overrides)
        return cls(passes, fusion, **kwargs)

    @classmethod
    def fast(cls, path: Path = CALIBRATION_FILE, **overrides: Any) -> "CrowdFinder":
        """YuNet and BlazeFace short at native size only, fused: for video, where every frame counts."""
        cfg = json.loads(Path(path).read_text())["fast"]
        fusion = Fusion(np.array(cfg["coef"], np.float32), float(cfg["intercept"]), float(cfg["threshold"]))
        return cls([Pass(**p) for p in cfg["passes"]], fusion, **overrides)

    @property
    def tile_threads(self) -> int:
        """How many threads search a large frame's tiles."""
        return min(self.tile_workers or available_cores(), MAX_TILE_WORKERS)

    def detector(self, kind: str) -> Detector:
        """This thread's detector of ``kind``."""
        detectors = self._per_thread.__dict__.setdefault("detectors", {})
        if kind not in detectors:
            detectors[kind] = make_detector(kind)
        return detectors[kind]

    def run_passes(self, rgb: np.ndarray) -> list[Faces]:
        return [run_pass(self.detector(p.detector), p, rgb) for p in self.passes]

    def find(self, rgb: np.ndarray, threshold: float | None = None) -> Faces:
        """All faces in ``rgb`` (H, W, 3 uint8 RGB), most probable first; ``scores`` are fused probabilities,
        ``detector`` is "crowd". ``threshold`` overrides the finder's operating point for this call."""
        if self.working_size is not None and max(rgb.shape[:2]) > self.working_size:
            return self.find_in_large_frame(rgb, threshold)
        return self.fuse(self.run_passes(rgb), rgb, threshold)

    def find_in_large_frame(self, rgb: np.ndarray, threshold: float | None = None) -> Faces:
        """``find`` on a frame larger than ``working_size``, as a pyramid of views that each look like the photos
        the passes, refiner and fusion were fitted on (about 400 px, faces from a few px to a few hundred), see
        ``pyramid``: the whole frame shrunk to ``working_size`` for the largest faces, tiles of ``working_size`` at the
        frame's own pixels for the smallest, and for frames over ``level_ratio`` (4) times ``working_size`` tiles of
        views between, each 4 times coarser than the next, each keeping the faces of 30-160 px of its own. The
        tiles overlap by a quarter of their size, so a face smaller than that lies whole inside some tile, and a
        box touching a tile's inner edge (a face cut by the tile) is dropped.
        Run whole, a 12-megapixel phone photo shows the passes faces far larger than any they were fitted on (and
        BlazeFace, which shrinks its input to 128 px, none of the small ones): on train scenes enlarged 4x, 7% of
        the masked faces >= 32 px were lost and false boxes more than tripled (docs/crowds.md)."""
        h, w = rgb.shape[:2]
        size = int(self.working_size)
        overlap = size // 4
        levels = pyramid(max(h, w), size, overlap, self.level_ratio)
        views = [scaled(rgb, level.scale) for level in levels]
        tiles = [frame_tiles(*view.shape[:2], size, overlap) for view in views]
        found_in_tiles = iter(self._map_tiles([(view, tile) for view, its in zip(views, tiles) for tile in its],
                                              threshold))
        parts: list[Faces] = []
        for level, view, its in zip(levels, views, tiles):
            found = concat([next(found_in_tiles) for _ in its], view.shape[:2])
            found.boxes, found.landmarks = found.boxes / level.scale, found.landmarks / level.scale
            side = _shorter_side(found.boxes)
            found = found.select(np.flatnonzero((side >= level.smallest) & (side < level.largest)))
            if parts:
                # A tile may hold only part of a large face, and its eyes or mouth can pass for a small face there.
                coarser = np.concatenate([f.boxes for f in parts])
                inside = intersection_matrix(coarser, found.boxes).max(axis=0, initial=0.0)
                found = found.select(np.flatnonzero(inside < PART_OF_LARGER * box_areas(found.boxes)))
            parts.append(found)
        faces = concat(parts, (h, w))
        if len(faces) == 0:
            return faces
        # A face near a level's size limit may be found at both levels, and one in two tiles' overlap twice.
        return faces.select(nms(faces.boxes, faces.scores, 0.5))

    def _map_tiles(self, jobs: list[tuple[np.ndarray, tuple[int, int, int, int]]], threshold: float | None = None,
                   ) -> list[Faces]:
        """``_find_in_tile`` for each (view, tile), in order; side by side on ``tile_workers`` threads."""
        workers = self.tile_threads
        if workers <= 1 or len(jobs) <= 1:
            return [self._find_in_tile(view, tile, threshold) for view, tile in jobs]
        with self._pool_lock:
            if self._pool is None:  # kept, so that its threads' detectors are made once
                self._pool = ThreadPoolExecutor(workers, thread_name_prefix="periface-tiles")
        return list(self._pool.map(lambda job: self._find_in_tile(*job, threshold), jobs))

    def _find_in_tile(self, view: np.ndarray, tile: tuple[int, int, int, int], threshold: float | None = None,
                      ) -> Faces:
        """The faces of one tile of ``view`` (the whole view if the tile is), without the faces cut by an inner
        tile edge, in ``view``'s pixels."""
        h, w = view.shape[:2]
        x0, y0, x1, y1 = tile
        part = view if (x1 - x0, y1 - y0) == (w, h) else np.ascontiguousarray(view[y0:y1, x0:x1])
        found = self.fuse(self.run_passes(part), part, threshold)
        inner_edges = np.array([x0 > 0, y0 > 0, x1 < w, y1 < h])
        cut = (_touches(found.boxes, (x1 - x0, y1 - y0)) & inner_edges).any(axis=1)
        found = found.select(np.flatnonzero(~cut))
        found.boxes = found.boxes + np.array([x0, y0, x0, y0], np.float32)
        found.landmarks = found.landmarks + np.array([x0, y0], np.float32)
        return found

    def fuse(self, per_pass: Sequence[Faces], rgb: np.ndarray, threshold: float | None = None) -> Faces:
        """The passes' boxes clustered, looked at again by the refiner (when there is one), scored and thresholded."""
        image_size = rgb.shape[:2]
        c = cluster(per_pass, image_size, self.cluster_iou)
        if self.refiner is not None and len(c):
            logit, refined = self.refiner.refine(rgb, c.boxes)
            p = self.fusion.probability(c, logit)
            h, w = image_size
            c.boxes = np.clip(refined, 0, [w, h, w, h]).astype(np.float32)
        else:
            p = self.fusion.probability(c)
        thr = threshold if threshold is not None else (self.threshold if self.threshold is not None else self.fusion.threshold)
        keep = select_faces(c.boxes, p, thr, self.min_face_px, dedupe=self.refiner is not None,
                            contained=self.contained if self.refiner is not None else 0.0)
        return Faces(
            boxes=c.boxes[keep], scores=p[keep], landmarks=c.landmarks[keep], image_size=tuple(image_size),
            detector=["crowd"] * len(keep),
        )
