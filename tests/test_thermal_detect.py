"""The thermal face detector: geometry helpers, the packaged model's digest, and real frames when present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from periface.errors import ModelError
from periface.thermal import ThermalFaceDetector, read_thermal
from periface.thermal.detect import MODEL_PATH, WINDOW, face_widths, iou, match_counts, nms, scan, to_gray

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
BOXES = Path(__file__).parent / "fixtures" / "thermal" / "people_boxes.json"


def test_iou_and_matching() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[0, 0, 10, 5]], float)
    assert iou(a, b)[:, 0].tolist() == [0.5, 0.0]
    assert match_counts(a, b) == (1, 1, 0)
    assert match_counts(a[:0], b) == (0, 0, 1)
    # One truth box cannot be matched twice.
    assert match_counts(np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float), a[:1]) == (1, 1, 0)


def test_nms_keeps_the_best_of_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert nms(boxes, np.array([0.5, 0.9, 0.1])).tolist() == [1, 2]


def test_gray_and_scan_shapes() -> None:
    t = np.linspace(20, 37, 120 * 160, dtype=np.float32).reshape(120, 160)
    g = to_gray(t)
    assert g.dtype == np.uint8 and g.min() == 0 and g.max() == 255
    widths = face_widths(g.shape)
    assert widths[0] == 10 and widths[-1] <= 120 * WINDOW[0] / WINDOW[1]
    feats, boxes = scan(g, 20.0)
    assert len(feats) == len(boxes) > 0 and boxes[:, 2].max() <= 160 + 1e-6


def test_packaged_model_is_verified(tmp_path: Path) -> None:
    boxes, scores = ThermalFaceDetector().detect(np.full((120, 160), 22.0, np.float32))
    assert boxes.shape[1] == 4 and len(boxes) == len(scores)
    bad = tmp_path / "m.npz"
    data = bytearray(MODEL_PATH.read_bytes())
    data[100] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        ThermalFaceDetector(bad).detect(np.zeros((120, 160), np.float32))


def test_people_in_real_frames() -> None:
    """Integration: the lab-people R-JPEG (09): most hand-labelled faces found, few false alarms."""
    path = DATASETS / "thermal" / "flir-rjpeg" / "sample_images" / "09_-_Infrared_image_of_people_in_the_laboratory.jpg"
    if not path.is_file():
        pytest.skip(f"sample R-JPEG not present ({path}); needs ../shared/datasets")
    truth = np.array(json.loads(BOXES.read_text())[f"flir-rjpeg/sample_images/{path.name}"], float)
    pred, _ = ThermalFaceDetector().detect(read_thermal(path).temperature)
    tp, fp, fn = match_counts(pred, truth)
    assert tp >= 3 and fp <= 3
