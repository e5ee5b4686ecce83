"""Frames of a video file, a stream or a folder of images; a camera's stream read live, newest frame first."""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from ..errors import ImageError, VideoError
from ..image import IMAGE_SUFFIXES, images_in, load_image


@dataclass(frozen=True)
class Frame:
    index: int
    time_s: float
    rgb: np.ndarray


def is_stream(source: str | Path) -> bool:
    """Whether ``source`` is a stream URL (rtsp://, http://, ...) rather than a file or a folder."""
    return "://" in str(source) and not Path(str(source)).exists()


def frames(source: str | Path, *, every: int = 1, max_frames: int | None = None,
           on_unreadable: Callable[[str, str], None] | None = None, live: bool | None = None) -> Iterator[Frame]:
    """RGB frames of a video file, a stream URL or a folder of images; ``every`` keeps one frame in ``every``.

    A folder's images are read like any image (``periface.image.load_image``); one that cannot be read is skipped and
    reported to ``on_unreadable(file, reason)`` (default: a ``UnreadableFrameWarning``). Raises ``VideoError`` when
    the source cannot be opened or yields no frame at all.
    ``live`` (the default for a stream URL without a frame count: a camera, not a video file served over HTTP): the
    source is read on its own thread and each frame given is the newest one (``Frame.index`` counts the frames
    skipped), so that processing slower than the camera stays on the present instead of falling further behind a
    growing backlog; ``every`` does not apply then. A file read live plays at its own frame rate, as a camera would
    send it.
    """
    src = str(source)
    path = Path(src)
    emitted = 0
    if path.is_dir():
        files = images_in(path)
        if not files:
            raise VideoError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder", source=src)
        for i, f in enumerate(files[::every]):
            if max_frames is not None and emitted >= max_frames:
                break
            try:
                rgb = load_image(f)
            except ImageError as e:
                (on_unreadable or _warn_unreadable)(str(f), e.reason)
                continue
            emitted += 1
            yield Frame(i * every, float(i * every), rgb)
        if not emitted:
            raise VideoError("none of the folder's images could be read", source=src)
        return
    if "://" not in src and not path.exists():
        raise VideoError("file not found", source=src)
    cap = cv2.VideoCapture(src)
    if not cap.isOpened():
        raise VideoError("cannot open: not a video OpenCV can decode, a damaged file, or an unreachable stream",
                         source=src)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if live is None:
        live = is_stream(src) and not cap.get(cv2.CAP_PROP_FRAME_COUNT) > 0
    if live:
        yield from _newest_frames(LatestFrame(cap, fps, paced=not is_stream(src)), src, max_frames)
        return
    index = 0
    try:
        while max_frames is None or emitted < max_frames:
            if index % every and cap.grab():  # skip without decoding
                index += 1
                continue
            ok, bgr = cap.read()
            if not ok:
                break
            yield Frame(index, _frame_time(cap, index, fps), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
            emitted += 1
    finally:
        cap.release()
    if not emitted:
        raise _nothing_decoded(src)


def _frame_time(capture: Any, index: int, fps: float) -> float:
    """Seconds from the start: from the frame rate when the source gives one, else from the decoder's clock."""
    return float(index / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)


def _nothing_decoded(src: str) -> VideoError:
    return VideoError("no frame could be decoded: not a video, or a damaged one", source=src)


class LatestFrame:
    """Reads a capture (anything with ``read()`` and ``release()``, as ``cv2.VideoCapture``) on its own thread and
    keeps only the newest frame; ``take()`` waits for a frame newer than the last one taken. ``paced``: frame i is
    not given before i / ``fps`` seconds (a file played as a camera; a stream paces itself)."""

    def __init__(self, capture: Any, fps: float = 0.0, paced: bool = False) -> None:
        self._capture, self._fps, self._paced = capture, fps, paced and fps > 0
        self._newest: tuple[int, float, np.ndarray] | None = None
        self._ended = self._stopping = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="periface-stream", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        index, start = 0, time.monotonic()
        try:
            while not self._stopping:
                ok, bgr = self._capture.read()
                if not ok:
                    break
                t = _frame_time(self._capture, index, self._fps)
                if self._paced:
                    time.sleep(max(0.0, start + t - time.monotonic()))
                with self._changed:
                    self._newest = (index, t, bgr)
                    self._changed.notify_all()
                index += 1
        finally:
            self._capture.release()
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def take(self) -> tuple[int, float, np.ndarray] | None:
        """(index, time in s, BGR frame) of the newest frame not taken yet; None once the source has ended."""
        with self._changed:
            self._changed.wait_for(lambda: self._newest is not None or self._ended)
            newest, self._newest = self._newest, None
            return newest

    def stop(self) -> None:
        self._stopping = True
        self._reader.join(timeout=5.0)  # a read blocked on a silent stream ends with the daemon thread


def _newest_frames(latest: LatestFrame, src: str, max_frames: int | None) -> Iterator[Frame]:
    emitted = 0
    try:
        while max_frames is None or emitted < max_frames:
            newest = latest.take()
            if newest is None:
                break
            index, t, bgr = newest
            yield Frame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            emitted += 1
    finally:
        latest.stop()
    if not emitted:
        raise _nothing_decoded(src)


class UnreadableFrameWarning(UserWarning):
    """An image in a folder read as a video could not be read and was skipped."""


def _warn_unreadable(file: str, reason: str) -> None:
    warnings.warn(f"{file}: skipped, {reason}", UnreadableFrameWarning, stacklevel=3)
