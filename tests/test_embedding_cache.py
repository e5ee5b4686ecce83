"""Benchmark embedding caches are keyed by the models behind them, so a retrained head never reads stale vectors."""

import numpy as np
import pytest

from periface.embed import EMBEDDERS, RobustSFaceEmbedder, create_embedder
from periface.evaluation.pipelines import EmbeddingCache, embed_paths, pipeline_fingerprint


def test_each_backbone_and_option_has_its_own_fingerprint():
    prints = {name: create_embedder(name).fingerprint for name in EMBEDDERS}
    assert len(set(prints.values())) == len(EMBEDDERS)
    assert RobustSFaceEmbedder(flip=False).fingerprint != prints["sface-robust"]
    assert RobustSFaceEmbedder(sha256="0" * 64).fingerprint != prints["sface-robust"]


def test_routed_probes_also_depend_on_the_mask_classifier():
    pytest.importorskip("onnxruntime")
    from periface import Engine

    engine = Engine("sface")
    plain, routed = pipeline_fingerprint(engine), pipeline_fingerprint(engine, routed=True)
    assert routed.startswith(plain) and engine.mask_classifier.fingerprint in routed
    assert pipeline_fingerprint(Engine("dlib")) != plain


def test_the_face_finder_is_part_of_the_fingerprint():
    """Faces found differently are embedded differently: another threshold, detector order or look is another key."""
    from periface.detect import BlazeFaceDetector, FaceFinder, YuNetDetector

    def finder(yunet_score=0.3, second_look=True, order=1):
        dets = [YuNetDetector(yunet_score), BlazeFaceDetector("short")][::order]
        return FaceFinder(dets, second_look=second_look).fingerprint

    base = finder()
    assert len({base, finder(yunet_score=0.4), finder(second_look=False), finder(order=-1)}) == 4
    assert base == finder()


def _counting_pipeline(calls: list[str]):
    def run(rgb: np.ndarray) -> np.ndarray | None:
        calls.append("x")
        return None if rgb.mean() > 200 else np.full(4, rgb.mean() / 255, np.float32)

    return run


def test_a_new_fingerprint_recomputes_and_the_old_vectors_stay_for_a_rollback(tmp_path, fixtures):
    paths = ["obama.jpg", "biden.jpg"]
    calls: list[str] = []
    first = embed_paths(paths, fixtures, _counting_pipeline(calls), EmbeddingCache("p", "none", "model-a", tmp_path), 4)
    assert len(calls) == 2

    again = embed_paths(paths, fixtures, _counting_pipeline(calls), EmbeddingCache("p", "none", "model-a", tmp_path), 4)
    assert len(calls) == 2, "same models: read from the cache"
    for p in paths:
        np.testing.assert_array_equal(first[p], again[p])

    embed_paths(paths, fixtures, _counting_pipeline(calls), EmbeddingCache("p", "none", "model-b", tmp_path), 4)
    assert len(calls) == 4, "another model: nothing is read from model-a's vectors"
    assert len(list(tmp_path.glob("p@*--none.npz"))) == 2
    assert EmbeddingCache("p", "none", "model-a", tmp_path).get("obama.jpg") is not None


def test_caches_of_rendered_masks_are_keyed_by_the_renderer_code(tmp_path, monkeypatch):
    import periface.evaluation.pipelines as pipelines

    plain, masked = EmbeddingCache("p", "none", "m", tmp_path), EmbeddingCache("p", "masked-s0", "m", tmp_path)
    monkeypatch.setattr(pipelines, "renderer_fingerprint", lambda: "a changed renderer")
    assert EmbeddingCache("p", "none", "m", tmp_path).path == plain.path  # no mask drawn: unaffected
    assert EmbeddingCache("p", "masked-s0", "m", tmp_path).path != masked.path

