import numpy as np
import pytest

from periface import Engine, NoFaceError
from periface.match import calibration_for


def test_two_people_found_with_landmarks(engine, fixtures):
    faces = engine.analyze(fixtures / "two_people.jpg")
    assert len(faces) == 2
    assert faces.boxes.shape == (2, 4) and faces.landmarks.shape == (2, 5, 2)
    assert faces.embeddings.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(faces.embeddings, axis=1), 1.0, atol=1e-5)
    # landmarks lie inside their boxes, eyes above the mouth
    for box, lm in zip(faces.boxes, faces.landmarks):
        assert (lm[:, 0] >= box[0] - 2).all() and (lm[:, 0] <= box[2] + 2).all()
        assert lm[:2, 1].mean() < lm[3:, 1].mean()
    assert faces.mask == ["none", "none"]


def test_verify_same_and_different(engine, fixtures):
    same = engine.verify(fixtures / "obama.jpg", fixtures / "obama2.jpg")
    diff = engine.verify(fixtures / "obama.jpg", fixtures / "biden.jpg")
    assert same.same and not diff.same
    assert same.score > diff.score
    assert same.threshold == pytest.approx(engine.calibration.threshold(1e-3))
    assert same.far < 1e-3 < diff.far


def test_verify_accepts_embeddings_and_bytes(engine, fixtures):
    e = engine.embed(fixtures / "obama.jpg")
    v = engine.verify(e, (fixtures / "obama2.jpg").read_bytes())
    assert v.same


def test_similarity_shapes(engine):
    a = np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32)
    b = np.random.default_rng(1).normal(size=(4, 128)).astype(np.float32)
    assert engine.similarity(a, b).shape == (3, 4)
    assert engine.similarity(a[0], a[0]) == pytest.approx(1.0, abs=1e-5)


def test_no_face_is_an_error_naming_the_input(engine, tmp_path):
    from PIL import Image

    p = tmp_path / "grey.png"
    Image.new("RGB", (300, 300), (128, 128, 128)).save(p)
    assert len(engine.analyze(p)) == 0
    with pytest.raises(NoFaceError, match="grey.png"):
        engine.embed(p)


def test_several_faces_largest_used_and_said(engine, fixtures):
    face = engine.face(fixtures / "two_people.jpg")
    assert len(face) == 1 and "largest" in face.notes[0]


def test_crop_mode_always_one_face(engine):
    flat = np.full((112, 112, 3), 120, np.uint8)
    faces = engine.analyze(flat, crop=True)
    assert len(faces) == 1 and faces.detector == ["crop"]


def test_crop_mode_aligns_inside_a_face_crop(engine, fixtures):
    rgb = engine.load(fixtures / "obama.jpg")
    box = engine.analyze(rgb).boxes[0].astype(int)
    crop = rgb[box[1]:box[3], box[0]:box[2]]
    full = engine.embed(rgb)
    cropped = engine.embed(crop, crop=True)
    assert float(full @ cropped) > 0.6  # same person far above the FAR 1e-3 threshold (~0.36)


def test_dlib_backend_selectable(fixtures):
    eng = Engine("dlib")
    v = eng.verify(fixtures / "obama.jpg", fixtures / "obama2.jpg")
    d = eng.verify(fixtures / "obama.jpg", fixtures / "biden.jpg")
    assert eng.embedder.name == "dlib" and v.same and not d.same


def test_fusion_vectors_reweight_exactly_masked_faces_included(engine, fixtures):
    """scripts/calibrate.py chooses the fusion's weight by reweighting vectors embedded once; check that this gives
    what an engine built with the other weight computes, for a masked face averaged over its alignments too."""
    from periface.embed.fusion import FusionEmbedder, reweighted
    from periface.image import load_image
    from periface.mask.render import add_mask

    shipped = Engine("fusion", finder=engine.finder)
    parts, dims = shipped.embedder.parts, [p.dim for p in shipped.embedder.parts]
    other = Engine(FusionEmbedder(parts, [0.2, 0.8], [0.09, 0.035]), finder=engine.finder)
    plain = load_image(fixtures / "obama.jpg")
    for rgb in (plain, add_mask(plain, seed=3, coverage="full").image):
        a, b = shipped.analyze(rgb), other.analyze(rgb)
        np.testing.assert_allclose(reweighted(a.embeddings, shipped.embedder.gains, other.embedder.gains, dims),
                                   b.embeddings, atol=2e-6)
    assert a.mask[0] != "none"  # the masked face took the three-alignment path


def test_fusion_judges_a_masked_probe_by_its_masked_calibration(engine, fixtures, tmp_path, key_env):
    """The fusion has no masked references; a masked probe's plain fused score is judged by thresholds from masked
    impostors (masked probes score higher against strangers than unmasked ones do)."""
    from periface import Consent, Gallery
    from periface.image import load_image
    from periface.mask.render import add_mask

    fusion = Engine("fusion", finder=engine.finder)
    assert fusion.has_masked_path and fusion.masked_params.variants == 0
    assert fusion.masked_calibration.threshold(1e-3) > fusion.calibration.threshold(1e-3)
    masked = add_mask(load_image(fixtures / "obama.jpg"), seed=3, coverage="full").image
    same, other = fusion.verify(masked, fixtures / "obama2.jpg"), fusion.verify(masked, fixtures / "biden.jpg")
    assert same.mode == other.mode == "masked" and same.same and not other.same
    assert same.threshold == fusion.masked_calibration.threshold(1e-3)
    plain = fusion.verify(fixtures / "obama.jpg", fixtures / "obama2.jpg")
    assert plain.mode == "plain" and plain.threshold == fusion.calibration.threshold(1e-3)
    g = Gallery(tmp_path / "g", engine=fusion)
    for name in ("obama", "biden"):
        g.enroll(name, [fixtures / f"{name}.jpg"], consent=Consent(subject=name, purpose="door access"))
    assert g.identity("obama").masked_templates == 0  # no renders to enrol
    top = g.search(masked, k=2, purpose="test")[0]
    assert top.identity == "obama" and top.masked_probe
    assert top.far == pytest.approx(float(fusion.masked_calibration.far(top.score)))


def test_shipped_calibration_is_monotone():
    for name in ("sface", "sface-robust", "dlib", "fusion", "sface-masked"):
        cal = calibration_for(name)
        t = [cal.threshold(f) for f in (1e-2, 1e-3, 1e-4)]
        assert t[0] < t[1] < t[2]
        assert cal.far(cal.threshold(1e-3)) == pytest.approx(1e-3, rel=0.05)
        assert cal.n_impostor > 1_000_000


def test_a_probe_from_several_faces_averages_those_in_the_majority_mask_state():
    from periface.match import mean_probe

    e = np.eye(4, dtype=np.float32)
    vector, masked, used = mean_probe(e[:3] * [[2.0], [1.0], [3.0]], [True, False, True])
    assert masked and used == 2  # the unmasked face is left out of a masked probe
    np.testing.assert_allclose(vector, [np.sqrt(0.5), 0, np.sqrt(0.5), 0], atol=1e-6)  # unit faces, unit mean
    assert mean_probe(e[:2], [False, True])[1] is False  # a tie goes to the first face's state
    single = np.array([0.6, 0.8, 0.0, 0.0], np.float32)
    assert mean_probe(single[None], [True])[0].tolist() == single.tolist()
    with pytest.raises(ValueError):
        mean_probe(np.zeros((0, 4)), [])
