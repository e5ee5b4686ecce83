"""The screening decision: blackbody drift correction, distance, canthus reading, core estimate, flag.

A flag means "check this person with a clinical thermometer" (IEC 80601-2-59, ISO/TR 13154). It is never a
diagnosis of fever or of infection.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Callable

import cv2
import numpy as np

from ..errors import PerifaceError
from .canthus import CanthusReading, measure_canthus
from .core_model import CanthusCoreModel
from .formats import ThermalFrame
from .planck import Radiometry, retarget
from .registration import Homography

Detector = Callable[[np.ndarray], np.ndarray]
FACE_WIDTH_M = 0.16
"""A typical adult face box is about 16 cm wide; with the field of view this gives the distance."""
SKIN_EMISSIVITY = 0.98


class BlackbodyError(PerifaceError):
    code = "bad_blackbody"
    exit_code = 2
    http_status = 422


@dataclass(frozen=True)
class Blackbody:
    """A reference source in view: region ``x, y, w, h`` (thermal pixels) held at ``temperature`` °C."""

    x: int
    y: int
    w: int
    h: int
    temperature: float

    @classmethod
    def parse(cls, text: str) -> "Blackbody":
        """``"x,y,w,h,T"``, e.g. ``Blackbody.parse("280,190,24,24,35.0")``."""
        try:
            x, y, w, h, t = (float(v) for v in text.split(","))
        except ValueError:
            raise BlackbodyError(f"blackbody must be x,y,w,h,T (five numbers), got {text!r}") from None
        if w < 1 or h < 1:
            raise BlackbodyError("blackbody region must be at least 1x1 pixel")
        return cls(int(x), int(y), int(w), int(h), t)

    def offset(self, temperature: np.ndarray) -> float:
        """Correction to add to every pixel so the blackbody reads its set temperature."""
        hh, ww = temperature.shape
        if self.x < 0 or self.y < 0 or self.x + self.w > ww or self.y + self.h > hh:
            raise BlackbodyError(f"blackbody region {self.x},{self.y},{self.w},{self.h} is outside the "
                                 f"{ww}x{hh} frame")
        # The region's edge pixels mix with the background through the optics; use its inner part.
        m = max(min(self.w, self.h) // 4, 0)
        roi = temperature[self.y + m:self.y + self.h - m, self.x + m:self.x + self.w - m]
        return float(self.temperature - np.nanmedian(roi))


@dataclass
class ScreeningSettings:
    """Thresholds of the flag rules and measurement limits."""

    threshold: float = 37.5
    """Absolute rule: estimated core temperature at or above this (°C) flags."""
    relative_offset: float = 1.0
    """Relative rule (ISO/TR 13154): flag when the estimate exceeds the running median by this (°C)."""
    window: int = 50
    """Running median over the last N measured people."""
    min_population: int = 10
    """The relative rule waits for this many people before it applies."""
    ambient: float | None = None
    """Room temperature (°C) for the core model; default: the file's atmosphere temperature, else 24."""
    min_face_px: float | None = None


@dataclass
class ScreenedFace:
    box: list[float]
    canthus_c: float | None
    core_c: float | None
    flag: bool
    reasons: list[str]
    quality: float
    measurable: bool
    distance_m: float | None
    masked: bool
    eyes_occluded: bool
    canthus_points: list[list[float]]
    notes: list[str]


@dataclass
class ScreeningResult:
    source: str
    faces: list[ScreenedFace]
    blackbody_offset_c: float | None
    ambient_c: float
    population_median_c: float | None
    population_size: int
    notice: str = ("A flag means: check this person with a clinical thermometer. "
                   "Screening thermography does not diagnose fever or infection.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Screener:
    """Keeps the population statistics across frames (``periface screen --watch``)."""

    settings: ScreeningSettings = field(default_factory=ScreeningSettings)
    model: CanthusCoreModel | None = None
    history: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.model = self.model or CanthusCoreModel.load()
        self.history = deque(self.history, maxlen=self.settings.window)

    def median(self) -> float | None:
        if len(self.history) < self.settings.min_population:
            return None
        return float(np.median(self.history))

    def decide(self, core: float) -> tuple[bool, list[str]]:
        reasons = []
        if core >= self.settings.threshold:
            reasons.append(f"estimated core {core:.2f} °C >= {self.settings.threshold:.2f} °C")
        med = self.median()
        if med is not None and core >= med + self.settings.relative_offset:
            reasons.append(f"estimated core {core:.2f} °C is {core - med:.2f} °C above the running median "
                           f"{med:.2f} °C of the last {len(self.history)} people")
        return bool(reasons), reasons


def estimate_distance(face_px: float, image_width_px: int, fov_deg: float | None) -> float | None:
    """Camera-to-face distance (m) from the face width in pixels and the horizontal field of view.

    >>> round(estimate_distance(40, 320, 24.0), 2)
    3.01
    """
    if not fov_deg or face_px <= 0:
        return None
    focal_px = image_width_px / (2 * np.tan(np.radians(fov_deg) / 2))
    return float(FACE_WIDTH_M * focal_px / face_px)


def _default_visible_detector(image: np.ndarray) -> np.ndarray:
    from periface import Engine  # type: ignore[attr-defined]  # lazy: the visible engine is heavy

    # Only boxes are needed here: skip the embedder and the mask classifier.
    return np.asarray(Engine().analyze(image, embed=False, mask=False).boxes, np.float64).reshape(-1, 4)


def _default_thermal_detector(temperature: np.ndarray) -> np.ndarray:
    from .detect import ThermalFaceDetector

    return ThermalFaceDetector().detect(temperature)[0]


def screen_frame(frame: ThermalFrame, *, boxes: np.ndarray | None = None, visible: np.ndarray | None = None,
                 registration: Homography | None = None, blackbody: Blackbody | None = None,
                 screener: Screener | None = None, detect_visible: Detector | None = None,
                 detect_thermal: Detector | None = None) -> ScreeningResult:
    """Screen every face in a thermal frame.

    >>> from periface.thermal.synthetic import synthetic_scene
    >>> scene = synthetic_scene(seed=0)
    >>> res = screen_frame(scene.frame, boxes=np.array([f.box for f in scene.truth]),
    ...                    blackbody=Blackbody(*scene.blackbody))
    >>> [f.flag for f in res.faces]
    [False, True]

    Faces come from ``boxes`` (thermal pixels) if given; else from ``visible`` + ``registration`` (dual-spectrum:
    ``detect_visible`` finds faces in the visible frame, the homography maps them); else from the thermal
    detector. Each face: canthus temperature after blackbody and distance correction, estimated core, flag.
    """
    screener = screener or Screener()
    settings = screener.settings
    temperature = frame.temperature.astype(np.float32)
    offset = None
    if blackbody is not None:
        offset = blackbody.offset(temperature)
        temperature = temperature + offset
    if boxes is None:
        if visible is not None:
            if registration is None:
                raise PerifaceError("a visible frame needs a registration (homography JSON) to map its faces")
            vis_boxes = (detect_visible or _default_visible_detector)(visible)
            boxes = registration.map_boxes(vis_boxes)
        else:
            boxes = (detect_thermal or _default_thermal_detector)(temperature)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    rad = frame.radiometry
    ambient = settings.ambient if settings.ambient is not None else (rad.atmosphere if rad else 24.0)
    faces = []
    for box in boxes:
        reading = measure_canthus(temperature, box, settings.min_face_px)
        distance = estimate_distance(reading.face_px, temperature.shape[1], frame.fov_deg)
        canthus = _distance_corrected(reading, rad, distance)
        notes = list(reading.notes)
        core = None
        flag, reasons = False, []
        if reading.measurable and np.isfinite(canthus):
            core = float(screener.model.predict(canthus, ambient)[0])
            flag, reasons = screener.decide(core)
            screener.history.append(core)
        elif not reading.measurable:
            notes.append("not measured: no flag either way; measure this person by other means")
        faces.append(ScreenedFace(
            [round(float(v), 1) for v in box], _r(canthus), _r(core), flag, reasons, reading.quality,
            reading.measurable, _r(distance), reading.masked, reading.eyes_occluded,
            [[round(x, 1), round(y, 1)] for x, y in reading.points], notes))
    return ScreeningResult(frame.source, faces, _r(offset), float(ambient), screener.median(),
                           len(screener.history))


def _distance_corrected(reading: CanthusReading, rad: Radiometry | None, distance: float | None) -> float:
    """Re-derive the canthus temperature for skin emissivity at this face's own distance."""
    t = reading.temperature
    if not np.isfinite(t) or distance is None:
        return t
    # Arrays without radiometry are taken as already corrected for emissivity, at zero distance.
    old = rad if rad is not None else Radiometry(distance=0.0, emissivity=SKIN_EMISSIVITY)
    new = old.with_(distance=min(distance, 30.0), emissivity=SKIN_EMISSIVITY)
    return float(retarget(np.array([t]), old, new)[0])


def _r(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 2)


def annotate(frame: ThermalFrame, result: ScreeningResult, scale: int = 0) -> np.ndarray:
    """An RGB overlay: the thermal frame, each face boxed (red: flagged, green: passed, grey: not measurable)."""
    from .detect import render

    rgb = render(frame.temperature)
    scale = scale or max(1, int(np.ceil(640 / rgb.shape[1])))
    img = np.ascontiguousarray(cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST))
    for f in result.faces:
        colour = (255, 40, 40) if f.flag else ((60, 220, 60) if f.measurable else (160, 160, 160))
        x1, y1, x2, y2 = (int(round(v * scale)) for v in f.box)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 3 if f.flag else 2)
        for x, y in f.canthus_points:
            cv2.circle(img, (int(x * scale), int(y * scale)), max(2, scale), (0, 200, 255), 1)
        label = (f"{f.core_c:.1f}C" if f.core_c is not None else "n/a") + (" CHECK" if f.flag else "")
        cv2.putText(img, label, (x1, max(y1 - 5, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return img
