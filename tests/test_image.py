import io

import numpy as np
import pytest
from PIL import Image

from periface.config import Settings
from periface.errors import ImageError, ImageTooLargeError
from periface.image import load_image


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_loads_jpeg_as_rgb(fixtures):
    rgb = load_image(fixtures / "obama.jpg")
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_not_an_image_names_file_and_reason(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not a picture")
    with pytest.raises(ImageError) as e:
        load_image(p)
    assert "notes.jpg" in str(e.value) and "not an image" in str(e.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(empty)
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_truncated_jpeg(fixtures, tmp_path):
    data = (fixtures / "obama.jpg").read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageError, match="truncated"):
        load_image(p)


def test_pixel_limit_checked_before_decoding():
    # 10000 x 10000 = 100 MP declared, a few kB on disk: must be refused from the header alone.
    big = _png(Image.new("1", (10000, 10000)))
    assert len(big) < 100_000
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        load_image(big)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((100, 100, 3), np.uint8), Settings(max_pixels=5000))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "1"])
def test_modes_converted_to_rgb(mode):
    img = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode) if mode != "I;16" else Image.fromarray(
        np.full((30, 40), 40000, np.uint16))
    data = io.BytesIO()
    img.save(data, format="TIFF" if mode in ("CMYK", "I;16") else "PNG")
    rgb = load_image(data.getvalue())
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8


def test_sixteen_bit_values_scaled():
    img = Image.fromarray(np.full((10, 10), 65535, np.uint16))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert load_image(buf.getvalue()).max() == 255


def test_exif_rotation_applied():
    img = Image.new("RGB", (60, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    assert load_image(buf.getvalue()).shape[:2] == (60, 20)


def test_arrays_accepted_and_validated():
    assert load_image(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert load_image(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    assert load_image(np.ones((5, 6, 3), np.float32)).max() == 255
    with pytest.raises(ImageError):
        load_image(np.zeros((5, 6, 7), np.uint8))
    with pytest.raises(ImageError):
        load_image(np.zeros((0, 6, 3), np.uint8))


def test_32bit_png_fixture(fixtures):
    assert load_image(fixtures / "32bit.png").shape[2] == 3
