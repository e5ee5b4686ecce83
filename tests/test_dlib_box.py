import numpy as np
import pytest

from periface.embed.dlib_resnet import (box_from_point_units, box_in_point_units, hog_style_box, load_dlib_models,
                                        predict_shape, shape_points)


def test_box_units_round_trip():
    points = np.array([[60, 50], [48, 51], [20, 50], [32, 51], [40, 75]], np.float32)
    box = np.array([10.0, 20.0, 75.0, 90.0])
    np.testing.assert_allclose(box_from_point_units(points, box_in_point_units(points, box)), box, atol=1e-4)


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg", "obama2.jpg", "obama_small.jpg"])
def test_reseated_box_lands_where_dlib_hog_draws_it(engine, fixtures, name):
    """From YuNet's box the shape predictor's points give a box far closer to dlib HOG's own than YuNet's is."""
    import dlib

    from periface.detect.base import iou_matrix

    rgb = np.ascontiguousarray(engine.load(fixtures / name))
    yunet = engine.analyze(rgb).boxes[:1]
    hog = [[r.left(), r.top(), r.right(), r.bottom()] for r in dlib.get_frontal_face_detector()(rgb, 1)]
    assert hog, "dlib's HOG detector finds these frontal faces"
    hog = np.array(hog, np.float32)
    predictor, _ = load_dlib_models()
    reseated = hog_style_box(shape_points(predict_shape(predictor, rgb, yunet[0], reseat=False)))[None]
    # measured: YuNet's box 0.57-0.74 IoU with HOG's, the re-seated box 0.76-0.90
    assert iou_matrix(reseated, hog).max() > 0.75
    assert iou_matrix(reseated, hog).max() > iou_matrix(yunet, hog).max() + 0.05


def test_reseating_is_part_of_the_fingerprint():
    from periface.embed import DlibEmbedder

    assert DlibEmbedder().fingerprint != DlibEmbedder(reseat=False).fingerprint
    assert "reseat" in DlibEmbedder().fingerprint


def test_dlib_embeds_a_face_given_several_times_once(engine, fixtures, monkeypatch):
    """Masked faces are embedded on three alignments; dlib ignores them, so the same box is computed once."""
    from periface.embed.dlib_resnet import DlibEmbedder

    rgb = engine.load(fixtures / "two_people.jpg")
    faces = engine.finder.find(rgb)
    dlib_embedder = DlibEmbedder()
    separately = dlib_embedder.embed(rgb, faces.boxes, faces.landmarks)
    computed = []
    original = DlibEmbedder._embed_boxes
    monkeypatch.setattr(DlibEmbedder, "_embed_boxes", lambda self, img, b: computed.append(len(b)) or original(self, img, b))
    order = [1, 0, 1, 1, 0]
    repeated = dlib_embedder.embed(rgb, faces.boxes[order], faces.landmarks[order])
    assert computed == [2]
    np.testing.assert_array_equal(repeated, separately[order])
