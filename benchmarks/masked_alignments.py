"""How a masked face is aligned: which mean of alignments the product uses, measured on development data only.

A masked face is embedded aligned on the detector's five points and, where found, on five points placed from Face
Mesh's eyes (``align.EyeAnchoredPoints``) and on BlazeFace's keypoints (``Engine.masked_alignments``); the product
averages the embeddings of all three. This script scores every mean of those sources on data that no View-2 number
uses, so that the choice is not made on the test:

* LFW View-1 ``pairsDevTest.txt`` (1,000 pairs): second image masked by the renderer (seed 0, full coverage, as the
  benchmarks), each masked probe against its unmasked reference (detector alignment), 10-fold accuracy, TAR, EER;
  face_recognition on the same pairs in the same run.
* the 1,000 development identification probes of ``benchmarks/gallery_hubness.py`` (mated, not among the 2,000 test
  probes of ``periface eval lfw-identify --max-probes 2000``), masked, routed as in use (masked path with the
  gallery's masked references), rank-1/5/10 on the same 5,569-photo gallery.

    periface eval lfw-identify --mask probe --pipelines periface-sface-robust --max-probes 2000   # fills the gallery caches
    OMP_NUM_THREADS=1 python benchmarks/masked_alignments.py                                       # ~10 min on 2 cores
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

from periface import Engine  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.identification import lfw_identification_sets, metrics_from_similarities  # noqa: E402
from periface.evaluation.lfw import pair_labels, read_pairs  # noqa: E402
from periface.evaluation.masked_eval import embed_reference_variants, method_similarities  # noqa: E402
from periface.evaluation.metrics import verification_summary  # noqa: E402
from periface.evaluation.pipelines import (EmbeddingCache, central, embed_paths, periface_pipeline,  # noqa: E402
                                          pipeline_fingerprint, reference_pipeline)
from periface.evaluation.reference import FaceRecognitionReference  # noqa: E402
from periface.evaluation.verification import make_masker, pair_scores  # noqa: E402
from periface.image import load_image  # noqa: E402

NAME, SEED = "periface-sface-robust", 0
MEANS = {"detector": (), "detector + eyes": ("eyes",), "detector + blazeface": ("blazeface",),
         "detector + eyes + blazeface (shipped)": ("eyes", "blazeface")}


def alignment_embeddings(engine: Engine, images: Path, paths: list[str]) -> dict[str, dict | None]:
    """Per masked image: whether it is routed, and the embedding of its central face under each alignment."""
    masker = make_masker(SEED, {})
    out: dict[str, dict | None] = {}
    for path in track(paths, description="masked probes, each alignment"):
        rgb = masker(load_image(images / path), path)
        faces = engine.finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is None:
            out[path] = None
            continue
        face = engine.describe(rgb, faces.select(i), embed=False, visibility=False)
        views = {"detector": face.landmarks[0]} | engine.masked_alignments(rgb, face.boxes[0])
        vectors = engine.embedder.embed(rgb, np.repeat(face.boxes, len(views), axis=0), np.stack(list(views.values())))
        out[path] = {"routed": face.mask[0] != "none", "views": dict(zip(views, vectors))}
    return out


def mean_of(entry: dict, sources: tuple[str, ...]) -> np.ndarray:
    """The product's vector for this mean: routed faces average the sources found, the others keep the detector's."""
    views = entry["views"]
    picked = [views["detector"]] + ([views[s] for s in sources if s in views] if entry["routed"] else [])
    v = np.sum(picked, axis=0)
    return v / np.linalg.norm(v)


def main() -> int:
    datasets = require_datasets()
    images = datasets / "lfw" / "images"
    engine = Engine("sface-robust")
    d = engine.embedder.dim
    doc: dict = {"view1_dev_test": {}, "dev_identification": {}}

    # 1. View-1 DevTest verification
    pairs = read_pairs(datasets / "lfw" / "pairsDevTest.txt")
    same, _ = pair_labels(pairs)
    folds = np.arange(len(pairs)) % 10
    refs = embed_paths(sorted({p.a for p in pairs}), images, periface_pipeline(engine),
                       EmbeddingCache(NAME, "none", pipeline_fingerprint(engine)), d)
    probes = alignment_embeddings(engine, images, sorted({p.b for p in pairs}))
    for label, sources in MEANS.items():
        second = {b: (mean_of(e, sources) if e else np.full(d, np.nan, np.float32)) for b, e in probes.items()}
        doc["view1_dev_test"][label] = verification_summary(pair_scores(pairs, refs, second), same, folds)
    ref = FaceRecognitionReference()
    run = reference_pipeline(ref)
    fr_a = embed_paths(sorted({p.a for p in pairs}), images, run, EmbeddingCache("face_recognition", "none", ref.fingerprint), ref.dim)
    fr_b = embed_paths(sorted({p.b for p in pairs}), images, run, EmbeddingCache("face_recognition", f"masked-s{SEED}", ref.fingerprint),
                       ref.dim, make_masker(SEED, {}))
    doc["view1_dev_test"]["face_recognition"] = verification_summary(pair_scores(pairs, fr_a, fr_b), same, folds)

    # 2. dev identification probes, routed as in use
    sets = lfw_identification_sets(images, 2000, SEED)
    rest = sorted(set(lfw_identification_sets(images, None, SEED)["mated"]) - set(sets["mated"]))
    dev = sorted(np.random.default_rng(SEED + 1).choice(rest, size=1000, replace=False).tolist())
    g = embed_paths(sets["gallery"], images, periface_pipeline(engine), EmbeddingCache(NAME, "none", pipeline_fingerprint(engine)), d)
    masked_refs = embed_reference_variants(sets["gallery"], images, engine, NAME)
    keep = [p for p in sets["gallery"] if np.isfinite(g[p]).all()]
    gx, rx = np.stack([g[p] for p in keep]), np.stack([masked_refs[p] for p in keep])
    g_ids = np.array([p.split("/")[0] for p in keep])
    dev_probes = alignment_embeddings(engine, images, dev)
    found = [p for p in dev if dev_probes[p]]
    truth = np.array([p.split("/")[0] for p in found])
    for label, sources in MEANS.items():
        q = np.stack([np.append(mean_of(dev_probes[p], sources), float(dev_probes[p]["routed"])) for p in found])
        s = method_similarities(engine, q, gx, rx)["routed"]
        r = metrics_from_similarities(s, np.zeros((0, len(gx))), g_ids, truth)
        doc["dev_identification"][label] = {m: r[m] for m in ("rank1", "rank5", "rank10")}
    doc["dev_identification_probes"], doc["dev_probes_without_face"] = len(dev), len(dev) - len(found)

    path = write_result("masked_alignments", doc)
    table = Table(title="Masked-face alignments on development data (View-1 DevTest; dev identification probes)")
    for col in ("mean of", "View-1 acc", "TAR@1e-2", "TAR@1e-3", "EER", "dev rank-1", "dev rank-10"):
        table.add_column(col)
    for label, v in doc["view1_dev_test"].items():
        r = doc["dev_identification"].get(label, {})
        table.add_row(label, f"{v['accuracy']:.2%}", f"{v['tar_at_far_1e-2']:.2%}", f"{v['tar_at_far_1e-3']:.2%}",
                      f"{v['eer']:.2%}", f"{r['rank1']:.2%}" if r else "-", f"{r['rank10']:.2%}" if r else "-")
    Console().print(table)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
