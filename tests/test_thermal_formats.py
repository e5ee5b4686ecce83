"""Radiometric readers: FFF, R-JPEG (built here from the FFF fixture), TIFF, arrays; and their clear errors."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from periface.errors import ThermalFormatError
from periface.thermal import Radiometry, raw_to_celsius, read_thermal, transmission, write_temperature
from periface.thermal.planck import celsius_to_raw, retarget

FIXTURES = Path(__file__).parent / "fixtures" / "thermal"
FFF = FIXTURES / "flir_t420_le.fff"
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def make_rjpeg(fff: bytes, chunk: int = 60000) -> bytes:
    """A JPEG carrying ``fff`` in FLIR APP1 segments, laid out as FLIR cameras do."""
    ok, jpeg = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    assert ok
    parts = [fff[i:i + chunk] for i in range(0, len(fff), chunk)]
    segments = b""
    for i, part in enumerate(parts):
        body = b"FLIR\0\x01" + bytes([i, len(parts) - 1]) + part
        segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    data = jpeg.tobytes()
    return data[:2] + segments + data[2:]


def test_fff_little_endian_fixture() -> None:
    frame = read_thermal(FFF)
    assert frame.format == "fff"
    assert frame.temperature.shape == (240, 320) and frame.temperature.dtype == np.float32
    assert frame.camera_model.startswith("FLIR T420")
    assert frame.radiometry is not None and frame.radiometry.planck_b == pytest.approx(1420.1, abs=0.01)
    assert frame.fov_deg == pytest.approx(45.0, abs=0.1)
    t = frame.temperature
    assert np.isfinite(t).all() and 15 < t.min() < t.max() < 40  # an indoor scene


def test_rjpeg_matches_its_fff(tmp_path: Path) -> None:
    p = tmp_path / "ir.jpg"
    p.write_bytes(make_rjpeg(FFF.read_bytes()))
    frame = read_thermal(p)
    assert frame.format == "rjpeg"
    np.testing.assert_array_equal(frame.temperature, read_thermal(FFF).temperature)


def test_emissivity_override_warms_a_warm_scene(tmp_path: Path) -> None:
    base = read_thermal(FFF)
    lower = read_thermal(FFF, emissivity=0.8)
    hot = base.temperature > base.radiometry.reflected + 3
    assert (lower.temperature[hot] > base.temperature[hot]).all()


def test_jpeg_without_thermal_data(tmp_path: Path) -> None:
    ok, jpeg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    p = tmp_path / "photo.jpg"
    p.write_bytes(jpeg.tobytes())
    with pytest.raises(ThermalFormatError, match="no FLIR thermal data") as err:
        read_thermal(p)
    assert err.value.source == str(p)


def test_truncated_rjpeg(tmp_path: Path) -> None:
    data = make_rjpeg(FFF.read_bytes())
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[:70000])
    with pytest.raises(ThermalFormatError, match="truncated"):
        read_thermal(p)


def test_missing_segment(tmp_path: Path) -> None:
    fff = FFF.read_bytes()
    data = make_rjpeg(fff, chunk=40000)
    first = data.index(b"FLIR\0")
    length = struct.unpack(">H", data[first - 2:first])[0]
    p = tmp_path / "gap.jpg"
    p.write_bytes(data[:first - 4] + data[first - 2 + length:])  # drop segment 0
    with pytest.raises(ThermalFormatError, match="segments missing"):
        read_thermal(p)


def test_unknown_camera_fields(tmp_path: Path) -> None:
    fff = bytearray(FFF.read_bytes())
    index, count = struct.unpack("<II", fff[0x18:0x20])
    for i in range(count):
        kind, = struct.unpack("<H", fff[index + 32 * i:index + 32 * i + 2])
        if kind == 0x20:
            offset, = struct.unpack("<I", fff[index + 32 * i + 12:index + 32 * i + 16])
            fff[offset + 0x58:offset + 0x5C] = struct.pack("<f", float("nan"))  # Planck R1
    p = tmp_path / "bad.fff"
    p.write_bytes(bytes(fff))
    with pytest.raises(ThermalFormatError, match="camera fields"):
        read_thermal(p)


def test_truncated_fff(tmp_path: Path) -> None:
    p = tmp_path / "cut.fff"
    p.write_bytes(FFF.read_bytes()[:5000])
    with pytest.raises(ThermalFormatError, match="truncated|past the end"):
        read_thermal(p)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a supported thermal format"),
    (b"hello, world", "not a supported thermal format"),
])
def test_wrong_formats(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "x.png"
    p.write_bytes(content)
    with pytest.raises(ThermalFormatError, match=reason):
        read_thermal(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ThermalFormatError, match="not found"):
        read_thermal(tmp_path / "nope.jpg")


def test_arrays_round_trip(tmp_path: Path) -> None:
    frame = read_thermal(FFF)
    for suffix in (".npy", ".csv"):
        out = write_temperature(frame, tmp_path / f"t{suffix}")
        back = read_thermal(out)
        assert back.format == suffix[1:]
        assert np.abs(back.temperature - frame.temperature).max() <= 0.0006


def test_csv_not_numbers(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("a,b\nc,d\n")
    with pytest.raises(ThermalFormatError, match="numeric"):
        read_thermal(p)


def test_array_not_temperatures(tmp_path: Path) -> None:
    p = tmp_path / "counts.npy"
    np.save(p, np.full((4, 4), 15000, np.uint16))
    with pytest.raises(ThermalFormatError, match="not temperatures"):
        read_thermal(p)


def test_tiff_float_and_tlinear(tmp_path: Path) -> None:
    import tifffile

    t = np.linspace(20, 37, 12 * 16, dtype=np.float32).reshape(12, 16)
    tifffile.imwrite(tmp_path / "c.tif", t)
    assert np.allclose(read_thermal(tmp_path / "c.tif").temperature, t)
    counts = np.round((t + 273.15) / 0.01).astype(np.uint16)
    tifffile.imwrite(tmp_path / "k.tif", counts)
    assert np.abs(read_thermal(tmp_path / "k.tif").temperature - t).max() < 0.006
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ThermalFormatError):
        read_thermal(tmp_path / "rgb.tif")


def test_planck_round_trip_and_transmission() -> None:
    r = Radiometry(distance=4.0, humidity=0.6, emissivity=0.98)
    t = np.array([20.0, 33.0, 36.5, 40.0])
    assert np.abs(raw_to_celsius(celsius_to_raw(t, r), r) - t).max() < 1e-3
    assert 1.0 > transmission(r, 1.0) > transmission(r, 10.0) > 0.9
    # Further away, the same reading means a warmer face (the atmosphere swallowed some of it).
    assert retarget(np.array([34.0]), r.with_(distance=1.0), r.with_(distance=8.0))[0] > 34.05


def test_rjpeg_ground_truth() -> None:
    """Integration: the IRimage R-JPEG against its exported temperature map (goal: max error <= 0.1 °C)."""
    folder = DATASETS / "thermal" / "flir-rjpeg" / "irimage_test"
    if not folder.is_dir():
        pytest.skip(f"ground-truth R-JPEG not present ({folder}); needs ../shared/datasets")
    frame = read_thermal(folder / "test_image.jpg")
    truth = np.loadtxt(folder / "csv" / "test_image.csv", delimiter=",", encoding="utf-8-sig")
    assert frame.temperature.shape == truth.shape
    assert np.abs(frame.temperature - truth).max() <= 0.1


def test_shared_formats() -> None:
    folder = DATASETS / "thermal" / "formats"
    if not folder.is_dir():
        pytest.skip(f"format samples not present ({folder}); needs ../shared/datasets")
    big = read_thermal(folder / "frame_000000.fff")
    assert big.temperature.shape == (512, 640) and big.camera_model == "Duo Pro R"
    assert big.radiometry.planck_r1 == pytest.approx(364058) and big.radiometry.planck_o == -228
    tif = read_thermal(folder / "example_radiometric.tiff")
    assert tif.temperature.shape == (512, 640) and -20 < float(tif.temperature.mean()) < 30


def test_sample_people_decode() -> None:
    folder = DATASETS / "thermal" / "flir-rjpeg" / "sample_images"
    if not folder.is_dir():
        pytest.skip(f"sample R-JPEGs not present ({folder}); needs ../shared/datasets")
    for name in ("07_-_BillHotFlashThermography.jpg", "09_-_Infrared_image_of_people_in_the_laboratory.jpg",
                 "25_-_Videocamera_Termica.jpg"):
        t = read_thermal(folder / name).temperature
        # Skin of people indoors: the hottest pixels are in the 30-38 °C band.
        assert 30 < np.percentile(t, 99.9) < 38, name
