"""Mask state CNN: real faces unmasked -> none, rendered full masks -> correct, nose exposed -> incorrect."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from periface.errors import ModelError
from periface.faces import MASK_STATES
from periface.image import context_crop, load_image
from periface.mask.classify import (
    CONTEXT, INPUT_PX, MODEL_FILE, OnnxMaskClassifier, default_mask_classifier, nose_mouth_visibility,
    visibility_from_cues,
)


@pytest.fixture(scope="module")
def clf():
    return default_mask_classifier()


@pytest.fixture(scope="module")
def finder():
    from periface.detect import FaceFinder

    return FaceFinder.default()


@pytest.fixture(scope="module")
def obama(fixtures):
    return load_image(fixtures / "obama.jpg")


def _render(rgb, coverage, seed):
    from periface.mask.render import add_mask

    out = add_mask(rgb, seed=seed, coverage=coverage)
    assert out is not None
    return out.image


def test_unmasked_faces_are_none(clf, finder, fixtures):
    for name in ("obama.jpg", "biden.jpg", "two_people.jpg"):
        rgb = load_image(fixtures / name)
        faces = finder.find(rgb)
        labels, score = clf.classify(rgb, faces)
        assert labels == ["none"] * len(faces), name
        assert np.all(score < 0.5)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_full_mask_render_is_correct(clf, finder, obama, seed):
    rgb = _render(obama, "full", seed)
    faces = finder.find(rgb)
    labels, score = clf.classify(rgb, faces.select(faces.largest()))
    assert labels == ["correct"] and score[0] > 0.5


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nose_exposed_render_is_incorrect(clf, finder, obama, seed):
    rgb = _render(obama, "nose_exposed", seed)
    faces = finder.find(rgb)
    labels, score = clf.classify(rgb, faces.select(faces.largest()))
    assert labels == ["incorrect"] and score[0] > 0.5


def test_no_faces_gives_empty_results(clf, obama):
    from periface.faces import Faces

    labels, score = clf.classify(obama, Faces.empty(obama.shape[:2]))
    assert labels == [] and score.shape == (0,)


def test_altered_weights_are_refused(tmp_path):
    shutil.copy(MODEL_FILE, tmp_path / MODEL_FILE.name)
    shutil.copy(MODEL_FILE.with_name("SHA256SUMS"), tmp_path / "SHA256SUMS")
    OnnxMaskClassifier.load(tmp_path / MODEL_FILE.name)  # the intact copy loads
    with open(tmp_path / MODEL_FILE.name, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError):
        OnnxMaskClassifier.load(tmp_path / MODEL_FILE.name)


def test_context_crop_is_centred_on_the_box():
    img = np.zeros((200, 200, 3), np.uint8)
    img[90:110, 90:110] = 255  # a white square in the middle of the box below
    crop = context_crop(img, np.array([60, 60, 140, 140]), CONTEXT, INPUT_PX)
    assert crop.shape == (INPUT_PX, INPUT_PX, 3)
    centre = crop[INPUT_PX // 2 - 3:INPUT_PX // 2 + 3, INPUT_PX // 2 - 3:INPUT_PX // 2 + 3]
    assert centre.min() > 200 and crop[:5, :5].max() == 0


def test_nose_and_mouth_visibility(clf, finder, obama):
    faces = finder.find(obama)
    bare = nose_mouth_visibility(obama, faces, clf.probabilities(obama, faces))
    assert bare.shape == (1, 2) and np.all(bare > 0.5)
    masked = _render(obama, "full", 5)
    faces = finder.find(masked)
    covered = nose_mouth_visibility(masked, faces, clf.probabilities(masked, faces))
    assert np.all(covered < 0.5)


@pytest.mark.parametrize("p, skin, nose, mouth", [
    ((1, 0, 0), (0.5, 0.5), True, True),      # no mask, no colour evidence (a small face)
    ((0, 1, 0), (0.5, 0.5), False, False),    # worn correctly
    ((0, 0, 1), (0.9, 0.05), True, False),    # worn under the nose: nose skin-coloured, lips not
    ((0, 0, 1), (0.9, 0.9), True, True),      # pulled down under the chin
])
def test_fitted_visibility_model_reads_the_cues_the_right_way(p, skin, nose, mouth):
    visible = visibility_from_cues(np.array([p], np.float32), np.array([skin], np.float32))[0]
    assert (visible[0] > 0.5, visible[1] > 0.5) == (nose, mouth)
    assert visibility_from_cues(np.zeros((0, 3)), np.zeros((0, 2))).shape == (0, 2)


def test_masked_crops_are_routed_as_masked(clf, datasets):
    """Held-out real crops with a mask: classified masked (correct or incorrect), as issue 3 routes them."""
    from periface.detect import FaceFinder
    from periface.evaluation.voc import split_of

    finder = FaceFinder.default()
    paths = [p for p in sorted((datasets / "mask-crops" / "with_mask").glob("*.jpg")) if split_of(p.name) == "test"][:40]
    masked = 0
    for p in paths:
        rgb = load_image(p)
        labels, _ = clf.classify(rgb, finder.find_in_crop(rgb))
        masked += labels[0] != "none"
    assert masked / len(paths) >= 0.95
    assert set(MASK_STATES) == {"none", "correct", "incorrect"}


def test_unmasked_faces_boxed_by_the_crowd_finder_are_none(clf, fixtures):
    """Was a known weakness (the CNN called large, annotation-boxed unmasked faces "incorrect") until LFW faces boxed
    by both detectors were added to its training data."""
    from periface.detect.crowd import CrowdFinder

    finder = CrowdFinder.default()
    for name in ("obama.jpg", "obama_small.jpg"):
        rgb = load_image(fixtures / name)
        labels, _ = clf.classify(rgb, finder.find(rgb))
        assert labels == ["none"], name


def training_script():
    import importlib.util
    from pathlib import Path

    scripts = Path(__file__).resolve().parents[1] / "scripts"
    if str(scripts) not in sys.path:
        sys.path.insert(0, str(scripts))  # as when the script runs: its helpers sit beside it
    path = scripts / "train_mask_classifier.py"
    spec = importlib.util.spec_from_file_location("train_mask_classifier", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_views_are_the_run_time_crop(fixtures):
    """The training script judges every choice on crops cut from stored 1.6x contexts; the centre view must be
    the crop the product cuts from the image, else validation scores a different input than users get."""
    script = training_script()
    rgb = load_image(fixtures / "obama.jpg")
    for box in ([10, 10, 40, 44], [140, 90, 300, 270], [300, 200, 620, 600]):  # a small face to one larger than both crops
        box = np.array(box, np.float32)
        stored = context_crop(rgb, box, script.STORE_CONTEXT, script.STORE_PX)
        run_time = context_crop(rgb, box, CONTEXT, INPUT_PX).astype(np.float32)
        view = np.abs(script.centre(stored[None])[0] - run_time).mean()
        shifted = np.abs(script.view_crops(stored[None], CONTEXT, dx=0.1)[0] - run_time).mean()
        # resampled twice, so not equal: a few grey levels, far less than a shift of a tenth of the box
        assert view < 8 and view < 0.25 * shifted


def test_cross_validation_folds_keep_a_photo_together():
    script = training_script()
    names = np.array([f"scene_{i}.png#{k}" for i in range(300) for k in range(3)] + ["lfw/A_B/A_B_0001.jpg"])
    data = {"name": names, "split": np.array(["test" if script.name_hash(script.sample_file(n)) < 0.25 else "train"
                                              for n in names])}
    fold = script.fold_of_rows(data)
    assert ((fold == -1) == (data["split"] == "test")).all()
    per_photo = {}
    for n, f in zip(names, fold):
        per_photo.setdefault(script.sample_file(n), set()).add(int(f))
    assert all(len(f) == 1 for f in per_photo.values())
    counts = np.bincount(fold[fold >= 0], minlength=script.FOLDS)
    assert len(counts) == script.FOLDS and counts.min() > 0.5 * counts.mean()


def test_the_gpu_pack_holds_the_trainable_samples_in_order(tmp_path, fixtures):
    """A GPU machine trains from the JPEG pack alone; here the same networks are looked up by a key of the samples
    and evaluated on the cache. The pack must hold exactly the train split's trainable samples, in the cache's order
    (a network's draws follow that order), close to their pixels, and refuse a cache it was not made from."""
    script = training_script()
    obama = load_image(fixtures / "obama.jpg")
    boxes = [np.array([140 + d, 90, 300 + d, 270], np.float32) for d in range(-20, 21, 4)]
    names = np.array([f"scene_{i}.png#0" for i in range(len(boxes))])
    split = np.array(["test" if script.name_hash(script.sample_file(n)) < 0.25 else "train" for n in names])
    source = np.array(["scenes", "scene_detections"] * (len(boxes) // 2) + ["scenes"] * (len(boxes) % 2))
    data = {"source": source, "name": names, "split": split, "state": np.array(["correct"] * len(boxes)),
            "x": np.stack([context_crop(obama, b, script.STORE_CONTEXT, script.STORE_PX) for b in boxes])}
    leave_out = ["scene_detections"]
    trainable = (split == "train") & (source != "scene_detections")
    assert 0 < trainable.sum() < len(names)
    path = tmp_path / "pack.npz"
    script.write_pack(data, ~np.isin(source, leave_out), path)
    pack = script.read_pack(path)
    assert list(pack["name"]) == list(names[trainable])
    assert np.abs(pack["x"].astype(np.float32) - data["x"][trainable]).mean() < 4  # JPEG, a few grey levels
    mixed = script.with_pack(data, pack, leave_out)
    assert np.array_equal(mixed["x"][~trainable], data["x"][~trainable])  # evaluation keeps the cache's pixels
    assert np.array_equal(mixed["x"][trainable], pack["x"])
    assert script.with_pack(None, pack, leave_out) is pack
    other = {**data, "name": names[::-1].copy()}
    with pytest.raises(SystemExit, match="rebuild it with --pack"):
        script.with_pack(other, pack, leave_out)


def test_network_width_scales_the_channels():
    pytest.importorskip("torch", reason="torch is a training extra (pip install -e '.[train]')")
    import torch

    script = training_script()
    for width in (1.0, 2.0):
        net = script.build_net(width).eval()
        assert net(torch.zeros(2, 3, INPUT_PX, INPUT_PX)).shape == (2, 3)
        assert net[0].out_channels == round(16 * width)
