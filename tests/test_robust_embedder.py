"""The mask-robust SFace shipped in src/periface/data/robust/: verified before loading, no torch, sane scores.

Committed fixtures only (tests/fixtures: obama, obama2, biden from face_recognition, MIT).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from periface.align import align_faces
from periface.detect import FaceFinder
from periface.embed.robust import HEAD_FILE, ROBUST_DIR, RobustSFaceEmbedder, shipped_sha256
from periface.errors import ModelError
from periface.image import load_image
from periface.match import CALIBRATION_DIR

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def finder() -> FaceFinder:
    return FaceFinder.default()


@pytest.fixture(scope="module")
def embedder() -> RobustSFaceEmbedder:
    return RobustSFaceEmbedder(threads=1)


def crop(finder: FaceFinder, rgb: np.ndarray) -> np.ndarray:
    faces = finder.find(rgb)
    assert len(faces)
    return align_faces(rgb, faces.landmarks[faces.largest()][None], 112)[0]


@pytest.fixture(scope="module")
def crops(finder) -> dict[str, np.ndarray]:
    return {n: crop(finder, load_image(FIXTURES / f"{n}.jpg")) for n in ("obama", "obama2", "biden")}


def test_shipped_file_is_small_and_listed():
    path = ROBUST_DIR / HEAD_FILE
    assert path.stat().st_size <= 25 * 2**20
    assert len(shipped_sha256(HEAD_FILE)) == 64


def test_altered_file_is_refused(tmp_path):
    bad = tmp_path / HEAD_FILE
    shutil.copy(ROBUST_DIR / HEAD_FILE, bad)
    with bad.open("r+b") as f:
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="SHA-256"):
        RobustSFaceEmbedder(head_path=bad).embed_aligned(np.zeros((1, 112, 112, 3), np.uint8))


def test_unit_vectors_batched_and_same_person_closer(embedder, crops):
    x = embedder.embed_aligned(np.stack([crops["obama"], crops["obama2"], crops["biden"]]))
    assert x.shape == (3, 128) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    one_by_one = np.concatenate([embedder.embed_aligned(c[None]) for c in (crops["obama"], crops["obama2"])])
    np.testing.assert_allclose(one_by_one, x[:2], atol=1e-5)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.2
    assert x[1] @ x[2] < 0.5


def test_embedder_protocol(embedder, finder):
    from periface.embed.base import Embedder

    assert isinstance(embedder, Embedder)
    rgb = load_image(FIXTURES / "obama.jpg")
    faces = finder.find(rgb)
    x = embedder.embed(rgb, faces.boxes, faces.landmarks)
    assert x.shape == (len(faces), embedder.dim)


def test_masked_obama2_still_matches_obama(embedder, finder, crops):
    pytest.importorskip("mediapipe")
    from periface.mask.render import add_mask

    threshold = json.loads((CALIBRATION_DIR / "sface-robust.json").read_text())["shipped"]["1e-03"]
    masked = add_mask(load_image(FIXTURES / "obama2.jpg"), seed=5, style="surgical", coverage="full")
    assert masked is not None
    x = embedder.embed_aligned(np.stack([crops["obama"], crop(finder, masked.image), crops["biden"]]))
    assert x[0] @ x[1] >= threshold
    assert x[2] @ x[1] < threshold


def test_inference_needs_no_torch():
    code = ("import sys, numpy as np; from periface.embed.robust import RobustSFaceEmbedder;"
            "RobustSFaceEmbedder(threads=1).embed_aligned(np.zeros((2, 112, 112, 3), np.uint8));"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_dequantised_trunk_computes_what_the_zoo_graph_computes(crops):
    """The weights folded to float at load time must not change the numbers the calibration was measured with."""
    import onnx
    import onnxruntime as ort
    from onnx.utils import Extractor

    from periface.embed.robust import free_batch, sface_trunk
    from periface.models import model_path

    folded = sface_trunk("conv_13_relu")
    assert not any(n.op_type == "DequantizeLinear" for n in folded.graph.node)
    original = onnx.load(str(model_path("sface")))
    inits = {t.name for t in original.graph.initializer}
    keep = [i for i in original.graph.input if i.name not in inits]
    del original.graph.input[:]
    original.graph.input.extend(keep)
    original = Extractor(free_batch(original)).extract_model(["data"], ["conv_13_relu"])
    x = np.stack(list(crops.values())).astype(np.float32).transpose(0, 3, 1, 2)
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"data": x})[0]
           for m in (original, folded)]
    a, b = (r.reshape(len(x), -1) for r in run)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99999


def test_mirror_averaging_makes_a_face_and_its_mirror_image_one_template(crops):
    flipped = RobustSFaceEmbedder(threads=1)
    single = RobustSFaceEmbedder(threads=1, flip=False)
    x = crops["obama"][None]
    mirrored = np.ascontiguousarray(x[:, :, ::-1])
    assert float(flipped.embed_aligned(x)[0] @ flipped.embed_aligned(mirrored)[0]) > 0.9999
    assert float(single.embed_aligned(x)[0] @ single.embed_aligned(mirrored)[0]) < 0.999
    assert float(flipped.embed_aligned(x)[0] @ single.embed_aligned(x)[0]) > 0.95
