"""The masked path end to end on committed fixtures: a rendered mask on one photo, the other photo unmasked."""

import numpy as np
import pytest

from periface import Consent, Gallery
from periface.demo import SAMPLES
from periface.mask.render import add_mask


@pytest.fixture(scope="module")
def engine():
    """SFace: the backbone that ships a masked path (adapter, masked references, masked calibration)."""
    from periface import Engine

    return Engine("sface")


@pytest.fixture(scope="module")
def masked_obama(engine):
    result = add_mask(engine.load(SAMPLES / "probe_obama.jpg"), seed=11, style="surgical", coverage="full")
    assert result is not None
    return result.image


def test_masked_probe_is_routed_and_verified(engine, masked_obama, fixtures):
    if not engine.has_masked_path:
        pytest.skip("no masked path shipped for this embedder")
    face = engine.face(masked_obama)
    assert face.mask[0] != "none"
    same = engine.verify(masked_obama, fixtures / "obama.jpg")
    other = engine.verify(masked_obama, fixtures / "biden.jpg")
    assert same.mode == other.mode == "masked"
    assert same.same and not other.same
    assert same.threshold == pytest.approx(engine.masked_calibration.threshold(1e-3))
    plain = engine.verify(fixtures / "obama.jpg", fixtures / "obama2.jpg")
    assert plain.mode == "plain"


def test_adapter_moves_masked_embedding_toward_unmasked(engine, masked_obama):
    if engine.masked_params.adapter is None:
        pytest.skip("no adapter shipped")
    clean = engine.embed(SAMPLES / "probe_obama.jpg")
    masked = engine.embed(masked_obama)
    assert float(engine.adapt(masked)[0] @ clean) > float(masked @ clean)
    np.testing.assert_allclose(np.linalg.norm(engine.adapt(masked)), 1.0, atol=1e-5)


def test_gallery_search_with_masked_probe(tmp_path, engine, masked_obama, key_env):
    if not engine.has_masked_path:
        pytest.skip("no masked path shipped for this embedder")
    g = Gallery(tmp_path / "g", engine=engine)
    for p in ("alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"):
        g.enroll(p, [SAMPLES / f"enrol_{p}.jpg"], consent=Consent(subject=p, purpose="door access"))
    assert g.identity("obama").masked_templates == engine.masked_params.variants
    cands = g.search(masked_obama, k=5, purpose="test")
    assert cands[0].identity == "obama" and cands[0].masked_probe
    assert cands[0].far < cands[1].far
    g.remove("obama")
    assert "obama" not in [c.identity for c in g.search(masked_obama, k=5, purpose="test")]


def test_mask_lands_on_the_face_in_a_non_square_photo(engine):
    # Face Mesh misplaces points on non-square frames unless the image is squared first (regression).
    rgb = engine.load(SAMPLES / "probe_obama.jpg")
    assert rgb.shape[0] != rgb.shape[1]
    result = add_mask(rgb, seed=11, style="surgical", coverage="full")
    ys, xs = np.nonzero(result.mask_alpha > 0.5)
    x0, y0, x1, y1 = engine.analyze(rgb, embed=False).boxes[0]
    assert x0 < xs.mean() < x1 and (y0 + y1) / 2 < ys.mean() < y1 + 0.3 * (y1 - y0)


def test_identification_scores_route_masked_probes_and_fall_back_to_plain():
    """The evaluation's per-method scores: routed = fused for probes classified masked, plain otherwise; a gallery
    photo without renders is scored plainly; a probe without a face scores NaN everywhere."""
    from types import SimpleNamespace

    from periface.evaluation.masked_eval import method_similarities
    from periface.masked import MaskedPathParams

    stub = SimpleNamespace(adapt=lambda e: np.atleast_2d(e), masked_params=MaskedPathParams(2, 0.5, None))
    gx = np.eye(3, dtype=np.float32)[:2]  # two gallery photos, plain templates e0 and e1
    rx = np.full((2, 2, 3), np.nan, np.float32)
    rx[0] = [[0, 0, 1], [0.6, 0, 0.8]]  # photo 0 has two masked renders; photo 1 none
    probes = np.array([[0, 0, 1, 1], [0, 0, 1, 0], [np.nan] * 4], np.float32)  # masked, unmasked, no face
    s = method_similarities(stub, probes, gx, rx)
    np.testing.assert_allclose(s["plain"][:2], [[0, 0], [0, 0]])
    np.testing.assert_allclose(s["masked_refs"][0], [1.0, 0.0])  # best render of photo 0; photo 1 plainly
    np.testing.assert_allclose(s["fused"][0], [0.5, 0.0])  # 0.5 * 1.0 + 0.5 * 0.0; no renders: adapted alone
    np.testing.assert_allclose(s["routed"][:2], [[0.5, 0.0], [0.0, 0.0]])
    assert all(np.isnan(v[2]).all() for v in s.values())
