"""Loading and validation of images: size limits before decoding, EXIF orientation, clear errors.

Every image enters periface through ``load_image``, which returns an RGB ``uint8`` array of shape (H, W, 3).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .config import Settings
from .errors import ImageError, ImageTooLargeError

ImageInput = Union[str, Path, bytes, bytearray, np.ndarray]

# periface enforces its own pixel limit before decoding; PIL's bomb check must not pre-empt it with a vaguer error.
Image.MAX_IMAGE_PIXELS = None


def describe(source: ImageInput) -> str:
    """A short name for a source, used in error messages."""
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.shape} {source.dtype}>"
    return f"<{type(source).__name__}>"


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def images_in(folder: Path) -> list[Path]:
    """The image files directly inside ``folder`` (by suffix, any case), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_image(source: ImageInput, settings: Settings | None = None, name: str | None = None, *,
               exif_orientation: bool = True) -> np.ndarray:
    """Decode ``source`` (a path, encoded bytes or an array) into an RGB uint8 array.

    >>> load_image("tests/fixtures/obama.jpg").shape
    (1024, 819, 3)

    Raises ``ImageError`` naming the source and the reason: missing, empty, not an image, truncated, or larger
    than ``settings.max_pixels`` (checked from the header, before any pixel is decoded). ``exif_orientation=False``
    keeps the stored pixel grid, the one annotation tools usually draw boxes in.
    """
    settings = settings or Settings()
    label = name or describe(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, label, settings)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageError("file not found", source=label)
        if path.is_dir():
            raise ImageError("is a directory, not an image", source=label)
        size = path.stat().st_size
        if size == 0:
            raise ImageError("empty file (0 bytes)", source=label)
        if size > settings.max_bytes:
            raise ImageTooLargeError(f"file is {size} bytes, over the {settings.max_bytes}-byte limit", source=label)
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if not data:
            raise ImageError("empty input (0 bytes)", source=label)
        if len(data) > settings.max_bytes:
            raise ImageTooLargeError(f"{len(data)} bytes, over the {settings.max_bytes}-byte limit", source=label)
    else:
        raise ImageError(f"unsupported input type {type(source).__name__}", source=label)
    return _decode(data, label, settings, exif_orientation)


def _decode(data: bytes, label: str, settings: Settings, exif_orientation: bool = True) -> np.ndarray:
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image, or an unsupported format", source=label) from None
    except Exception as exc:  # PIL raises assorted errors on garbage headers
        raise ImageError(f"cannot read image header: {exc}", source=label) from None
    width, height = img.size
    if width * height > settings.max_pixels:
        raise ImageTooLargeError(
            f"{width}x{height} = {width * height} pixels, over the {settings.max_pixels}-pixel limit", source=label
        )
    if width == 0 or height == 0:
        raise ImageError("image has no pixels", source=label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"truncated or corrupt image data ({exc})", source=label) from None
    try:
        img = ImageOps.exif_transpose(img) if exif_orientation else img
    except Exception:  # a broken EXIF block must not lose an otherwise good image
        pass
    return _to_rgb(img, label)


def _to_rgb(img: Image.Image, label: str) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max()
        scale = 255.0 / 65535.0 if hi > 255 else 1.0
        if mode == "F" and hi <= 1.0:
            scale = 255.0
        gray = np.clip(arr * scale, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "RGBA" or mode == "LA" or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    try:
        rgb = img.convert("RGB")
    except Exception as exc:
        raise ImageError(f"cannot convert colour mode {mode} to RGB ({exc})", source=label) from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _from_array(arr: np.ndarray, label: str, settings: Settings) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageError(f"array of shape {arr.shape} is not an image (expected HxW, HxWx3 or HxWx4)", source=label)
    h, w = arr.shape[:2]
    if h == 0 or w == 0:
        raise ImageError("image has no pixels", source=label)
    if h * w > settings.max_pixels:
        raise ImageTooLargeError(f"{w}x{h} pixels, over the {settings.max_pixels}-pixel limit", source=label)
    if arr.dtype == np.uint16:
        arr = (arr / 257.0).round().astype(np.uint8)
    elif arr.dtype.kind == "f":
        top = 255.0 if float(np.nanmax(arr)) > 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr) * (255.0 / top), 0, 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise ImageError(f"unsupported array dtype {arr.dtype}", source=label)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def scaled(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale``, each side rounded to at least 1 px: pixels averaged when shrinking, cubic when
    enlarging; ``image`` itself when ``scale`` is 1."""
    import cv2

    if scale == 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def context_crop(rgb: np.ndarray, box: np.ndarray, context: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` crop centred on ``box`` (xyxy), its side ``context`` times the box's longest side.

    Pixels outside the image are mirrored, so faces at the border keep a plausible surround.
    """
    import cv2

    x0, y0, x1, y1 = [float(v) for v in box]
    side = max(x1 - x0, y1 - y0, 1.0) * context
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    s = size / side
    m = np.array([[s, 0, size / 2 - cx * s], [0, s, size / 2 - cy * s]], np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(rgb, m, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT)


def context_crops(rgb: np.ndarray, boxes: np.ndarray, context: float, size: int) -> np.ndarray:
    """(K, size, size, 3) ``context_crop`` of every box (an empty batch for no boxes)."""
    if len(boxes) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([context_crop(rgb, b, context, size) for b in boxes])


def cnn_input(batch: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [-1, 1], the input of periface's small CNNs."""
    return (np.ascontiguousarray(batch.transpose(0, 3, 1, 2)).astype(np.float32) - 127.5) / 127.5
