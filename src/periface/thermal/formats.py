"""Readers for radiometric thermal files. Every reader returns a :class:`ThermalFrame` in °C.

Supported: FLIR radiometric JPEG (R-JPEG: an FFF file split across APP1 segments), FLIR ``.fff``, radiometric
TIFF (float °C, or 16-bit TLinear kelvin counts), ``.npy`` and ``.csv`` arrays in °C. The FFF parser is written
here from ExifTool's published FLIR tag tables; no ExifTool or third-party parser is needed.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from ..errors import ThermalFormatError
from .planck import KELVIN, Radiometry, raw_to_celsius

PathLike = Union[str, Path]

# FFF record types (ExifTool FLIR.pm "FFF" table).
_RAW_DATA = 0x01
_CAMERA_INFO = 0x20
_EMBEDDED_IMAGE = 0x0E

# TLinear resolution (kelvin per count) of cameras whose 16-bit TIFFs store scene temperature directly.
TLINEAR_RESOLUTION = {"Duo Pro R": 0.04}
_PLAUSIBLE_C = (-80.0, 600.0)


@dataclass
class ThermalFrame:
    """A temperature map in °C (float32, H x W) with what is known about how it was taken.

    ``radiometry`` is set when the file carried the camera's Planck constants (R-JPEG, FFF), which lets the
    screening recompute temperatures for each face's distance. ``raw`` keeps the sensor counts when known.
    """

    temperature: np.ndarray
    source: str = "<array>"
    format: str = "array"
    radiometry: Radiometry | None = None
    raw: np.ndarray | None = None
    camera_model: str = ""
    fov_deg: float | None = None
    visible: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.temperature.shape  # type: ignore[return-value]


def read_thermal(path: PathLike, *, emissivity: float | None = None, tlinear_resolution: float | None = None
                 ) -> ThermalFrame:
    """Read any supported thermal file into a :class:`ThermalFrame` (temperatures in °C).

    >>> frame = read_thermal("tests/fixtures/thermal/frame_le.fff")   # doctest: +SKIP
    >>> frame.temperature.dtype, frame.camera_model                    # doctest: +SKIP
    (dtype('float32'), 'Duo Pro R')

    ``emissivity`` overrides the file's value (screening uses 0.98 for skin). Raises ``ThermalFormatError``
    naming the file and the reason for anything that is not a readable radiometric image.
    """
    p = Path(path)
    src = str(p)
    if not p.exists():
        raise ThermalFormatError("file not found", source=src)
    if p.is_dir():
        raise ThermalFormatError("is a directory, not a thermal image", source=src)
    data = p.read_bytes()
    if not data:
        raise ThermalFormatError("empty file (0 bytes)", source=src)
    suffix = p.suffix.lower()
    if data[:2] == b"\xff\xd8":
        return _finish(parse_fff(flir_segments(data, src), src, "rjpeg"), emissivity)
    if data[:4] == b"FFF\0":
        return _finish(parse_fff(data, src, "fff"), emissivity)
    if data[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return read_tiff(data, src, tlinear_resolution)
    if suffix == ".npy" or data[:6] == b"\x93NUMPY":
        return _from_array(_load_npy(data, src), src, "npy")
    if suffix in (".csv", ".txt"):
        return _from_array(_load_csv(data, src), src, "csv")
    raise ThermalFormatError(
        "not a supported thermal format (expected FLIR R-JPEG, .fff, radiometric TIFF, .npy or .csv in °C)",
        source=src)


def flir_segments(data: bytes, src: str) -> bytes:
    """Join the FLIR APP1 segments of a JPEG into the embedded FFF file."""
    if data[:2] != b"\xff\xd8":
        raise ThermalFormatError("not a JPEG file", source=src)
    pos, parts = 2, {}
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ThermalFormatError(f"corrupt JPEG: no marker at byte {pos}", source=src)
        marker = data[pos + 1] if pos + 1 < len(data) else None
        if marker is None:
            raise ThermalFormatError("truncated JPEG: file ends inside a marker", source=src)
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker in (0xDA, 0xD9):  # metadata ends at start-of-scan
            break
        if pos + 4 > len(data):
            raise ThermalFormatError("truncated JPEG: file ends inside a segment header", source=src)
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise ThermalFormatError(f"truncated JPEG: segment at byte {pos} runs past the end of the file",
                                     source=src)
        body = data[pos + 4:end]
        if marker == 0xE1 and body[:5] == b"FLIR\0" and len(body) >= 8:
            parts[body[6]] = body[8:]
        pos = end
    if not parts:
        raise ThermalFormatError("JPEG has no FLIR thermal data (no FLIR APP1 segments): not a radiometric JPEG",
                                 source=src)
    expected = list(range(max(parts) + 1))
    if sorted(parts) != expected:
        raise ThermalFormatError(f"FLIR segments missing: found {sorted(parts)}", source=src)
    return b"".join(parts[i] for i in expected)


def parse_fff(fff: bytes, src: str, fmt: str = "fff") -> ThermalFrame:
    """Decode an FFF file (raw counts + CameraInfo) into temperatures."""
    if len(fff) < 64 or fff[:4] != b"FFF\0":
        raise ThermalFormatError("FLIR data does not start with an FFF header", source=src)
    order = ">"
    if not 100 <= struct.unpack(">I", fff[0x14:0x18])[0] < 200:
        order = "<"
        if not 100 <= struct.unpack("<I", fff[0x14:0x18])[0] < 200:
            raise ThermalFormatError("unknown FFF version", source=src)
    index, count = struct.unpack(order + "II", fff[0x18:0x20])
    if count > 1000 or index + 32 * count > len(fff):
        raise ThermalFormatError("truncated FLIR data: record index past the end", source=src)
    records: dict[int, bytes] = {}
    for i in range(count):
        entry = fff[index + 32 * i:index + 32 * (i + 1)]
        kind = struct.unpack(order + "H", entry[:2])[0]
        if kind == 0:
            continue
        offset, size = struct.unpack(order + "II", entry[12:20])
        if offset + size > len(fff):
            raise ThermalFormatError(f"truncated FLIR data: record type 0x{kind:02x} runs past the end", source=src)
        records.setdefault(kind, fff[offset:offset + size])
    if _RAW_DATA not in records:
        raise ThermalFormatError("FLIR data has no raw thermal image record", source=src)
    if _CAMERA_INFO not in records:
        raise ThermalFormatError("FLIR data has no CameraInfo record (no Planck constants)", source=src)
    raw = _raw_image(records[_RAW_DATA], src)
    radiometry, model, fov = _camera_info(records[_CAMERA_INFO], src)
    visible = _embedded_image(records.get(_EMBEDDED_IMAGE))
    with np.errstate(all="ignore"):
        temperature = raw_to_celsius(raw, radiometry)
    return ThermalFrame(temperature, src, fmt, radiometry, raw, model, fov, visible)


def _record_order(rec: bytes) -> str:
    return ">" if struct.unpack(">H", rec[:2])[0] == 2 else "<"


def _raw_image(rec: bytes, src: str) -> np.ndarray:
    if len(rec) < 0x20:
        raise ThermalFormatError("truncated raw thermal image record", source=src)
    order = _record_order(rec)
    width, height = struct.unpack(order + "HH", rec[2:6])
    blob = rec[0x20:]
    if blob[:8] == b"\x89PNG\r\n\x1a\n":
        img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None or img.dtype != np.uint16:
            raise ThermalFormatError("raw thermal PNG cannot be decoded (truncated?)", source=src)
        # Little-endian cameras write the PNG's 16-bit samples little-endian too, against the PNG spec.
        if order == "<":
            img = img.byteswap()
    elif blob[:4] in (b"II*\0", b"MM\0*"):
        img = _tiff_array(blob, src)
    else:
        n = width * height
        if len(blob) < 2 * n:
            raise ThermalFormatError(f"truncated raw thermal image: {len(blob)} bytes for {width}x{height}",
                                     source=src)
        img = np.frombuffer(blob[:2 * n], np.dtype(order + "u2")).reshape(height, width)
    if img.shape != (height, width):
        raise ThermalFormatError(f"raw image is {img.shape[1]}x{img.shape[0]}, header says {width}x{height}",
                                 source=src)
    return img.astype(np.uint16)


def _camera_info(rec: bytes, src: str) -> tuple[Radiometry, str, float | None]:
    if len(rec) < 0x310:
        raise ThermalFormatError("truncated CameraInfo record", source=src)
    o = _record_order(rec)

    def f32(off: int) -> float:
        return struct.unpack(o + "f", rec[off:off + 4])[0]

    def text(off: int, n: int) -> str:
        return rec[off:off + n].split(b"\0")[0].decode("latin-1").strip()

    humidity = f32(0x3C)
    r = Radiometry(
        emissivity=f32(0x20), distance=f32(0x24), reflected=f32(0x28) - KELVIN, atmosphere=f32(0x2C) - KELVIN,
        window_temperature=f32(0x30) - KELVIN, window_transmission=f32(0x34),
        humidity=humidity / 100 if humidity > 2 else humidity,
        planck_r1=f32(0x58), planck_b=f32(0x5C), planck_f=f32(0x60),
        alpha1=f32(0x70), alpha2=f32(0x74), beta1=f32(0x78), beta2=f32(0x7C), x=f32(0x80),
        planck_o=float(struct.unpack(o + "i", rec[0x308:0x30C])[0]), planck_r2=f32(0x30C),
    )
    bad = [name for name, v in vars(r).items() if not math.isfinite(v)]
    if bad or r.planck_r1 <= 0 or r.planck_b <= 0 or r.planck_r2 <= 0:
        raise ThermalFormatError(f"unknown or invalid camera fields: Planck constants {bad or 'out of range'}",
                                 source=src)
    if not 0 < r.emissivity <= 1 or not 0 < r.window_transmission <= 1 or r.distance < 0:
        raise ThermalFormatError(
            f"unknown or invalid camera fields: emissivity {r.emissivity}, window transmission "
            f"{r.window_transmission}, distance {r.distance}", source=src)
    fov = f32(0x1B4) if len(rec) >= 0x1B8 else None
    return r, text(0xD4, 32), (fov if fov and math.isfinite(fov) and 0 < fov < 180 else None)


def _embedded_image(rec: bytes | None) -> np.ndarray | None:
    """The visible photo some cameras embed next to the thermal data (used for dual-spectrum mode)."""
    if not rec or len(rec) < 0x20:
        return None
    img = cv2.imdecode(np.frombuffer(rec[0x20:], np.uint8), cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _tiff_array(data: bytes, src: str) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            try:
                return tif.pages[0].asarray()
            except ValueError:  # LZW/deflate without imagecodecs: Pillow's libtiff decodes those
                from PIL import Image

                return np.array(Image.open(io.BytesIO(data)))
    except (tifffile.TiffFileError, OSError, IndexError, struct.error) as err:
        raise ThermalFormatError(f"unreadable TIFF: {err}", source=src) from err


def read_tiff(data: bytes, src: str, tlinear_resolution: float | None = None) -> ThermalFrame:
    """A radiometric TIFF: float samples are °C; 16-bit samples are TLinear kelvin counts."""
    import tifffile

    arr = _tiff_array(data, src)
    model = ""
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            xmp = tif.pages[0].tags.get("XMP")
            text = xmp.value.decode("utf-8", "ignore") if xmp is not None else ""
            model = next((m for m in TLINEAR_RESOLUTION if m in text), "")
            tag = tif.pages[0].tags.get("Model")
            model = model or (str(tag.value).strip() if tag is not None else "")
    except (tifffile.TiffFileError, OSError):
        pass
    if arr.ndim != 2:
        raise ThermalFormatError(f"expected a single-channel radiometric TIFF, got shape {arr.shape}", source=src)
    if np.issubdtype(arr.dtype, np.floating):
        return _from_array(arr, src, "tiff", model)
    if arr.dtype not in (np.uint16, np.int16, np.uint32):
        raise ThermalFormatError(f"unsupported TIFF sample type {arr.dtype}", source=src)
    res = tlinear_resolution or TLINEAR_RESOLUTION.get(model, 0.01)
    temperature = arr.astype(np.float32) * res - KELVIN
    lo, hi = float(temperature.min()), float(temperature.max())
    if lo < _PLAUSIBLE_C[0] or hi > _PLAUSIBLE_C[1]:
        raise ThermalFormatError(
            f"16-bit TIFF gives {lo:.1f}..{hi:.1f} °C at {res} K/count: not TLinear data, or another resolution "
            "(pass tlinear_resolution)", source=src)
    frame = _from_array(temperature, src, "tiff", model)
    frame.raw = arr.astype(np.uint16)
    return frame


def _load_npy(data: bytes, src: str) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ThermalFormatError(f"unreadable .npy: {err}", source=src) from err


def _load_csv(data: bytes, src: str) -> np.ndarray:
    text = data.decode("utf-8-sig", "replace")
    delimiter = ";" if text.count(";") > text.count(",") else ("\t" if "\t" in text else ",")
    try:
        arr = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise ThermalFormatError(f"CSV is not a numeric temperature grid: {err}", source=src) from err
    return arr


def _from_array(arr: np.ndarray, src: str, fmt: str, model: str = "") -> ThermalFrame:
    arr = np.asarray(arr)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ThermalFormatError(f"expected a 2-D temperature grid, got shape {arr.shape}", source=src)
    if not np.issubdtype(arr.dtype, np.number):
        raise ThermalFormatError(f"expected numbers, got {arr.dtype}", source=src)
    t = arr.astype(np.float32)
    finite = t[np.isfinite(t)]
    if finite.size == 0:
        raise ThermalFormatError("no finite temperatures", source=src)
    if finite.min() < _PLAUSIBLE_C[0] or finite.max() > _PLAUSIBLE_C[1]:
        raise ThermalFormatError(
            f"values {finite.min():.1f}..{finite.max():.1f} are not temperatures in °C", source=src)
    return ThermalFrame(t, src, fmt, camera_model=model)


def _finish(frame: ThermalFrame, emissivity: float | None) -> ThermalFrame:
    if emissivity is not None and frame.radiometry is not None and frame.raw is not None:
        frame.radiometry = frame.radiometry.with_(emissivity=emissivity)
        frame.temperature = raw_to_celsius(frame.raw, frame.radiometry)
    return frame


def write_temperature(frame: ThermalFrame, out: PathLike) -> Path:
    """Write the temperature map as ``.npy`` (float32) or ``.csv`` (°C, 3 decimals)."""
    p = Path(out)
    if p.suffix.lower() == ".npy":
        np.save(p, frame.temperature.astype(np.float32))
    elif p.suffix.lower() == ".csv":
        np.savetxt(p, frame.temperature, fmt="%.3f", delimiter=",")
    else:
        raise ThermalFormatError("output must end in .npy or .csv", source=str(p))
    return p
