"""Crowd detection: tiling geometry, clustering/fusion, the evaluation maths, and the shipped CrowdFinder."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from periface.detect.base import iou_matrix
from periface.detect.crowd import Candidates, CrowdFinder, Pass, cluster, run_pass, select_faces
from periface.evaluation.detection import DetectionTally, average_precision, match
from periface.faces import Faces
from periface.image import load_image


class FixedDetector:
    """Finds one 20x20 'face' at a fixed place of whatever image it is given (to check coordinate mapping)."""

    name = "yunet"

    def __init__(self, where=(10, 10)):
        self.where = where
        self.shapes = []

    def detect(self, rgb):
        self.shapes.append(rgb.shape[:2])
        x, y = self.where
        box = np.array([[x, y, x + 20, y + 20]], np.float32)
        lm = np.tile(np.array([x + 10, y + 10], np.float32), (1, 5, 1))
        return Faces(box, np.array([0.9], np.float32), lm, rgb.shape[:2], detector=[self.name])


def test_upscaled_pass_maps_boxes_back_to_the_input_image():
    det = FixedDetector()
    faces = run_pass(det, Pass("yunet", upscale_to=800, max_upscale=2.0), np.zeros((300, 400, 3), np.uint8))
    assert det.shapes == [(600, 800)]
    np.testing.assert_allclose(faces.boxes[0], [5, 5, 15, 15], atol=0.5)


def test_tiles_cover_the_image_and_map_back():
    det = FixedDetector()
    faces = run_pass(det, Pass("yunet", tiles=3, overlap=0.25), np.zeros((300, 400, 3), np.uint8))
    assert len(det.shapes) == 9
    # each tile's detection lands at its tile's own offset; the last tiles end at the image's edges
    assert len(faces) == 9
    assert sorted(set(faces.boxes[:, 0].tolist())) == [10, 130, 250]
    assert sorted(set(faces.boxes[:, 1].tolist())) == [10, 100, 190]


def _faces(boxes, scores, name):
    boxes = np.asarray(boxes, np.float32)
    lm = np.repeat(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None], 5, axis=1)
    return Faces(boxes, np.asarray(scores, np.float32), lm, (100, 100), detector=[name] * len(boxes))


def test_cluster_merges_overlapping_boxes_of_different_passes():
    a = _faces([[10, 10, 30, 30], [60, 60, 80, 80]], [0.9, 0.4], "yunet")
    b = _faces([[11, 11, 31, 31]], [0.8], "blazeface_short")
    c = cluster([a, b], (100, 100))
    assert isinstance(c, Candidates) and len(c) == 2
    first = int(np.argmax(c.best[:, 0]))
    np.testing.assert_allclose(c.best[first], [0.9, 0.8], atol=1e-6)
    assert c.best[1 - first, 1] == 0  # the second face was seen by one pass only
    assert 10 < c.boxes[first, 0] < 11  # weighted box fusion


def test_select_faces_drops_a_box_inside_a_larger_more_probable_face_only_when_asked():
    boxes = np.array([[0, 0, 100, 100], [20, 30, 50, 60], [90, 0, 150, 60], [300, 300, 340, 340]], np.float32)
    prob = np.array([0.9, 0.8, 0.7, 0.3], np.float32)
    assert select_faces(boxes, prob, 0.5, 8, dedupe=True).tolist() == [0, 1, 2]
    # box 1 lies wholly inside box 0; box 2 only one sixth inside it (a neighbour's face), so it stays
    assert select_faces(boxes, prob, 0.5, 8, dedupe=True, contained=0.75).tolist() == [0, 2]
    # a larger box that is less probable does not remove the smaller, more probable one inside it
    assert select_faces(boxes[[1, 0]], prob[:2], 0.5, 8, dedupe=True, contained=0.75).tolist() == [0, 1]


def test_voc_matching_and_average_precision():
    gt = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    det = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [21, 21, 40, 40]], np.float32)
    hit, tp = match(gt, det, np.array([0.9, 0.8, 0.7]))
    assert hit.tolist() == [True, True] and tp.tolist() == [True, False, True]
    assert average_precision(np.array([0.9, 0.8, 0.7]), tp, 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    tally = DetectionTally()
    tally.add(gt, ["correct", "none"], det, np.array([0.9, 0.8, 0.7]))
    s = tally.summary()
    assert s["all"]["recall"] == 1.0 and s["all"]["precision"] == pytest.approx(2 / 3)
    assert s["small"]["faces"] == 2  # both ground-truth boxes are under 32 px
    assert s["per_class"]["correct"]["all"]["recall"] == 1.0


@pytest.fixture(scope="module")
def crowd():
    return CrowdFinder.default()


def test_crowd_finder_finds_both_faces_of_two_people(crowd, fixtures):
    rgb = load_image(fixtures / "two_people.jpg")
    faces = crowd.find(rgb)
    assert len(faces) == 2
    assert np.all(faces.scores >= crowd.fusion.threshold) and faces.detector == ["crowd", "crowd"]
    assert faces.landmarks.shape == (2, 5, 2) and np.isfinite(faces.landmarks).all()
    # the two faces sit side by side
    assert abs(faces.boxes[0, 0] - faces.boxes[1, 0]) > 200


def test_frame_tiles_cover_the_frame_and_hold_every_small_face_whole():
    from periface.detect.crowd import frame_tiles

    h, w, size, overlap = 1080, 1920, 640, 160
    tiles = frame_tiles(h, w, size, overlap)
    covered = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in tiles:
        assert x1 - x0 <= size and y1 - y0 <= size
        covered[y0:y1, x0:x1] = True
    assert covered.all() and frame_tiles(480, 640, size, overlap) == [(0, 0, 640, 480)]
    rng = np.random.default_rng(0)
    for _ in range(500):  # a face smaller than the overlap lies inside some tile without touching its inner edges
        side = rng.uniform(8, overlap - 6)
        x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
        assert any((x0 == 0 or x > x0 + 2) and (y0 == 0 or y > y0 + 2) and (x1 == w or x + side < x1 - 2)
                   and (y1 == h or y + side < y1 - 2) for x0, y0, x1, y1 in tiles)


def test_a_large_frame_is_searched_as_a_shrunk_whole_and_tiles(crowd, fixtures):
    rgb = load_image(fixtures / "two_people.jpg")  # 1126 x 661: larger than the working size already
    small = cv2.resize(rgb, (563, 330), interpolation=cv2.INTER_AREA)
    assert crowd.find(small).boxes.tolist() == CrowdFinder.default(working_size=None).find(small).boxes.tolist()
    enlarged = cv2.resize(rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # faces of ~450 px
    whole, found = crowd.find(rgb), crowd.find(enlarged)
    # the same two faces, no part of a face taken for a small one in a tile
    assert len(found) == 2
    assert np.all(iou_matrix(found.boxes / 3, whole.boxes).max(axis=1) > 0.7)
    assert np.all(np.diff(found.scores) <= 0)  # most probable first


@pytest.mark.parametrize("longer_side", [641, 1920, 2560, 2561, 4032, 12000, 40000])
def test_pyramid_levels_share_out_every_face_size_and_see_each_at_a_fitted_size(longer_side):
    from periface.detect.crowd import LEVEL_BAND_SLACK, pyramid

    size, overlap = 640, 160
    levels = pyramid(longer_side, size, overlap, ratio=4.0)
    assert levels[0].scale == size / longer_side and levels[-1].scale == 1.0
    assert len(levels) == (2 if longer_side <= 4 * size else 3 if longer_side <= 16 * size else 4 if
                           longer_side <= 64 * size else 5)
    # coarsest first; every face size kept by one level, or by two near a limit (a face measured just under the
    # limit at one level and just over it at the next must not fall between them)
    assert levels[0].largest == np.inf and levels[-1].smallest == 0.0
    assert all(a.smallest == pytest.approx(LEVEL_BAND_SLACK * b.largest) and a.scale < b.scale
               for a, b in zip(levels, levels[1:]))
    for level in levels[1:]:  # a tiled level sees its faces whole (< overlap) ...
        assert level.largest * level.scale == pytest.approx(overlap)
    for level in levels[:-1]:  # ... and no level but the finest sees them below 3/4 of overlap / ratio = 30 px
        assert level.smallest * level.scale >= LEVEL_BAND_SLACK * overlap / 4 - 1e-6
    assert [lv.scale for lv in pyramid(longer_side, size, overlap, ratio=np.inf)] == [size / longer_side, 1.0]


def test_a_frame_over_four_working_sizes_finds_its_faces_on_a_middle_level(crowd, fixtures):
    from periface.detect.crowd import pyramid

    rgb = load_image(fixtures / "two_people.jpg")
    enlarged = cv2.resize(rgb, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)  # 2815 px, faces of ~400 px
    levels = pyramid(max(enlarged.shape[:2]), 640, 160, 4.0)
    assert [round(lv.scale, 3) for lv in levels] == [0.227, 0.25, 1.0]
    whole, found = crowd.find(rgb), crowd.find(enlarged)
    assert len(found) == 2 and np.all(iou_matrix(found.boxes / 2.5, whole.boxes).max(axis=1) > 0.7)
    sides = np.min(found.boxes[:, 2:] - found.boxes[:, :2], axis=1)
    assert np.all((sides >= levels[1].smallest) & (sides < levels[1].largest))  # the middle level's faces


def test_tiles_searched_side_by_side_give_the_faces_of_one_thread(fixtures):
    """Threads only change the time: each tile is searched alone and the results are put together in order, also
    when two callers (the service's requests) share one finder."""
    from concurrent.futures import ThreadPoolExecutor

    rgb = load_image(fixtures / "two_people.jpg")
    frame = np.concatenate([np.concatenate([rgb, rgb[:, ::-1]], axis=1)] * 2)  # 2252 x 1322, 12 tiles + the whole

    def found(finder):
        faces = finder.find(frame)
        return faces.boxes.tolist(), faces.scores.tolist(), faces.landmarks.tolist()

    one_thread = found(CrowdFinder.default(tile_workers=1))
    assert len(one_thread[0]) == 8
    threaded = CrowdFinder.default(tile_workers=3)
    assert threaded.tile_threads == 3 and found(threaded) == one_thread
    with ThreadPoolExecutor(2) as callers:
        assert list(callers.map(lambda _: found(threaded), range(2))) == [one_thread, one_thread]


def test_a_threshold_given_to_find_equals_a_finder_built_with_it(crowd, fixtures):
    """One shared finder (the service's) serves any operating point per call, small and large frames alike, and
    gives what a finder made for that threshold gives."""
    rgb = load_image(fixtures / "two_people.jpg")
    small = np.ascontiguousarray(rgb[: rgb.shape[0] // 2, : rgb.shape[1] // 2])
    assert max(rgb.shape[:2]) > crowd.working_size >= max(small.shape[:2])  # the pyramid and the one-view path
    for frame in (rgb, small):
        for threshold in (0.02, 0.9975):
            per_call, built = crowd.find(frame, threshold), CrowdFinder.default(threshold=threshold).find(frame)
            assert per_call.boxes.tolist() == built.boxes.tolist() and per_call.scores.tolist() == built.scores.tolist()
            assert np.all(per_call.scores >= threshold)
        assert crowd.find(frame, None).boxes.tolist() == crowd.find(frame).boxes.tolist()


def test_crowd_finder_finds_nothing_in_a_blank_image(crowd):
    assert len(crowd.find(np.full((240, 320, 3), 127, np.uint8))) == 0


def test_crowd_beats_dlib_hog_on_held_out_scenes(crowd, datasets):
    """On the first test-split scenes, the crowd finder finds more faces of 32 px or more than dlib's HOG."""
    from periface.evaluation.reference import FaceRecognitionReference
    from periface.evaluation.voc import read_scenes, split_of

    scenes = [s for s in read_scenes(datasets / "mask-scenes") if split_of(s.image.name) == "test"][:12]
    ours, hog = DetectionTally(), DetectionTally()
    ref = FaceRecognitionReference()
    for s in scenes:
        rgb = load_image(s.image)
        f = crowd.find(rgb)
        ours.add(s.boxes, s.states, f.boxes, f.scores)
        b = ref.boxes(rgb)
        hog.add(s.boxes, s.states, b, np.ones(len(b)))
    a, b = ours.summary()[">=32"], hog.summary()[">=32"]
    assert a["faces"] > 10
    assert a["recall"] >= 0.85 and a["recall"] > b["recall"]
    assert a["precision"] >= 0.8


def test_lowest_threshold_keeping_precision_stops_at_the_first_miss():
    from periface.evaluation.detection import lowest_threshold_keeping_precision

    # precision falls as the threshold falls; 0.95 holds down to 0.50, and a later rise must not be picked up
    def summary_at(thr):
        precision = 0.99 if thr >= 0.495 else (0.90 if thr >= 0.295 else 0.97)
        return {">=32": {"precision": precision}}

    assert lowest_threshold_keeping_precision(summary_at, 0.95) == pytest.approx(0.50)
    assert lowest_threshold_keeping_precision(lambda t: {">=32": {"precision": 0.5}}, 0.95) == 0.99
    assert lowest_threshold_keeping_precision(lambda t: {">=32": {"precision": None}}, 0.95) == pytest.approx(0.06)


def test_the_scene_trained_yunet_is_checked_and_draws_boxes_as_the_annotators_do(fixtures):
    from periface.detect.yunet import YuNetDetector
    from periface.image import scaled

    rgb = load_image(fixtures / "two_people.jpg")
    rgb = scaled(rgb, 400 / max(rgb.shape[:2]))  # the size of the photos it was tuned on (the crowd finder's tiles)
    stock = YuNetDetector(0.5).detect(rgb)
    tuned = YuNetDetector(0.5, model="yunet_scenes").detect(rgb)
    assert len(tuned) == len(stock) == 2 and set(tuned.detector) == {"yunet_scenes"}
    a, b = stock.boxes[np.argsort(stock.boxes[:, 0])], tuned.boxes[np.argsort(tuned.boxes[:, 0])]
    assert (np.diag(iou_matrix(a, b)) > 0.5).all()
    # YuNet's box takes in the forehead; the annotators' (and the tuned network's) top edge is lower
    assert (b[:, 1] > a[:, 1]).all()
    with pytest.raises(ValueError, match="unknown YuNet model"):
        YuNetDetector(model="yunet_best")


def test_the_fine_tuning_script_reads_yunet_exactly_as_opencv_runs_it(script_module):
    pytest.importorskip("torch", reason="torch is a training extra (pip install -e '.[train]')")
    import torch

    from periface.models import model_path

    script = script_module("finetune_yunet")

    net, outputs = script.graph_module(model_path("yunet"))
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 160, 224)).astype(np.float32)
    dnn = cv2.dnn.readNetFromONNX(str(model_path("yunet")))
    dnn.setInput(x)
    with torch.no_grad():
        got = net(torch.from_numpy(x), logits=True)
    for name, want in zip(outputs, dnn.forward(outputs)):
        np.testing.assert_allclose(got[name].numpy(), want, atol=1e-4)
    assert torch.allclose(torch.sigmoid(got["cls_8_logit"]), got["cls_8"])
    # the cells decode as cv2.FaceDetectorYN decodes them: a cell's corner plus offsets in strides
    priors = torch.from_numpy(script.grid_priors(160, 224))
    assert len(priors) == got["cls_8"].shape[1] + got["cls_16"].shape[1] + got["cls_32"].shape[1]
    boxes, _ = script.decode({k: v[0:1] for k, v in got.items()}, priors)
    cell = 7 * (224 // 8) + 3  # row 7, column 3 of the stride-8 grid
    dx, dy, dw, dh = got["bbox_8"][0, cell].tolist()
    np.testing.assert_allclose(boxes[0, cell].numpy(),
                               [(3 + dx) * 8 - np.exp(dw) * 4, (7 + dy) * 8 - np.exp(dh) * 4,
                                (3 + dx) * 8 + np.exp(dw) * 4, (7 + dy) * 8 + np.exp(dh) * 4], rtol=1e-4, atol=1e-3)


def test_fine_tuning_gives_each_face_its_best_fitting_cells_near_its_centre(script_module):
    pytest.importorskip("torch", reason="torch is a training extra (pip install -e '.[train]')")
    import torch

    script = script_module("finetune_yunet")

    priors = torch.from_numpy(script.grid_priors(128, 128))
    gt = torch.tensor([[16.0, 16.0, 48.0, 56.0], [80.0, 80.0, 96.0, 100.0]])
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]]).repeat(len(priors), 1)  # cells that see nothing
    near_first, far = 4 * 16 + 3, 15  # stride-8 cells: centre (28, 36), inside the first face; (124, 4), near neither
    boxes[near_first] = torch.tensor([17.0, 17.0, 47.0, 55.0])  # fits the first face well
    boxes[far] = torch.tensor([80.0, 80.0, 96.0, 100.0])  # fits the second face exactly, but from far away
    cells, faces = script.assign(boxes, torch.full((len(priors),), 0.5), priors, gt)
    assert set(faces.tolist()) == {0, 1} and len(set(cells.tolist())) == len(cells)  # every face, no cell twice
    assert near_first in cells[faces == 0].tolist() and far not in cells.tolist()
    centre = priors[cells, :2] + priors[cells, 2:] / 2
    near = ((centre - (gt[faces, :2] + gt[faces, 2:]) / 2).abs() < 2.5 * priors[cells, 2:] + 20).all(1)
    assert near.all()
