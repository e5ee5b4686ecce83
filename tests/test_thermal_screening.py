"""Screening on synthetic scenes whose truth is known, the core model, registration, dual-spectrum mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from periface.errors import ModelError
from periface.thermal import (
    Blackbody, CanthusCoreModel, FaceSpec, Homography, Screener, ScreeningSettings, annotate, measure_canthus,
    screen_frame, synthetic_scene,
)
from periface.thermal.core_model import MODEL_PATH, load_physionet
from periface.thermal.registration import RegistrationError
from periface.thermal.screening import BlackbodyError, estimate_distance
from periface.thermal.synthetic import synthetic_stream

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def _boxes(scene) -> np.ndarray:
    return np.array([f.box for f in scene.truth], float)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_canthus_reading_matches_truth_after_blackbody(seed: int) -> None:
    scene = synthetic_scene(seed=seed, drift=1.2)
    bb = Blackbody(*scene.blackbody)
    assert bb.offset(scene.frame.temperature) == pytest.approx(-1.2, abs=0.05)
    corrected = scene.frame.temperature + bb.offset(scene.frame.temperature)
    for face in scene.truth:
        reading = measure_canthus(corrected, np.array(face.box))
        assert reading.measurable
        assert abs(reading.temperature - face.canthus) < 0.3
        # Both points lie in the eye band, either side of the face's centre line.
        (xa, ya), (xb, yb) = reading.points
        cx = (face.box[0] + face.box[2]) / 2
        assert xa < cx < xb
        assert face.box[1] < ya < (face.box[1] + face.box[3]) / 2


def test_without_blackbody_drift_shows() -> None:
    scene = synthetic_scene(seed=0, drift=1.5)
    reading = measure_canthus(scene.frame.temperature, np.array(scene.truth[0].box))
    assert reading.temperature - scene.truth[0].canthus > 1.0


def test_hot_face_flagged_normal_face_not() -> None:
    scene = synthetic_scene(seed=3)
    result = screen_frame(scene.frame, boxes=_boxes(scene), blackbody=Blackbody(*scene.blackbody))
    normal, hot = result.faces
    assert not normal.flag and hot.flag
    assert hot.core_c >= 37.5 > normal.core_c
    assert normal.masked and not hot.masked
    assert result.blackbody_offset_c == pytest.approx(-scene.drift, abs=0.05)
    assert "clinical thermometer" in result.notice


def test_glasses_and_tiny_faces_are_not_measured() -> None:
    faces = [FaceSpec((60, 50, 120, 130), canthus=38.5, skin=36.5, glasses=True),
             FaceSpec((200, 60, 212, 76), canthus=38.5, skin=36.5)]
    scene = synthetic_scene(faces=faces, seed=4)
    result = screen_frame(scene.frame, boxes=_boxes(scene), blackbody=Blackbody(*scene.blackbody))
    glasses, tiny = result.faces
    assert glasses.eyes_occluded and not glasses.measurable and glasses.core_c is None and not glasses.flag
    assert not tiny.measurable and tiny.core_c is None and tiny.quality < 0.2
    assert any("below the 3 px minimum" in n for n in tiny.notes)


def test_relative_rule_catches_a_person_warmer_than_the_crowd() -> None:
    # A high absolute threshold leaves only the population rule to do the work.
    screener = Screener(ScreeningSettings(threshold=45.0, relative_offset=0.8, window=30, min_population=8))
    flags = []
    for i, scene in enumerate(synthetic_stream(n=21, fever_every=7, seed=5)):
        res = screen_frame(scene.frame, boxes=_boxes(scene), blackbody=Blackbody(*scene.blackbody),
                           screener=screener)
        flags.append((i, res.faces[0].flag))
    assert [i for i, f in flags if f] == [13, 20]  # person 6 came before the rule had 8 people
    assert screener.median() is not None


def test_blackbody_errors() -> None:
    with pytest.raises(BlackbodyError):
        Blackbody.parse("1,2,3")
    with pytest.raises(BlackbodyError, match="outside"):
        Blackbody(300, 200, 50, 50, 35.0).offset(np.zeros((240, 320), np.float32))


def test_distance_from_face_size() -> None:
    near = estimate_distance(80, 320, 24.0)
    far = estimate_distance(20, 320, 24.0)
    assert far == pytest.approx(4 * near)
    assert estimate_distance(40, 320, None) is None


def test_far_face_reads_warmer_after_atmospheric_correction() -> None:
    big = synthetic_scene(faces=[FaceSpec((40, 40, 200, 240))], shape=(260, 320), seed=6, fov_deg=60)
    small = synthetic_scene(faces=[FaceSpec((140, 100, 180, 150))], shape=(260, 320), seed=6, fov_deg=60)
    a = screen_frame(big.frame, boxes=_boxes(big), blackbody=None).faces[0]
    b = screen_frame(small.frame, boxes=_boxes(small), blackbody=None).faces[0]
    assert b.distance_m > 3 * a.distance_m
    raw_b = measure_canthus(small.frame.temperature, np.array(small.truth[0].box)).temperature
    assert b.canthus_c > raw_b


def test_core_model_packaged_and_verified(tmp_path: Path) -> None:
    model = CanthusCoreModel.load()
    low, high = model.predict([34.5, 36.5], 24.0)
    assert 35.5 < low < high < 39.0
    assert model.info["held_out"]["single_round"]["auc"] >= 0.95
    tampered = tmp_path / "m.json"
    tampered.write_text(MODEL_PATH.read_text().replace("coef", "coef ", 1))
    with pytest.raises(ModelError, match="SHA-256"):
        CanthusCoreModel.load(tampered)


def test_core_model_fit_recovers_a_known_line() -> None:
    rng = np.random.default_rng(0)
    canthus = rng.normal(35.5, 0.5, 400)
    ambient = rng.uniform(20, 28, 400)
    core = 10 + 0.75 * canthus - 0.05 * (ambient - 24) + rng.normal(0, 0.05, 400)
    model = CanthusCoreModel.fit(canthus, ambient, core)
    assert model.coef[1] == pytest.approx(0.75, abs=0.03)
    assert model.residual_sd < 0.07


def test_homography_round_trip(tmp_path: Path) -> None:
    true = np.array([[0.5, 0.02, 10], [0.01, 0.5, 5], [0, 0, 1]])
    vis = np.array([[0, 0], [640, 0], [640, 480], [0, 480], [320, 240], [100, 400]], float)
    pts = np.c_[vis, np.ones(len(vis))] @ true.T
    th = pts[:, :2] / pts[:, 2:]
    h = Homography.fit(vis, th)
    assert h.rmse_px < 1e-3
    back = Homography.load(h.save(tmp_path / "h.json"))
    np.testing.assert_allclose(back.map_points([[200, 100]]), h.map_points([[200, 100]]))
    with pytest.raises(RegistrationError, match="at least 4"):
        Homography.fit(vis[:3], th[:3])
    (tmp_path / "bad.json").write_text(json.dumps({"visible_to_thermal": [[1, 0], [0, 1]]}))
    with pytest.raises(RegistrationError, match="3x3"):
        Homography.load(tmp_path / "bad.json")


def test_dual_spectrum_with_injected_detector() -> None:
    scene = synthetic_scene(seed=7)
    h = Homography(np.diag([0.5, 0.5, 1.0]))  # the visible camera has twice the resolution
    visible = np.zeros((480, 640, 3), np.uint8)
    seen = []

    def fake(img: np.ndarray) -> np.ndarray:
        seen.append(img.shape)
        return _boxes(scene) * 2

    res = screen_frame(scene.frame, visible=visible, registration=h, blackbody=Blackbody(*scene.blackbody),
                       detect_visible=fake)
    assert seen == [(480, 640, 3)]
    assert [f.flag for f in res.faces] == [False, True]
    np.testing.assert_allclose([f.box for f in res.faces], _boxes(scene), atol=0.1)


def test_thermal_only_mode_uses_injected_detector() -> None:
    scene = synthetic_scene(seed=8)
    res = screen_frame(scene.frame, detect_thermal=lambda t: _boxes(scene)[1:],
                       blackbody=Blackbody(*scene.blackbody))
    assert len(res.faces) == 1 and res.faces[0].flag


def test_annotation_overlay_marks_flagged_in_red() -> None:
    scene = synthetic_scene(seed=9)
    res = screen_frame(scene.frame, boxes=_boxes(scene), blackbody=Blackbody(*scene.blackbody))
    img = annotate(scene.frame, res)
    assert img.ndim == 3 and img.shape[1] >= 640
    red = (img[..., 0] > 240) & (img[..., 1] < 60) & (img[..., 2] < 60)
    assert red.sum() > 100


def test_physionet_fit_quality() -> None:
    """Integration: the packaged model on the held-out PhysioNet people (goal AUC >= 0.95)."""
    path = DATASETS / "thermal" / "physionet-face-oral" / "FLIR_groups1and2.csv"
    if not path.is_file():
        pytest.skip(f"PhysioNet data not present ({path}); needs ../shared/datasets")
    table = load_physionet(path)
    model = CanthusCoreModel.load()
    held = np.isin(table.subject, model.info["test_subject_ids"])
    assert held.sum() > 250
    c = np.where(np.isfinite(table.canthus[held, 0]), table.canthus[held, 0], np.nanmean(table.canthus[held], 1))
    est = model.predict(c, table.ambient[held])
    fever = table.oral[held] >= 37.5
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(fever, est) >= 0.95
    assert np.abs(est - table.oral[held]).mean() < 0.3


def test_real_lab_frame_faces_too_small_to_measure() -> None:
    """Integration: the lab R-JPEG (09): faces ~20 px wide are found but refused as too small to measure."""
    path = DATASETS / "thermal" / "flir-rjpeg" / "sample_images" / "09_-_Infrared_image_of_people_in_the_laboratory.jpg"
    if not path.is_file():
        pytest.skip(f"sample R-JPEG not present ({path}); needs ../shared/datasets")
    from periface.thermal import read_thermal

    truth = json.loads((Path(__file__).parent / "fixtures" / "thermal" / "people_boxes.json").read_text())
    result = screen_frame(read_thermal(path), boxes=np.array(truth[f"flir-rjpeg/sample_images/{path.name}"]))
    assert len(result.faces) == 5
    for face in result.faces:
        assert not face.measurable and not face.flag and face.core_c is None
        assert 31.0 < face.canthus_c < 37.5  # skin of people indoors, read at the eye corners
