"""Redaction: faces are unrecognisable afterwards and the written file carries no metadata at all."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from periface.privacy.redact import (
    coverage, expand_boxes, merge_overlapping, redact_file, redact_image, redaction_margins,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _textured(h: int = 200, w: int = 300) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _jpeg_with_gps(path: Path, rgb: np.ndarray) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestCam"
    exif[ExifTags.Base.Orientation] = 1
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 36.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'
    Image.fromarray(rgb).save(path, "JPEG", exif=exif, xmp=xmp)


def test_fixture_really_has_gps(tmp_path: Path) -> None:
    src = tmp_path / "in.jpg"
    _jpeg_with_gps(src, _textured())
    with Image.open(src) as img:
        assert img.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert b"Exif\x00\x00" in src.read_bytes()


def test_redacted_file_has_no_exif_gps_or_xmp(tmp_path: Path) -> None:
    src = tmp_path / "in.jpg"
    _jpeg_with_gps(src, _textured())
    result = redact_file(src, tmp_path / "out", detector=lambda img: np.array([[100, 50, 160, 130]]))
    assert result.faces == 1 and result.path == tmp_path / "out" / "in.jpg"
    raw = result.path.read_bytes()
    assert b"Exif" not in raw and b"TestCam" not in raw
    assert b"xmpmeta" not in raw and b"ns.adobe.com" not in raw
    with Image.open(result.path) as img:
        assert len(img.getexif()) == 0
        assert not img.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert "exif" not in img.info and "xmp" not in img.info


def test_file_without_faces_is_still_stripped(tmp_path: Path) -> None:
    src = tmp_path / "in.jpg"
    _jpeg_with_gps(src, _textured())
    result = redact_file(src, tmp_path / "out", detector=lambda img: np.zeros((0, 4)))
    assert result.faces == 0
    assert b"Exif" not in result.path.read_bytes()


def test_unknown_suffix_becomes_png(tmp_path: Path) -> None:
    result = redact_file(_encode_png(_textured()), tmp_path, detector=lambda img: np.zeros((0, 4)), name="x.gif")
    assert result.path.suffix == ".png" and result.path.exists()


def _encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_region_is_destroyed_and_the_rest_kept(method: str) -> None:
    img = _textured()
    out = redact_image(img, np.array([[100, 50, 160, 130]]), method=method, margin=0.25)
    # margin 0.25 of a 60x80 box: x 85..175, y 30..150
    inside = out[35:145, 90:170].astype(float)
    original = img[35:145, 90:170].astype(float)
    assert inside.std() < original.std() / 3  # random texture flattened: detail is gone
    assert np.array_equal(out[:, :80], img[:, :80]) and np.array_equal(out[160:], img[160:])
    assert not np.array_equal(out[30:150, 85:175], img[30:150, 85:175])
    assert out.dtype == np.uint8 and out.shape == img.shape


def test_input_array_is_not_modified() -> None:
    img = _textured()
    copy = img.copy()
    redact_image(img, np.array([[10, 10, 50, 50]]))
    assert np.array_equal(img, copy)


def test_boxes_at_the_border_and_tiny_boxes() -> None:
    img = _textured(50, 50)
    out = redact_image(img, np.array([[-10, -10, 5, 5], [48, 48, 60, 60], [20, 20, 20.5, 20.5]]), "pixelate")
    assert out.shape == img.shape
    assert np.array_equal(expand_boxes(np.array([[-10, -10, 5, 5]]), img.shape, 0.25), np.array([[0, 0, 9, 9]]))


def test_small_faces_get_a_wider_margin() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 16, 16], [0, 0, 32, 32], [0, 0, 48, 48], [0, 0, 200, 100]])
    m = redaction_margins(boxes, 0.25)
    assert m[0] == m[1] == 0.75 and m[3] == m[4] == 0.25
    assert m[1] > m[2] > m[3]
    # Per-box margins reach the pixels: a 10 px face is blurred 7.5 px beyond its box, a 100 px one 25 px.
    assert expand_boxes(np.array([[50, 50, 60, 60]]), (200, 200), m[:1]).tolist() == [[42, 42, 68, 68]]


def test_one_box_per_face_when_detectors_agree() -> None:
    boxes = np.array([[10, 10, 50, 50], [12, 8, 52, 49], [100, 100, 120, 120], [11, 11, 49, 52]], float)
    merged = merge_overlapping(boxes)
    assert len(merged) == 2
    face = merged[np.argmin(merged[:, 0])]
    assert face.tolist() == [10, 8, 52, 52]  # encloses every box it replaced
    assert merge_overlapping(np.zeros((0, 4))).shape == (0, 4)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        redact_image(_textured(), np.zeros((0, 4)), method="smear")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        redact_image(_textured(), np.zeros((0, 4)), margin=-1)


def test_coverage() -> None:
    cov = coverage(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 5]]), (40, 40))
    assert cov.tolist() == [0.5, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["blur", "pixelate"])
def test_redacted_faces_are_no_longer_recognisable(tmp_path: Path, method: str) -> None:
    """Aligned on the very landmarks of the original faces, the recogniser no longer matches them."""
    pytest.importorskip("periface.engine", reason="periface.engine not available yet")
    from periface.engine import Engine
    from periface.image import load_image

    engine = Engine()
    original = load_image(FIXTURES / "two_people.jpg")
    faces = engine.analyze(original, embed=False, mask=False)
    assert len(faces) == 2
    result = redact_file(FIXTURES / "two_people.jpg", tmp_path, lambda img: faces.boxes, method=method)
    redacted = load_image(result.path)
    before = engine.embedder.embed(original, faces.boxes, faces.landmarks)
    after = engine.embedder.embed(redacted, faces.boxes, faces.landmarks)
    threshold = engine.calibration.threshold(1e-3)
    for i in range(2):
        assert engine.similarity(before[i], after[i]) < threshold


MASK_SCENES = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "mask-scenes"


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.skipif(not MASK_SCENES.exists(), reason="../shared/datasets/mask-scenes not present")
def test_redaction_recall_on_mask_scenes_sample() -> None:
    """A few real crowd scenes: most annotated faces (masked or not) end up inside a redacted region."""
    pytest.importorskip("periface.engine", reason="periface.engine not available yet")
    from periface.privacy.redact import redaction_recall

    report = redaction_recall(MASK_SCENES, limit=int(os.environ.get("PERIFACE_REDACT_SAMPLE", "15")))
    assert report["faces"] > 20
    # A floor, not the number: the full-set figure is reported in PRIVACY.md.
    assert report["recall"] > 0.85, report
