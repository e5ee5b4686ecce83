"""Masked faces are also aligned on points placed from Face Mesh's eyes (``align.EyeAnchoredPoints``) and on BlazeFace's."""

import numpy as np

from periface import Engine
from periface.align import EyeAnchoredPoints, eye_frame
from periface.config import Settings
from periface.image import load_image
from periface.landmarks.facemesh import shared_landmarker
from periface.mask.render import add_mask


def test_points_from_the_eyes_land_near_the_detectors_on_an_unmasked_face(engine, fixtures):
    rgb = load_image(fixtures / "obama.jpg")
    faces = engine.finder.find(rgb)
    mesh = shared_landmarker().landmarks(rgb, faces.boxes[0])
    placed = EyeAnchoredPoints.load()(mesh)
    interocular = np.linalg.norm(faces.landmarks[0, 1] - faces.landmarks[0, 0])
    assert placed.shape == (5, 2)
    # the fit is on other people's unmasked faces; on this one every point falls within 15% of the eye distance
    assert (np.linalg.norm(placed - faces.landmarks[0], axis=1) < 0.15 * interocular).all()


def test_the_eye_frame_ignores_position_size_and_roll():
    mesh = np.random.default_rng(0).uniform(0, 100, (468, 2))
    angle, scale, shift = 0.4, 2.5, np.array([30.0, -12.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = scale * mesh @ rot.T + shift
    points = EyeAnchoredPoints.load()
    np.testing.assert_allclose(points(moved), scale * points(mesh) @ rot.T + shift, atol=1e-3)
    origin, _ = eye_frame(moved)
    assert np.isfinite(origin).all()


def test_only_masked_faces_get_the_extra_alignments(fixtures):
    rgb = load_image(fixtures / "obama.jpg")
    masked = add_mask(rgb, seed=3, coverage="full").image
    with_eyes, without = Engine(), Engine(settings=Settings(masked_eye_alignment=False))
    a, b = with_eyes.analyze(masked), without.analyze(masked)
    assert a.mask[0] != "none" and b.mask[0] != "none"
    cos = float(a.embeddings[0] @ b.embeddings[0])
    assert 0.8 < cos < 0.9999  # the same face, aligned partly differently
    np.testing.assert_allclose(np.linalg.norm(a.embeddings, axis=1), 1.0, atol=1e-5)
    plain_a, plain_b = with_eyes.analyze(rgb), without.analyze(rgb)
    np.testing.assert_array_equal(plain_a.embeddings, plain_b.embeddings)


def test_a_masked_face_gets_the_eye_and_blazeface_alignments_near_the_detectors(engine, fixtures):
    masked = add_mask(load_image(fixtures / "obama.jpg"), seed=3, coverage="full").image
    faces = engine.finder.find(masked)
    views = engine.masked_alignments(masked, faces.boxes[0])
    assert set(views) == {"eyes", "blazeface"}
    interocular = np.linalg.norm(faces.landmarks[0, 1] - faces.landmarks[0, 0])
    for points in views.values():  # other estimates of the same face, not of another one
        assert points.shape == (5, 2)
        assert np.linalg.norm(points[:2] - faces.landmarks[0, :2], axis=1).max() < 0.3 * interocular


def test_an_engine_whose_masked_path_uses_an_adapter_keeps_the_detector_alignment():
    assert Engine().aligns_masked_faces_three_ways  # sface-robust: no adapter
    assert not Engine("sface").aligns_masked_faces_three_ways  # its adapter was fitted on detector-aligned faces


def test_analyze_runs_face_mesh_once_per_masked_face(engine, fixtures, monkeypatch):
    from periface.landmarks.facemesh import FaceMeshLandmarker

    masked = add_mask(load_image(fixtures / "obama.jpg"), seed=3, coverage="full").image
    boxes = []
    original = FaceMeshLandmarker.landmarks
    monkeypatch.setattr(FaceMeshLandmarker, "landmarks",
                        lambda self, rgb, box=None: boxes.append(box) or original(self, rgb, box))
    faces = engine.analyze(masked)
    assert faces.mask[0] != "none" and faces.nose_visible is not None
    # visibility and the eye alignment both need this face's mesh: they share one run
    assert len(boxes) == 1
    np.testing.assert_array_equal(boxes[0], faces.boxes[0])
