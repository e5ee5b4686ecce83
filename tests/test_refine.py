"""The crowd candidate refiner: box-delta maths, the shipped model's integrity, and what it does on a real face."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from periface.detect.base import iou_matrix
from periface.detect.crowd import CrowdFinder
from periface.detect.refine import MODEL_FILE, CandidateRefiner, apply_deltas, box_deltas
from periface.errors import ModelError
from periface.image import load_image


def test_box_deltas_and_apply_deltas_are_inverse():
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 20, 50, 70], [100, 100, 130, 124]], np.float32)
    targets = boxes + rng.normal(0, 5, boxes.shape).astype(np.float32)
    np.testing.assert_allclose(apply_deltas(boxes, box_deltas(boxes, targets)), targets, atol=1e-4)


@pytest.fixture(scope="module")
def refiner():
    return CandidateRefiner.load()


def test_a_tampered_refiner_is_refused(tmp_path):
    copy = tmp_path / MODEL_FILE.name
    shutil.copy(MODEL_FILE, copy)
    shutil.copy(MODEL_FILE.with_name("SHA256SUMS"), tmp_path / "SHA256SUMS")
    CandidateRefiner.load(copy)  # the intact copy loads
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelError):
        CandidateRefiner.load(copy)


def test_refiner_prefers_faces_to_background_and_moves_a_shifted_box_back(refiner, fixtures):
    rgb = load_image(fixtures / "two_people.jpg")
    faces = CrowdFinder.default().find(rgb)
    assert len(faces) == 2
    side = (faces.boxes[:, 2:] - faces.boxes[:, :2]).max(axis=1, keepdims=True)
    shifted = faces.boxes + side * np.array([0.15, -0.12, 0.15, -0.12], np.float32)
    background = np.array([[5, rgb.shape[0] - 65, 65, rgb.shape[0] - 5]], np.float32)  # a bottom corner, no face
    logits, refined = refiner.refine(rgb, np.concatenate([faces.boxes, shifted, background]))
    assert logits[:2].min() > 0 > logits[4]
    before = np.diag(iou_matrix(shifted, faces.boxes))
    after = np.diag(iou_matrix(refined[2:4], faces.boxes))
    assert np.all(after > before + 0.05), (before, after)


def test_refiner_outputs_nothing_for_no_boxes(refiner):
    logits, boxes = refiner.refine(np.zeros((50, 50, 3), np.uint8), np.zeros((0, 4), np.float32))
    assert logits.shape == (0,) and boxes.shape == (0, 4)


def test_mirror_averaging_maps_the_mirrored_deltas_back():
    """A look that shifts the box toward the brighter side is mirror-equivariant: averaging it with its mirror must
    change nothing; a second look moves the box further."""
    from periface.detect.refine import refine_boxes

    def toward_brighter_side(crops):
        half = crops.shape[2] // 2
        shift = 0.2 * (crops[:, :, half:].mean(axis=(1, 2, 3)) - crops[:, :, :half].mean(axis=(1, 2, 3))) / 255
        return np.stack([np.ones(len(crops)), shift, np.zeros(len(crops)), shift, np.zeros(len(crops))], 1).astype(np.float32)

    rgb = np.zeros((200, 200, 3), np.uint8)
    rgb[:, 120:] = 255
    boxes = np.array([[60, 60, 120, 120]], np.float32)
    logit, once = refine_boxes(toward_brighter_side, rgb, boxes)
    _, mirrored = refine_boxes(toward_brighter_side, rgb, boxes, mirror=True)
    _, twice = refine_boxes(toward_brighter_side, rgb, boxes, iterations=2)
    assert logit[0] == 1.0 and once[0, 0] > boxes[0, 0]
    np.testing.assert_allclose(mirrored, once, atol=1e-3)
    assert twice[0, 0] > once[0, 0]
    # the look sees as much surroundings as it is told: with no context, the bright side is out of view
    _, blind = refine_boxes(toward_brighter_side, rgb, boxes, context=1.0)
    np.testing.assert_allclose(blind, boxes, atol=1e-3)


def test_the_gpu_pack_gives_back_the_scenes_and_candidates(tmp_path, fixtures, script_module):
    """A GPU machine trains the refiner from the pack alone (no datasets, no detectors): each scene must come back
    with the same pixels (its file's bytes, decoded there as here), its annotated boxes and its candidates."""
    from periface.detect.crowd import Candidates
    from periface.evaluation.voc import Scene

    script = script_module("train_face_refiner")
    files = [fixtures / "two_people.jpg", fixtures / "obama.jpg"]
    scenes = [Scene(files[0], np.array([[10, 20, 60, 80], [100, 40, 150, 110]], np.float32), ["correct", "none"]),
              Scene(files[1], np.zeros((0, 4), np.float32), [])]
    cands = []
    for s, k in zip(scenes, (3, 0)):
        rgb = load_image(s.image)
        boxes = np.arange(4 * k, dtype=np.float32).reshape(k, 4) + 5
        cands.append((rgb, Candidates(boxes, np.zeros((k, 5, 2), np.float32), np.zeros((k, 2)), rgb.shape[:2])))
    path = tmp_path / "pack.npz"
    script.write_pack(scenes, cands, path)
    back_scenes, back_cands = script.read_pack(path)
    assert [s.image.name for s in back_scenes] == [f.name for f in files]
    for s, b, (rgb, c), (back_rgb, back_c) in zip(scenes, back_scenes, cands, back_cands):
        np.testing.assert_array_equal(b.boxes, s.boxes)
        np.testing.assert_array_equal(back_rgb, rgb)
        np.testing.assert_array_equal(back_c.boxes, c.boxes)


def test_the_operating_point_is_where_the_goal_holds_in_most_draws_not_on_its_edge(script_module):
    """100 photos, each with one masked 60-px face found at p 0.9, and in every fifth photo a false 60-px box at
    p 0.3: up to 0.30 a sixth of the boxes is false and the goal fails in most draws; above 0.30 it always holds."""
    from pathlib import Path

    from periface.evaluation.voc import Scene

    script = script_module("train_face_refiner")
    face, other = np.array([10, 10, 70, 70], np.float32), np.array([200, 200, 260, 260], np.float32)
    scenes, rows = [], []
    for i in range(100):
        scenes.append(Scene(Path(f"scene_{i}.png"), face[None], ["correct"]))
        if i % 5 == 0:
            rows.append((i, np.array([0.9, 0.3], np.float32), np.stack([face, other])))
        else:
            rows.append((i, np.array([0.9], np.float32), face[None]))
    threshold, shares = script.operating_point(scenes, rows, list(range(100)), 8, 0.0)
    assert threshold == 0.31 and shares[0.31] == 1.0 and shares[0.30] < 0.5
    rows = [(i, p[:1], b[:1]) for i, p, b in rows]  # no false box at all: the lowest threshold
    assert script.operating_point(scenes, rows, list(range(100)), 8, 0.0)[0] == 0.10
