"""Synthetic masks drawn onto faces from Face Mesh landmarks: surgical, N95, KN95 and cloth, worn three ways.

>>> from periface.image import load_image
>>> result = add_mask(load_image("tests/fixtures/obama.jpg"), seed=3)          # random style, or None: no face
>>> result.image.shape, result.mask_alpha.dtype, result.style.kind
((1024, 819, 3), dtype('float32'), 'kn95')

How a mask is built (all vectorised, deterministic for a given ``rng``):

1. Geometry: four boundary curves (top, bottom, two sides) in 3D, taken from mesh points and blends of mesh rows,
   joined into a Coons patch: a (u, v) grid that bends with the face, so pleats and prints follow its curvature.
   Rigid kinds (N95 cup, KN95 fold) use straighter outlines and a dome/fold depth instead of the face's.
2. Texture: built in (u, v) space (base colour, fabric noise, print, pleats, hems, seam, valve) and warped onto the
   image through a per-pixel (u, v) map interpolated over a triangulation of the grid.
3. Shading: a quadratic fit of the face's own luminance (direction and strength of the light), Lambert shading
   from the mask's depth normals, the photo's exposure and colour cast; a soft contact shadow on the skin.
4. Compositing with an anti-aliased, slightly blurred alpha; ear loops or head straps drawn on top.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from scipy.spatial import Delaunay

from ..errors import ImageError

if TYPE_CHECKING:
    from ..landmarks.facemesh import FaceMeshLandmarker

KINDS = ("surgical", "n95", "kn95", "cloth")
COVERAGES = ("full", "nose_exposed", "chin")
PATTERNS = ("plain", "pleats", "print", "check", "stripes", "dots", "camo")

# Named colours (RGB). Surgical masks come in few colours; cloth in many.
SURGICAL_COLOURS = {
    "blue": (118, 170, 214), "light_blue": (160, 200, 228), "white": (236, 238, 240), "green": (140, 196, 178),
    "pink": (236, 172, 192), "black": (38, 38, 42), "lavender": (178, 168, 220),
}
N95_COLOURS = {"white": (234, 234, 228), "off_white": (222, 216, 200), "grey": (170, 172, 176), "blue": (130, 170, 210)}
KN95_COLOURS = {"white": (236, 236, 236), "black": (40, 40, 44), "grey": (150, 152, 158), "pink": (232, 176, 190),
                "blue": (110, 150, 200)}
CLOTH_COLOURS = {
    "black": (34, 34, 36), "navy": (38, 48, 86), "grey": (120, 122, 126), "denim": (70, 96, 136), "red": (168, 40, 46),
    "beige": (206, 186, 156), "olive": (104, 110, 64), "burgundy": (110, 30, 48), "teal": (40, 120, 126),
    "mustard": (208, 160, 48), "white": (226, 224, 218), "pink": (222, 140, 166), "brown": (112, 78, 54),
}

# Rows of mesh points across the lower face, image left to right, each symmetric around a midline point. Row k's
# first point is the face oval's k-th point below ear level (234, 93, 132, 58, 172), which ties the rows to the sides.
_ROW_L = {
    "A": (234, 227, 116, 117, 118, 119, 47),  # under the eyes, across the cheekbones
    "B": (93, 137, 123, 50, 101, 36, 129),  # nostril level
    "C": (132, 177, 147, 187, 205, 206, 165),  # just under the nose
    "D": (58, 215, 213, 192, 214, 212, 57),  # mouth corners
    "E": (172, 138, 135, 210, 204, 182, 83),  # under the lower lip
}
_ROW_R = {
    "A": (454, 447, 345, 346, 347, 348, 277),
    "B": (323, 366, 352, 280, 330, 266, 358),
    "C": (361, 401, 376, 411, 425, 426, 391),
    "D": (288, 435, 433, 416, 434, 432, 287),
    "E": (397, 367, 364, 430, 424, 406, 313),
}
_ROW_INDEX = {"A": 0, "B": 1, "C": 2, "D": 3, "E": 4}
_JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
_JAW_MID = 10  # index of 152 (menton) in _JAW
_NU, _NV = 17, 11  # grid resolution of the Coons patch


@dataclass(frozen=True)
class MaskStyle:
    """Everything that decides how one mask looks; ``random_style`` draws one.

    kind: surgical | n95 | kn95 | cloth. coverage: full (nose covered) | nose_exposed | chin.
    pattern: plain | pleats | print | check | stripes | dots | camo. Colours are RGB tuples.
    jitter: (dx, dy, angle_deg, scale) applied to the mask around the nose tip, dx/dy in face widths.
    """

    kind: str = "surgical"
    colour: tuple[int, int, int] = SURGICAL_COLOURS["blue"]
    colour_name: str = "blue"
    pattern: str = "pleats"
    coverage: str = "full"
    accent: tuple[int, int, int] = (255, 255, 255)  # second colour of prints, checks, stripes, dots, camo
    straps: bool = True
    strap_colour: tuple[int, int, int] = (240, 240, 240)
    opacity: float = 1.0
    edge_softness: float = 0.6  # alpha blur, in pixels per 100 px of face size
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    top_shift: float = 0.5  # 0..1: where inside its coverage band the top edge sits
    valve: bool = False  # N95 exhalation valve
    seam: bool = False  # vertical centre seam (always on KN95; contoured cloth masks)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.coverage not in COVERAGES:
            raise ValueError(f"coverage must be one of {COVERAGES}, got {self.coverage!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {self.pattern!r}")

    def describe(self) -> dict[str, object]:
        """A JSON-friendly description."""
        return {
            "kind": self.kind, "colour": self.colour_name, "pattern": self.pattern, "coverage": self.coverage,
            "straps": self.straps, "valve": self.valve, "seam": self.seam,
            "jitter": [round(float(j), 4) for j in self.jitter],
        }


@dataclass(frozen=True)
class RenderResult:
    """The masked image (RGB uint8), the mask's alpha (float32 0..1, straps excluded) and the style drawn."""

    image: np.ndarray
    mask_alpha: np.ndarray
    style: MaskStyle


@lru_cache(maxsize=1)
def renderer_fingerprint() -> str:
    """SHA-256 of this module's source: it changes whenever the way masks are drawn may have changed, so that
    anything cached from renders (evaluation embeddings) is keyed by it and never read after such a change."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _pick(rng: np.random.Generator, options: dict, weights: list[float] | None = None) -> tuple[str, tuple]:
    names = list(options)
    p = None if weights is None else np.asarray(weights, float) / np.sum(weights)
    name = names[int(rng.choice(len(names), p=p))]
    return name, options[name]


def random_style(rng: np.random.Generator, coverage: str | None = None, kind: str | None = None) -> MaskStyle:
    """Draw a style: kind, colour, pattern, coverage, straps, softness and placement jitter.

    >>> random_style(np.random.default_rng(0), coverage="chin").coverage
    'chin'
    """
    if kind is None:
        kind = KINDS[int(rng.choice(4, p=[0.45, 0.15, 0.15, 0.25]))]
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if coverage is None:
        coverage = COVERAGES[int(rng.choice(3, p=[0.5, 0.3, 0.2]))]
    if coverage not in COVERAGES:
        raise ValueError(f"coverage must be one of {COVERAGES}, got {coverage!r}")
    accent: tuple = (255, 255, 255)
    valve = seam = False
    pattern = "plain"
    if kind == "surgical":
        name, colour = _pick(rng, SURGICAL_COLOURS, [0.42, 0.1, 0.14, 0.08, 0.08, 0.14, 0.04])
        pattern = "pleats"
        strap_colour = (245, 245, 245) if name != "black" else (30, 30, 32)
    elif kind == "n95":
        name, colour = _pick(rng, N95_COLOURS, [0.55, 0.25, 0.1, 0.1])
        valve = bool(rng.random() < 0.35)
        accent = ((236, 236, 236), (220, 120, 40), (90, 96, 104))[int(rng.integers(3))]
        strap_colour = ((225, 230, 235), (236, 210, 120), (130, 160, 210))[int(rng.integers(3))]
    elif kind == "kn95":
        name, colour = _pick(rng, KN95_COLOURS, [0.5, 0.22, 0.1, 0.09, 0.09])
        seam = True
        strap_colour = tuple(int(c) for c in np.clip(np.asarray(colour) * 1.02, 0, 255))
    else:
        name, colour = _pick(rng, CLOTH_COLOURS)
        pattern = ("plain", "print", "check", "stripes", "dots", "camo")[
            int(rng.choice(6, p=[0.3, 0.16, 0.15, 0.14, 0.13, 0.12]))]
        _, accent = _pick(rng, CLOTH_COLOURS)
        if np.abs(np.subtract(accent, colour)).sum() < 90:  # keep patterns visible
            accent = tuple(255 - c for c in colour)
        seam = bool(rng.random() < 0.5)
        strap_colour = tuple(int(c) for c in np.asarray(colour) * 0.9)
    if pattern == "camo":
        colour, accent = ((96, 104, 62), (150, 136, 96)) if rng.random() < 0.5 else ((90, 90, 96), (170, 170, 172))
        name = "camo"
    jitter = (float(rng.normal(0, 0.015)), float(rng.normal(0, 0.015)), float(rng.normal(0, 3.0)),
              float(rng.uniform(0.96, 1.05)))
    return MaskStyle(
        kind=kind, colour=tuple(int(c) for c in colour), colour_name=name, pattern=pattern, coverage=coverage,
        accent=tuple(int(c) for c in accent), straps=bool(rng.random() < 0.85),
        strap_colour=tuple(int(c) for c in strap_colour), opacity=float(rng.uniform(0.94, 1.0)),
        edge_softness=float(rng.uniform(0.3, 1.0)), jitter=jitter, top_shift=float(rng.random()), valve=valve,
        seam=seam,
    )


# --------------------------------------------------------------------------------------------------- geometry


def _lerp(a: np.ndarray, b: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    return a + (b - a) * t


def _resample(poly: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length (in x, y) along a polyline of 3D points."""
    seg = np.linalg.norm(np.diff(poly[:, :2], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 1e-9:
        return np.repeat(poly[:1], n, axis=0)
    t = np.linspace(0, s[-1], n)
    return np.stack([np.interp(t, s, poly[:, k]) for k in range(poly.shape[1])], axis=1)


def _resample_halves(poly: np.ndarray, mid: int, n: int) -> np.ndarray:
    """Resample so that point ``mid`` (the face's midline) lands exactly at u = 0.5; ``n`` must be odd."""
    half = n // 2 + 1
    left = _resample(poly[: mid + 1], half)
    right = _resample(poly[mid:], half)
    return np.concatenate([left, right[1:]])


def _jaw(mesh: np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """A point on the lower face oval at fractional index ``s`` of ``_JAW`` (0 = image-left ear level)."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0, len(_JAW) - 1)
    i = np.minimum(np.floor(s).astype(int), len(_JAW) - 2)
    f = (s - i)[..., None]
    pts = mesh[list(_JAW)]
    return pts[i] * (1 - f) + pts[i + 1] * f


def _row(mesh: np.ndarray, r: str) -> np.ndarray:
    return mesh[list(_ROW_L[r]) + [0] + list(_ROW_R[r][::-1])]  # index 7 (midline) is replaced by the caller


def _band(mesh: np.ndarray, r0: str, r1: str, t: float) -> np.ndarray:
    return _lerp(_row(mesh, r0), _row(mesh, r1), t)


@dataclass
class _Frame:
    size: float  # face size in pixels
    down: np.ndarray  # unit vector from the eyes to the chin (image plane)
    across: np.ndarray  # unit vector from image-left to image-right of the face
    centre: np.ndarray  # nose tip (x, y, z)


def _frame(mesh: np.ndarray) -> _Frame:
    xy = mesh[:, :2]
    width = float(np.linalg.norm(xy[454] - xy[234]))
    height = float(np.linalg.norm(xy[152] - xy[168]))
    down = (xy[152] - xy[168]) / max(height, 1e-6)
    across = np.array([-down[1], down[0]])
    if np.dot(across, xy[454] - xy[234]) < 0:
        across = -across
    return _Frame(max(width, 1.15 * height, 1.0), down, across, mesh[1].astype(np.float64))


def _top_centre(mesh: np.ndarray, coverage: str, t: float, kind: str) -> np.ndarray:
    if coverage == "full":
        lo, hi = (0.22, 0.42) if kind in ("n95", "kn95") else (0.3, 0.55)
        return _lerp(mesh[168], mesh[1], lo + (hi - lo) * t)
    if coverage == "nose_exposed":
        return _lerp(mesh[2], mesh[0], 0.1 + 0.4 * t)
    return _lerp(mesh[14], mesh[18], 0.25 + 0.5 * t)


def _soft_curves(mesh: np.ndarray, st: MaskStyle) -> tuple[np.ndarray, ...]:
    """Top, bottom, left, right boundary curves (3D) for surgical and cloth masks."""
    t = st.top_shift
    if st.coverage == "full":
        r0, r1, tt = "A", "B", 0.3 * t
        s_bot = 4.0
    elif st.coverage == "nose_exposed":
        r0, r1, tt = "B", "C", 0.55 + 0.45 * t
        s_bot = 4.0
    else:
        r0, r1, tt = "D", "E", 0.5 + 0.5 * t
        s_bot = 5.2
    top = _band(mesh, r0, r1, tt)
    top[7] = _top_centre(mesh, st.coverage, t, st.kind)
    if st.kind == "cloth" and st.seam:  # contoured cloth masks rise to a point over the nose
        top[7] = top[7] + (mesh[168] - mesh[1]) * 0.08
    s_top = _ROW_INDEX[r0] + tt
    last = len(_JAW) - 1
    bottom = _jaw(mesh, np.concatenate([np.linspace(s_bot, _JAW_MID, 6), np.linspace(_JAW_MID, last - s_bot, 6)[1:]]))
    left = _jaw(mesh, np.linspace(s_top, s_bot, 6))
    right = _jaw(mesh, np.linspace(last - s_top, last - s_bot, 6))
    top = _resample_halves(top, 7, _NU)
    for _ in range(3 if st.coverage != "full" else 0):  # under the nose, fabric spans the dips: no notches
        top[1:-1] = 0.25 * top[:-2] + 0.5 * top[1:-1] + 0.25 * top[2:]
    return top, _resample_halves(bottom, 5, _NU), _resample(left, _NV), _resample(right, _NV)


def _rigid_curves(mesh: np.ndarray, st: MaskStyle, fr: _Frame) -> tuple[np.ndarray, ...]:
    """Boundary curves for N95 cups and KN95 folds: straighter, wider under the chin, independent of the jaw."""
    tc_full = _top_centre(mesh, "full", st.top_shift, st.kind)
    tc = _top_centre(mesh, st.coverage, st.top_shift, st.kind)
    shift = (tc - tc_full) * 0.85  # the rigid shell slides down as a whole when worn low
    side_shift = shift * (0.4 if st.coverage == "nose_exposed" else 1.0)  # ...tilting when it sits under the nose
    last = len(_JAW) - 1
    d3 = np.array([*fr.down, 0.0])
    a3 = np.array([*fr.across, 0.0])
    s_top, s_bot, inset = (0.9, 4.6, 0.04) if st.kind == "kn95" else (1.4, 4.8, 0.06)
    st_l, st_r = _jaw(mesh, s_top) + side_shift, _jaw(mesh, last - s_top) + side_shift
    sb_l, sb_r = _jaw(mesh, s_bot) + shift * 0.6, _jaw(mesh, last - s_bot) + shift * 0.6
    inset *= fr.size
    st_l, st_r = st_l + a3 * inset, st_r - a3 * inset
    sb_l, sb_r = sb_l + a3 * inset * 0.5, sb_r - a3 * inset * 0.5
    chin = mesh[152] + shift * 0.5 + d3 * fr.size * (0.07 if st.kind == "kn95" else 0.05)
    if st.kind == "kn95":  # two straight edges meeting over the nose, a pointed curve under the chin
        top = np.stack([st_l, _lerp(st_l, tc, 0.5) - d3 * fr.size * 0.01, tc, _lerp(st_r, tc, 0.5) - d3 * fr.size * 0.01,
                        st_r])
        bl = _lerp(sb_l, chin, 0.55) + d3 * fr.size * 0.03 - a3 * fr.size * 0.02
        br = _lerp(sb_r, chin, 0.55) + d3 * fr.size * 0.03 + a3 * fr.size * 0.02
        bottom = np.stack([sb_l, bl, chin, br, sb_r])
    else:  # a rounded cup
        ang = np.linspace(np.pi, 0, 9)
        mid_top = (st_l + st_r) / 2
        half_w = (st_r - st_l) / 2
        rise = tc - mid_top
        top = mid_top + np.cos(ang)[:, None] * half_w + np.sin(ang)[:, None] ** 1.4 * rise
        mid_bot = (sb_l + sb_r) / 2
        half_wb = (sb_r - sb_l) / 2
        drop = chin - mid_bot
        bottom = mid_bot + np.cos(ang)[:, None] * half_wb + np.sin(ang)[:, None] ** 0.9 * drop
    left = np.stack([st_l, _lerp(st_l, sb_l, 0.5) - a3 * fr.size * 0.015, sb_l])
    right = np.stack([st_r, _lerp(st_r, sb_r, 0.5) + a3 * fr.size * 0.015, sb_r])
    mid_t = len(top) // 2
    mid_b = len(bottom) // 2
    return (_resample_halves(top, mid_t, _NU), _resample_halves(bottom, mid_b, _NU), _resample(left, _NV),
            _resample(right, _NV))


def _coons(top: np.ndarray, bottom: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """A (NV, NU, 3) surface whose edges are the four curves."""
    u = np.linspace(0, 1, top.shape[0])[None, :, None]
    v = np.linspace(0, 1, left.shape[0])[:, None, None]
    ruled_v = (1 - v) * top[None] + v * bottom[None]
    ruled_u = (1 - u) * left[:, None] + u * right[:, None]
    corners = ((1 - u) * (1 - v) * top[0] + u * (1 - v) * top[-1] + (1 - u) * v * bottom[0] + u * v * bottom[-1])
    return ruled_v + ruled_u - corners


def _mask_grid(mesh: np.ndarray, st: MaskStyle, fr: _Frame) -> np.ndarray:
    soft = st.kind in ("surgical", "cloth")
    grid = _coons(*(_soft_curves(mesh, st) if soft else _rigid_curves(mesh, st, fr)))
    u = np.linspace(0, 1, _NU)[None, :]
    v = np.linspace(0, 1, _NV)[:, None]
    xy = grid[..., :2]
    out = xy - fr.centre[:2]
    out /= np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-6)
    side = np.abs(2 * u - 1) ** 4
    if soft:
        # The mask stands off the face: past the cheeks toward the ears and, under the chin, hangs below the jaw.
        xy += out * (fr.size * (0.025 * side + 0.035 * v**3))[..., None]
        xy += fr.down * (fr.size * 0.04 * v**3 * (1 - (2 * u - 1) ** 2))[..., None]
    # Depth: a sheet stretched over nose and chin bulges toward the camera between them.
    bulge = np.sin(np.pi * u) * np.sin(np.pi * np.clip(v, 0, 1))
    grid[..., 2] -= fr.size * (0.06 if soft else 0.16 if st.kind == "n95" else 0.12) * bulge
    if st.kind == "kn95":  # a fold along the centre line: the two halves angle back from the seam
        grid[..., 2] += fr.size * 0.08 * np.abs(2 * u - 1)
    _unfold(xy, fr)
    # Placement jitter: a similarity transform around the nose tip.
    dx, dy, ang, scale = st.jitter
    c, s = np.cos(np.deg2rad(ang)) * scale, np.sin(np.deg2rad(ang)) * scale
    rel = xy - fr.centre[:2]
    xy[...] = fr.centre[:2] + np.stack([c * rel[..., 0] - s * rel[..., 1], s * rel[..., 0] + c * rel[..., 1]], -1)
    xy += (fr.across * dx + fr.down * dy) * fr.size
    return grid


def _unfold(xy: np.ndarray, fr: _Frame) -> None:
    """Make every grid row run strictly from image left to image right (in place).

    On a turned head the nose sticks out past the far cheek's outline; a mask drawn to that outline would fold
    over itself. Points that fall behind their neighbour nearer the midline are pushed out beyond it.
    """
    a = xy @ fr.across
    gap = 0.012 * fr.size
    mid = _NU // 2
    fixed = a.copy()
    for j in range(mid + 1, _NU):
        fixed[:, j] = np.maximum(fixed[:, j], fixed[:, j - 1] + gap)
    for j in range(mid - 1, -1, -1):
        fixed[:, j] = np.minimum(fixed[:, j], fixed[:, j + 1] - gap)
    xy += (fixed - a)[..., None] * fr.across


def _outline(grid: np.ndarray) -> np.ndarray:
    return np.concatenate([grid[0, :, :2], grid[1:, -1, :2], grid[-1, -2::-1, :2], grid[-2:0:-1, 0, :2]])


# ---------------------------------------------------------------------------------------------------- texture


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    small = rng.random((max(cells[0], 2), max(cells[1], 2))).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _texture(st: MaskStyle, rng: np.random.Generator, tw: int, th: int) -> np.ndarray:
    """(th, tw, 3) float32 colour in 0..1, laid out in mask (u, v) space (u across, v down)."""
    u = (np.arange(tw, dtype=np.float32) + 0.5) / tw
    v = (np.arange(th, dtype=np.float32) + 0.5) / th
    uu, vv = np.meshgrid(u, v)
    base = np.asarray(st.colour, np.float32) / 255.0
    acc = np.asarray(st.accent, np.float32) / 255.0
    tex = np.broadcast_to(base, (th, tw, 3)).copy()
    # Physical scale: the mask is ~18 cm across and ~11 cm tall; pattern periods are given in cm.
    xs, ys = uu * 18.0, vv * 11.0
    p = st.pattern
    if p == "check":
        period = rng.uniform(1.2, 2.5)
        a = (np.sin(2 * np.pi * xs / period) > 0).astype(np.float32)
        b = (np.sin(2 * np.pi * ys / period) > 0).astype(np.float32)
        w = (0.45 * a + 0.45 * b)[..., None]
        tex = tex * (1 - w) + acc * w
    elif p == "stripes":
        period = rng.uniform(0.8, 2.2)
        theta = rng.choice([0.0, np.pi / 2, np.pi / 4, -np.pi / 4])
        coord = xs * np.cos(theta) + ys * np.sin(theta)
        w = (np.sin(2 * np.pi * coord / period) > rng.uniform(-0.4, 0.4)).astype(np.float32)[..., None]
        tex = tex * (1 - w) + acc * w
    elif p == "dots":
        period = rng.uniform(0.9, 1.8)
        radius = period * rng.uniform(0.15, 0.3)
        gx = xs + (np.floor(ys / period) % 2) * period / 2  # staggered rows
        d = np.hypot((gx % period) - period / 2, (ys % period) - period / 2)
        w = np.clip((radius - d) / 0.08 + 0.5, 0, 1)[..., None]
        tex = tex * (1 - w) + acc * w
    elif p == "camo":
        n1 = _smooth_noise(rng, (th, tw), (5, 8)) + 0.5 * _smooth_noise(rng, (th, tw), (11, 18))
        n2 = _smooth_noise(rng, (th, tw), (6, 9))
        dark = base * 0.55
        tex = np.where((n1 > 0.85)[..., None], acc, tex)
        tex = np.where((n2 > 0.62)[..., None], dark, tex)
    elif p == "print":
        # Scattered small motifs (flowers = a dot ringed by petals) in two colours.
        mask = np.zeros((th, tw), np.float32)
        centres = np.zeros((th, tw), np.float32)
        n = int(rng.integers(18, 40))
        r = max(2, int(min(tw, th) * rng.uniform(0.04, 0.07)))
        for _ in range(n):  # a few dozen draw calls, not per-pixel work
            cx, cy = int(rng.integers(0, tw)), int(rng.integers(0, th))
            for k in range(5):
                a = 2 * np.pi * k / 5 + rng.uniform(0, 1)
                cv2.circle(mask, (int(cx + r * np.cos(a)), int(cy + r * np.sin(a))), r, 1.0, -1, cv2.LINE_AA)
            cv2.circle(centres, (cx, cy), max(1, r // 2), 1.0, -1, cv2.LINE_AA)
        w = mask[..., None]
        tex = tex * (1 - w) + acc * w
        c = centres[..., None]
        tex = tex * (1 - c) + (1 - acc) * 0.8 * c
    # Fabric: low-contrast blotches (non-woven) plus fine grain; cloth also gets a weave.
    grain = rng.normal(0, 0.025 if st.kind == "cloth" else 0.015, (th, tw)).astype(np.float32)
    blotch = (_smooth_noise(rng, (th, tw), (th // 6 + 2, tw // 6 + 2)) - 0.5) * 0.05
    shade = 1.0 + grain + blotch
    if st.kind == "cloth":
        f = tw / 4.0
        shade += 0.025 * np.sin(2 * np.pi * uu * f) * np.sin(2 * np.pi * vv * f * th / tw)
    if st.kind == "surgical":
        shade *= _pleats(uu, vv, rng)
        hem = (vv < 0.07) | (vv > 0.93) | (uu < 0.04) | (uu > 0.96)
        shade = np.where(hem, shade * 0.96, shade)
        # The nose wire: a slightly raised strip along the top edge.
        wire = (vv < 0.06) & (np.abs(uu - 0.5) < 0.17)
        shade = np.where(wire, shade * 1.04, shade)
    if st.kind == "kn95":
        d_edge = np.minimum.reduce([uu, 1 - uu, vv * 0.6, (1 - vv) * 0.6])
        weld = (d_edge > 0.015) & (d_edge < 0.03)
        shade = np.where(weld, shade * 0.93, shade)
    if st.seam or st.kind == "kn95":
        seam = np.exp(-(((uu - 0.5) * tw) / 1.2) ** 2)
        shade *= 1 - 0.25 * seam
        shade += 0.06 * np.exp(-(((uu - 0.5) * tw - 2.0) / 1.5) ** 2)  # the lit side of the fold
    if st.kind == "n95":
        rim = np.minimum.reduce([uu, 1 - uu, vv, 1 - vv])
        shade *= 1 - 0.08 * np.exp(-rim / 0.02)
        if st.valve:
            cu = 0.68 if rng.random() < 0.5 else 0.32
            d = np.hypot((uu - cu) * 18.0, (vv - 0.62) * 11.0)
            w = np.clip((2.1 - d) / 0.15, 0, 1)[..., None]
            valve = np.asarray(st.accent, np.float32) / 255.0
            tex = tex * (1 - w) + valve * w
            shade = np.where((d > 1.85) & (d < 2.1), shade * 0.8, shade)
            shade = np.where((d < 1.5) & (np.abs(((vv - 0.62) * 11.0) % 0.5 - 0.25) < 0.08), shade * 0.82, shade)
    return np.clip(tex * shade[..., None], 0, 1.2)


def _pleats(uu: np.ndarray, vv: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three horizontal folds: a dark crease under a lit ridge; they bunch together toward the ear loops."""
    n = int(rng.choice([2, 3, 3, 3, 4]))
    centres = np.linspace(0.28, 0.76, n) + rng.normal(0, 0.02, n)
    squeeze = 1 - 0.4 * np.abs(2 * uu - 1) ** 2
    out = np.ones_like(uu)
    for c in centres:
        vc = 0.5 + (c - 0.5) * squeeze
        d = vv - vc
        out -= 0.22 * np.exp(-(d / 0.012) ** 2)  # the crease
        out += 0.08 * np.exp(-((d + 0.04) / 0.03) ** 2)  # the ridge above it catches light
        out -= 0.06 * np.clip(d / 0.08, 0, 1) * (d < 0.08)  # the face of the next fold is turned down
    return out


# ---------------------------------------------------------------------------------------------------- render


def _extend(a: np.ndarray) -> np.ndarray:
    """Grow a (NV, NU, ...) array by half a cell on every side, by linear extrapolation."""
    a = np.concatenate([a[:1] + 0.5 * (a[:1] - a[1:2]), a, a[-1:] + 0.5 * (a[-1:] - a[-2:-1])], axis=0)
    return np.concatenate([a[:, :1] + 0.5 * (a[:, :1] - a[:, 1:2]), a, a[:, -1:] + 0.5 * (a[:, -1:] - a[:, -2:-1])],
                          axis=1)


def _uvz_maps(grid: np.ndarray, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (u, v, z) over a (h, w) window at (x0, y0), by linear interpolation on a triangulated grid.

    The grid is first grown by half a cell so that the anti-aliased rim of the outline still gets values.
    """
    uu, vv = np.meshgrid(np.linspace(0, 1, _NU), np.linspace(0, 1, _NV))
    ext = _extend(np.concatenate([grid, uu[..., None], vv[..., None]], axis=-1))
    pts = ext[..., :2].reshape(-1, 2)
    vals = ext[..., [3, 4, 2]].reshape(-1, 3)
    tri = Delaunay(pts)
    ys, xs = np.mgrid[y0:y0 + h, x0:x0 + w]
    q = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1).astype(np.float64)
    simplex = tri.find_simplex(q)
    inside = simplex >= 0
    out = np.empty((q.shape[0], 3))
    out[:] = (0.5, 0.5, float(grid[..., 2].mean()))
    T = tri.transform[simplex[inside]]
    b = np.einsum("nij,nj->ni", T[:, :2], q[inside] - T[:, 2])
    bary = np.concatenate([b, 1 - b.sum(axis=1, keepdims=True)], axis=1)
    out[inside] = np.einsum("nk,nkc->nc", bary, vals[tri.simplices[simplex[inside]]])
    return out.reshape(h, w, 3), inside.reshape(h, w)


def render_mask(rgb: np.ndarray, mesh: np.ndarray, style: MaskStyle, rng: np.random.Generator) -> RenderResult:
    """Draw ``style`` onto the face whose (468, 3) pixel mesh is given; returns a new image.

    >>> res = render_mask(img, mesh, random_style(rng), rng)
    >>> res.mask_alpha[int(mesh[1, 1]), int(mesh[1, 0])]   # nose tip covered for coverage == "full"
    """
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ImageError("render_mask expects an RGB uint8 array of shape (H, W, 3)")
    mesh = np.asarray(mesh, dtype=np.float64)
    if mesh.shape != (468, 3) or not np.all(np.isfinite(mesh)):
        raise ValueError(f"mesh must be a finite (468, 3) array, got {mesh.shape}")
    H, W = rgb.shape[:2]
    fr = _frame(mesh)
    grid = _mask_grid(mesh, style, fr)
    outline = _outline(grid)
    straps = _strap_paths(mesh, grid, style, fr) if style.straps else []
    allpts = np.concatenate([outline] + [s for s in straps]) if straps else outline
    pad = int(np.ceil(0.05 * fr.size)) + 3
    x0 = int(np.clip(np.floor(allpts[:, 0].min()) - pad, 0, W))
    y0 = int(np.clip(np.floor(allpts[:, 1].min()) - pad, 0, H))
    x1 = int(np.clip(np.ceil(allpts[:, 0].max()) + pad, 0, W))
    y1 = int(np.clip(np.ceil(allpts[:, 1].max()) + pad, 0, H))
    image = rgb.copy()
    alpha_full = np.zeros((H, W), np.float32)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the mask lies entirely outside the image
        return RenderResult(image, alpha_full, style)
    w, h = x1 - x0, y1 - y0
    crop = rgb[y0:y1, x0:x1].astype(np.float32) / 255.0

    # Alpha: an anti-aliased polygon at 1/16 pixel precision, softened a little.
    alpha = np.zeros((h, w), np.float32)
    shift = 4
    poly = np.round((outline - [x0, y0]) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(alpha, [poly], 1.0, cv2.LINE_AA, shift)
    soft = style.edge_softness * fr.size / 100.0
    if soft > 0.25:
        alpha = cv2.GaussianBlur(alpha, (0, 0), soft)
    alpha *= style.opacity

    uvz, _ = _uvz_maps(grid, x0, y0, w, h)
    mw = float(np.linalg.norm(grid[_NV // 2, -1, :2] - grid[_NV // 2, 0, :2]))
    tw = int(np.clip(mw * 1.5, 48, 768))
    th = int(np.clip(tw * 0.62, 32, 512))
    tex = _texture(style, rng, tw, th)
    mx = (uvz[..., 0] * tw - 0.5).astype(np.float32)
    my = (uvz[..., 1] * th - 0.5).astype(np.float32)
    colour = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    shading = _shading(rgb, mesh, uvz[..., 2], fr, x0, y0, w, h, rng)
    cast = _colour_cast(crop)
    mask_rgb = np.clip(colour * shading[..., None] * cast, 0, 1)
    # Match the photo's softness and grain so the mask does not look pasted on.
    blur = 0.35 + 0.25 * fr.size / 160.0
    mask_rgb = cv2.GaussianBlur(mask_rgb, (0, 0), blur)
    mask_rgb += rng.normal(0, 0.008, mask_rgb.shape).astype(np.float32)

    # Contact shadow: the mask's rim darkens the skin just beyond it, mostly below/outside the light.
    sh_sigma = max(1.0, 0.02 * fr.size)
    halo = cv2.GaussianBlur(alpha, (0, 0), sh_sigma)
    skin = crop * (1 - 0.35 * np.clip(halo - alpha, 0, 1))[..., None]

    a = alpha[..., None]
    out = skin * (1 - a) + mask_rgb * a
    if straps:
        out = _draw_straps(out, straps, style, fr, x0, y0, shading)
    image[y0:y1, x0:x1] = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    alpha_full[y0:y1, x0:x1] = alpha
    return RenderResult(image, alpha_full, style)


def _shading(rgb: np.ndarray, mesh: np.ndarray, zmap: np.ndarray, fr: _Frame, x0: int, y0: int, w: int, h: int,
             rng: np.random.Generator) -> np.ndarray:
    """Multiplicative shading: the face's own lighting (a smooth fit) times Lambert shading of the mask's depth."""
    H, W = rgb.shape[:2]
    lum = rgb.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) / 255.0
    xy = mesh[:, :2]
    inb = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
    # Skin samples: cheeks, forehead and jaw, not eyes/lips/nostrils (their own colour would read as shadow).
    skin_idx = np.array([10, 67, 297, 109, 338, 151, 9, 117, 346, 118, 347, 50, 280, 123, 352, 205, 425, 187, 411,
                         93, 323, 132, 361, 58, 288, 172, 397, 136, 365, 149, 378, 175, 199, 200, 1, 4, 5, 195, 197])
    skin_idx = skin_idx[inb[skin_idx]]
    k = max(1, int(0.02 * fr.size)) | 1
    ksz = 2 * k + 1
    smooth = cv2.blur(lum, (ksz, ksz))
    if skin_idx.size >= 8:
        p = xy[skin_idx]
        vals = smooth[p[:, 1].astype(int), p[:, 0].astype(int)]
        c = fr.centre[:2]
        px, py = (p[:, 0] - c[0]) / fr.size, (p[:, 1] - c[1]) / fr.size
        A = np.stack([np.ones_like(px), px, py, px * px, py * py, px * py], axis=1)
        coef, *_ = np.linalg.lstsq(A, vals, rcond=None)
        ref = float(np.percentile(vals, 85))
    else:
        coef = np.array([float(lum.mean()), 0, 0, 0, 0, 0])
        ref = float(lum.mean())
    ys, xs = np.mgrid[y0:y0 + h, x0:x0 + w].astype(np.float32)
    gx, gy = (xs - fr.centre[0]) / fr.size, (ys - fr.centre[1]) / fr.size
    fit = coef[0] + coef[1] * gx + coef[2] * gy + coef[3] * gx * gx + coef[4] * gy * gy + coef[5] * gx * gy
    local = np.clip(fit / max(ref, 1e-3), 0.35, 1.25) ** 0.75
    # Light direction: toward the brighter side of the face, from the fit's slope.
    slope = np.array([coef[1], coef[2]]) / max(abs(coef[0]), 1e-3)
    light = np.array([np.clip(slope[0], -1.5, 1.5), np.clip(slope[1], -1.5, 1.5) - 0.3, 1.6])
    light /= np.linalg.norm(light)
    z = cv2.GaussianBlur(zmap.astype(np.float32), (0, 0), max(1.0, 0.02 * fr.size))
    dzdy, dzdx = np.gradient(z)
    n = np.stack([dzdx, dzdy, np.ones_like(z)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    lambert = np.clip(n @ light.astype(np.float32), 0.05, 1.0)
    diffuse = 0.3 + 0.8 * lambert
    # Exposure: a white mask should be about as bright as the brightest lit parts of the photo.
    exposure = float(np.clip(np.percentile(lum[::4, ::4], 97) / 0.85, 0.4, 1.12)) * rng.uniform(0.94, 1.06)
    return (local * diffuse * exposure).astype(np.float32)


def _colour_cast(crop: np.ndarray) -> np.ndarray:
    mean = crop.reshape(-1, 3).mean(axis=0) + 1e-3
    cast = (mean / mean.mean()) ** 0.35
    return np.clip(cast, 0.85, 1.15).astype(np.float32)


def _strap_paths(mesh: np.ndarray, grid: np.ndarray, st: MaskStyle, fr: _Frame) -> list[np.ndarray]:
    """Polylines (x, y) of the visible ear loops (soft masks, KN95) or head straps (N95)."""
    paths = []
    mid = (mesh[234, :2] + mesh[454, :2]) / 2
    for side, ear_i, col in ((-1, 234, 0), (1, 454, -1)):
        ear = mesh[ear_i, :2] + (mesh[ear_i, :2] - mid) * 0.08 + fr.down * fr.size * 0.06
        top, bot = grid[1, col, :2], grid[-2, col, :2]
        if st.kind == "n95":
            # Head straps: one leaves the cup's upper side for above the ear, one its lower side for the nape.
            # Both vanish behind the face's outline a little past it.
            edge_hi = mesh[127 if side < 0 else 356, :2]
            edge_lo = mesh[58 if side < 0 else 288, :2]
            out = fr.across * side * fr.size * 0.03
            a, b = top, bot
            paths.append(_bezier(a, (a + edge_hi) / 2 + out, edge_hi + out))
            paths.append(_bezier(b, (b + edge_lo) / 2 + out + fr.down * fr.size * 0.03,
                                 edge_lo + out + fr.down * fr.size * 0.06))
        else:
            if np.linalg.norm(ear - top) < 0.04 * fr.size:
                continue  # the loop is hidden behind the cheek
            bulge = fr.across * side * fr.size * 0.03
            paths.append(_bezier(top, (top + ear) / 2 + bulge - fr.down * fr.size * 0.02, ear))
            paths.append(_bezier(bot, (bot + ear) / 2 + bulge, ear))
    return paths


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, n: int = 16) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _draw_straps(out: np.ndarray, paths: list[np.ndarray], st: MaskStyle, fr: _Frame, x0: int, y0: int,
                 shading: np.ndarray) -> np.ndarray:
    h, w = out.shape[:2]
    layer = np.zeros((h, w), np.float32)
    thick = max(1, int(round(fr.size * (0.018 if st.kind == "n95" else 0.011))))
    shift = 4
    for p in paths:
        pts = np.round((p - [x0, y0]) * (1 << shift)).astype(np.int32)
        cv2.polylines(layer, [pts], False, 1.0, thick, cv2.LINE_AA, shift)
    layer = np.clip(layer, 0, 1) * 0.95
    colour = np.asarray(st.strap_colour, np.float32) / 255.0
    tone = np.clip(shading, 0.3, 1.1)[..., None] * colour
    a = layer[..., None]
    return out * (1 - a) + tone * a


# -------------------------------------------------------------------------------------------------- front door


def style_from_name(name: str, rng: np.random.Generator, coverage: str | None = None) -> MaskStyle:
    """``"random"`` or a kind name (``surgical``, ``n95``, ``kn95``, ``cloth``), drawn from ``rng``."""
    if name == "random":
        return random_style(rng, coverage=coverage)
    if name in KINDS:
        return random_style(rng, coverage=coverage, kind=name)
    raise ValueError(f"unknown mask style {name!r}; use 'random' or one of {KINDS}")


def add_mask(rgb: np.ndarray, seed: int, style: str | MaskStyle = "random", landmarker: FaceMeshLandmarker | None = None,
             coverage: str | None = None) -> RenderResult | None:
    """Mask the largest face of ``rgb``; None when Face Mesh finds no face. Same (image, seed) -> same pixels.

    >>> add_mask(img, seed=7, style="surgical", coverage="nose_exposed").style.coverage
    'nose_exposed'
    """
    if landmarker is None:
        landmarker = _default_landmarker()
    mesh = landmarker.landmarks(rgb)
    if mesh is None:
        return None
    rng = np.random.default_rng(seed)
    if isinstance(style, MaskStyle):
        chosen = style if coverage is None else replace(style, coverage=coverage)
    else:
        chosen = style_from_name(style, rng, coverage)
    return render_mask(rgb, mesh, chosen, rng)


def _default_landmarker() -> FaceMeshLandmarker:
    from ..landmarks.facemesh import shared_landmarker

    return shared_landmarker()
