"""Faces in video and streams: detect per frame, track across frames, one record per track.

``watch(source)`` decodes a video file, an RTSP/HTTP stream (anything OpenCV's FFmpeg backend opens) or a folder of
images (sorted by name), finds faces in each frame, links them into tracks and yields one JSON-ready record per
track when it ends: first and last seen, the best-quality frame, the mask state by vote over the track's frames
and, with a gallery, the candidate list of a single search on the mean of the track's best frames' faces (up to
three, not one search per frame).

>>> for record in watch("tests/fixtures/short_hamilton_clip.mp4"):     # doctest: +SKIP
...     print(record["track"], record["mask"], record["frames"])

Decoding (and reading a camera live) is in ``decode``, the tracker and the face quality in ``track``; this module
puts them together with the finder, the mask state and the gallery.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from ..faces import MASK_STATES, Faces
from .decode import Frame, LatestFrame, UnreadableFrameWarning, frames, is_stream
from .track import IoUTracker, Track, face_quality

__all__ = ["AnnotatedVideo", "Frame", "IoUTracker", "LatestFrame", "Track", "UnreadableFrameWarning",
           "coco_detections", "draw_tracks", "face_quality", "frames", "gallery_searcher", "is_stream",
           "keep_for_search", "watch", "write_jsonl"]


# ------------------------------------------------------------------------------------------------- records


@dataclass
class _TrackState:
    id: int
    first_frame: int
    first_time: float
    last_frame: int = 0
    last_time: float = 0.0
    frames: int = 0
    votes: Counter = field(default_factory=Counter)
    mask_scores: list[float] = field(default_factory=list)
    best_quality: float = -1.0
    best_frame: int = -1
    best_time: float = 0.0
    best_box: np.ndarray | None = None
    # (quality, frame, face with a margin) of the best frames to search with, kept only until the track is closed
    search_crops: list[tuple[float, int, np.ndarray]] = field(default_factory=list)


# A track is searched once, on the mean of its best frames' faces (Gallery.probe_embedding); frames closer together
# than SEARCH_FRAMES_APART show nearly the same face, so only the better of two such is kept.
SEARCH_FRAMES, SEARCH_FRAMES_APART = 3, 10


def keep_for_search(kept: list[tuple[float, int, np.ndarray]], quality: float, frame: int,
                    crop_of: Callable[[], np.ndarray]) -> None:
    """Adds this frame's face to ``kept`` if it is among the ``SEARCH_FRAMES`` best, at most one of any frames
    closer than ``SEARCH_FRAMES_APART``; ``crop_of`` cuts the crop only when it is kept."""
    near = [i for i, (_, f, _) in enumerate(kept) if abs(f - frame) < SEARCH_FRAMES_APART]
    others = [entry for i, entry in enumerate(kept) if i not in near]
    if any(kept[i][0] >= quality for i in near) or (
            len(others) >= SEARCH_FRAMES and all(q >= quality for q, _, _ in others)):
        return
    kept[:] = sorted(others + [(quality, frame, crop_of())], key=lambda entry: -entry[0])[:SEARCH_FRAMES]


def _add_to_tracks(states: dict[int, _TrackState], frame: Frame, faces: Faces, ids: np.ndarray,
                   keep_crops: bool) -> None:
    """Each tracked face of ``frame`` counted into its track: frames, mask vote, best frame and, for a gallery
    search, the crops of its best frames."""
    quality = face_quality(faces)
    for i, tid in enumerate(ids):
        if tid < 0:
            continue
        s = states.setdefault(int(tid), _TrackState(int(tid), frame.index, frame.time_s))
        s.last_frame, s.last_time = frame.index, frame.time_s
        s.frames += 1
        s.votes[faces.mask[i]] += 1
        s.mask_scores.append(float(faces.mask_score[i]))
        if quality[i] > s.best_quality:
            s.best_quality, s.best_frame, s.best_time = float(quality[i]), frame.index, frame.time_s
            s.best_box = faces.boxes[i].copy()
        if keep_crops:
            keep_for_search(s.search_crops, float(quality[i]), frame.index,
                            lambda box=faces.boxes[i]: _margin_crop(frame.rgb, box))


def _margin_crop(rgb: np.ndarray, box: np.ndarray, margin: float = 0.4) -> np.ndarray:
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = rgb.shape[:2]
    xa, ya = int(max(0, x0 - mx)), int(max(0, y0 - my))
    xb, yb = int(min(w, x1 + mx)), int(min(h, y1 + my))
    return rgb[ya:yb, xa:xb].copy()


def _record(s: _TrackState, search: Callable[[list[np.ndarray]], list[dict]] | None) -> dict[str, Any]:
    n = sum(s.votes.values())
    state = max(MASK_STATES, key=lambda m: (s.votes[m], m == "correct")) if n else None
    rec: dict[str, Any] = {
        "track": s.id,
        "first_seen": {"frame": s.first_frame, "time_s": round(s.first_time, 3)},
        "last_seen": {"frame": s.last_frame, "time_s": round(s.last_time, 3)},
        "frames": s.frames,
        "best_frame": {"frame": s.best_frame, "time_s": round(s.best_time, 3),
                       "box": [round(float(v), 1) for v in s.best_box], "quality": round(s.best_quality, 4)},
        "mask": state,
        "mask_votes": {m: s.votes[m] for m in MASK_STATES},
        "mask_score": round(float(np.mean(s.mask_scores)), 4) if s.mask_scores else None,
    }
    if search is not None and s.search_crops:
        rec["searched_frames"] = sorted(frame for _, frame, _ in s.search_crops)
        rec["candidates"] = search([crop for _, _, crop in s.search_crops])
    return rec


def gallery_searcher(gallery: Any, k: int = 5,
                     purpose: str = "video watch") -> Callable[[list[np.ndarray]], list[dict]]:
    """One audited ``Gallery.search`` on a track's best crops; errors (no face in any) give an empty list."""
    from ..errors import PerifaceError

    def search(crops: list[np.ndarray]) -> list[dict]:
        try:
            return [c.to_dict() for c in gallery.search(list(crops), k, crop=True, purpose=purpose)]
        except PerifaceError:
            return []

    return search


def watch(
    source: str | Path,
    gallery: Any = None,
    *,
    finder: Any = None,
    mask_classifier: Any = None,
    tracker: IoUTracker | None = None,
    every: int = 1,
    max_frames: int | None = None,
    min_frames: int = 2,
    k: int = 5,
    annotate: str | Path | None = None,
    on_frame: Callable[[Frame, Faces, np.ndarray], None] | None = None,
    on_unreadable: Callable[[str, str], None] | None = None,
    live: bool | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one record per face track of ``source`` (video file, stream URL or image folder), as tracks end.

    ``gallery``: a ``periface.gallery.Gallery`` or its folder; each track is searched once, on its best frames
    (``keep_for_search``; record field ``searched_frames``).
    ``finder``: anything with ``find(rgb) -> Faces`` (default ``CrowdFinder.default()``); ``mask_classifier``: a
    ``MaskClassifier`` (default the shipped CNN). Tracks seen in fewer than ``min_frames`` frames are dropped as
    flicker. ``annotate``: write a video with the tracked boxes, ids and mask states. ``on_unreadable`` and ``live``
    (newest frame first; the default for a camera's stream URL): see ``frames``.
    """
    if finder is None:
        from ..detect.crowd import CrowdFinder

        finder = CrowdFinder.default()
    if mask_classifier is None:
        from ..mask.classify import default_mask_classifier

        mask_classifier = default_mask_classifier()
    if gallery is not None and isinstance(gallery, (str, Path)):
        from ..gallery import Gallery

        gallery = Gallery(gallery)
    search = gallery_searcher(gallery, k) if gallery is not None else None
    tracker = tracker or IoUTracker()
    states: dict[int, _TrackState] = {}
    video = AnnotatedVideo(annotate, FOLDER_FPS if Path(str(source)).is_dir() else None) if annotate else None

    def close(track_id: int) -> dict[str, Any] | None:
        s = states.pop(track_id, None)
        if s is None or s.frames < min_frames:
            return None
        return _record(s, search)

    interrupted = False
    try:
        try:
            for frame in frames(source, every=every, max_frames=max_frames, on_unreadable=on_unreadable, live=live):
                faces = finder.find(frame.rgb)
                labels, mask_score = mask_classifier.classify(frame.rgb, faces) if len(faces) else ([], np.zeros(0))
                faces.mask, faces.mask_score = list(labels), np.asarray(mask_score, np.float32)
                ids = tracker.update(faces.boxes, faces.scores)
                _add_to_tracks(states, frame, faces, ids, keep_crops=search is not None)
                if video is not None:
                    video.add(frame.time_s, draw_tracks(frame.rgb, faces, ids))
                if on_frame is not None:
                    on_frame(frame, faces, ids)
                for t in tracker.ended:
                    rec = close(t.id)
                    if rec is not None:
                        yield rec
        except KeyboardInterrupt:  # a camera has no end: Ctrl-C ends it, and the open tracks are still given
            interrupted = True
        for tid in sorted(states):
            rec = close(tid)
            if rec is not None:
                yield rec
    finally:
        if video is not None:
            video.close()
    if interrupted:
        raise KeyboardInterrupt


FOLDER_FPS = 10.0  # an image folder has no clock


class AnnotatedVideo:
    """The annotated frames as an mp4 that plays at the source's pace: its frame rate comes from the first two
    frames' times, since ``every`` and live reading keep only some of the source's frames (``fps`` fixes it)."""

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        self.path, self.fps = Path(path), fps
        self._writer: cv2.VideoWriter | None = None
        self._first: tuple[float, np.ndarray] | None = None  # held until the second frame gives the rate

    def add(self, time_s: float, bgr: np.ndarray) -> None:
        if self._writer is None:
            if self.fps is None and self._first is None:
                self._first = (time_s, bgr)
                return
            step = time_s - self._first[0] if self._first is not None else 0.0
            self._open(bgr.shape, self.fps or (float(np.clip(1.0 / step, 0.5, 120.0)) if step > 0 else FOLDER_FPS))
        self._writer.write(bgr)

    def _open(self, shape: tuple[int, ...], fps: float) -> None:
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
        if not self._writer.isOpened():
            raise OSError(f"cannot write video {self.path}")
        if self._first is not None:
            self._writer.write(self._first[1])
            self._first = None

    def close(self) -> None:
        if self._writer is None and self._first is not None:  # a single frame
            self._open(self._first[1].shape, self.fps or FOLDER_FPS)
        if self._writer is not None:
            self._writer.release()


_COLOURS = {"none": (0, 200, 255), "correct": (0, 200, 0), "incorrect": (0, 0, 255)}  # BGR


def draw_tracks(rgb: np.ndarray, faces: Faces, ids: np.ndarray) -> np.ndarray:
    """A BGR frame with each face's box, track id and mask state drawn."""
    out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    for i in range(len(faces)):
        x0, y0, x1, y1 = [int(round(v)) for v in faces.boxes[i]]
        state = faces.mask[i] if faces.mask else "none"
        colour = _COLOURS.get(state, (255, 255, 255))
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, 2)
        label = f"#{ids[i]} {state}" if ids[i] >= 0 else state
        cv2.putText(out, label, (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return out


# ------------------------------------------------------------------------------------------------- COCO


def coco_detections(results: list[tuple[str, Faces]], *, image_ids: dict[str, int] | None = None) -> dict[str, Any]:
    """COCO-format detections of several images: ``[(file name, Faces), ...]`` -> a dict to ``json.dump``.

    The dict has ``images``, ``categories`` (one per mask state: 1 none, 2 correct, 3 incorrect; a face without
    a mask state counts as 1) and ``annotations`` with ``bbox`` as [x, y, width, height], ``score``,
    ``keypoints`` (5 points, visibility 2) and ``mask_score``. ``annotations`` alone is the list COCO's results
    loader (``COCO.loadRes``) takes.

    >>> doc = coco_detections([("a.jpg", faces)])                         # doctest: +SKIP
    >>> doc["annotations"][0]["bbox"], doc["annotations"][0]["category_id"]   # doctest: +SKIP
    """
    categories = [{"id": i + 1, "name": f"face_{m}_mask" if m != "none" else "face_no_mask", "supercategory": "face",
                   "keypoints": ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"], "skeleton": []}
                  for i, m in enumerate(MASK_STATES)]
    images, annotations = [], []
    for n, (name, faces) in enumerate(results):
        image_id = (image_ids or {}).get(name, n + 1)
        h, w = faces.image_size
        images.append({"id": image_id, "file_name": str(name), "height": int(h), "width": int(w)})
        for i in range(len(faces)):
            x0, y0, x1, y1 = (float(v) for v in faces.boxes[i])
            state = faces.mask[i] if faces.mask else "none"
            kp = []
            for x, y in faces.landmarks[i]:
                kp += [round(float(x), 2), round(float(y), 2), 2]
            ann = {
                "id": len(annotations) + 1, "image_id": image_id, "category_id": MASK_STATES.index(state) + 1,
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "area": round((x1 - x0) * (y1 - y0), 2), "iscrowd": 0, "score": round(float(faces.scores[i]), 5),
                "keypoints": kp, "num_keypoints": 5,
            }
            if faces.mask_score is not None:
                ann["mask_score"] = round(float(faces.mask_score[i]), 5)
            if faces.detector:
                ann["detector"] = faces.detector[i]
            annotations.append(ann)
    return {"info": {"description": "periface detections"}, "images": images, "categories": categories,
            "annotations": annotations}


def write_jsonl(records: Iterator[dict[str, Any]], stream: Any) -> int:
    """Write records as JSON lines, flushing each (so a stream's consumer sees tracks as they end)."""
    n = 0
    for rec in records:
        stream.write(json.dumps(rec) + "\n")
        stream.flush()
        n += 1
    return n
