"""Does the masked path's calibration hold on REAL masks? An impostor-only check on real masked photos.

The real masked crops in mask-crops/with_mask/ (web photos of anonymous people) are compared, as the product
would (crop mode: detect, classify the mask, route to the masked path), with LFW photos (the View-2 reference
images, unmasked, with their masked renders). None of them is in the gallery, so every comparison is an
impostor comparison: the share above the threshold shipped for FAR x should be about x. A calibration that only
holds on rendered masks would show up here as an observed FAR far above nominal. The same is done for the
face_recognition approach at its usual 0.6 distance threshold, and for periface's plain path, for comparison.

It also reports how many real masked crops a detector finds (vs the whole-crop fallback) and how many the mask
classifier routes to the masked path.

    python benchmarks/real_mask_far.py   # needs the gallery caches of benchmarks/lfw_masked.py --backbones sface-robust
                                         # (and --backbones sface for SFace's masked-path row)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402

from periface import Engine  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.pipelines import (EmbeddingCache, embed_paths, periface_pipeline,  # noqa: E402
                                          pipeline_fingerprint, reference_pipeline)
from periface.evaluation.reference import FaceRecognitionReference  # noqa: E402
from periface.evaluation.report import write_json  # noqa: E402
from periface.faces import Faces  # noqa: E402
from periface.image import load_image  # noqa: E402
from periface.masked import fuse, masked_reference_scores  # noqa: E402


BACKBONES = ("sface-robust", "sface")  # the default first: its cached masked references define the gallery


def backbone_rows(engine: Engine, gallery: list[str], probes: list[tuple[np.ndarray, Faces]], routed: np.ndarray,
                  root: Path) -> list[tuple[str, np.ndarray, object]]:
    """(label, impostor scores, calibration) of the plain path and, when the gallery's masked references are cached,
    of the masked path with the probes the mask classifier routes there."""
    name, label = f"periface-{engine.embedder.name}", engine.embedder.name
    k, d = engine.masked_params.variants, engine.embedder.dim
    fingerprint = pipeline_fingerprint(engine)
    plain_cache = EmbeddingCache(name, "none", fingerprint)
    plain_g = embed_paths(gallery, root / "lfw/images", periface_pipeline(engine), plain_cache, d)
    gallery = [p for p in gallery if np.isfinite(plain_g[p]).all()]
    gx = np.stack([plain_g[p] for p in gallery])
    # plain: the detector's alignment only; routed: as in use (a masked face is aligned three ways, Engine.describe)
    e = np.stack([engine.describe(rgb, faces, mask=False).embeddings[0]
                  for rgb, faces in track(probes, description=f"{label}: real masked crops, plain")])
    rows = [(f"{label} plain", e @ gx.T, engine.calibration)]
    refs = EmbeddingCache(name, f"masked-refs-k{k}", fingerprint)
    if engine.has_masked_path and all(refs.get(p) is not None for p in gallery):
        rx = np.stack([refs.get(p).reshape(k, d) for p in gallery])
        e = np.stack([engine.describe(rgb, faces, visibility=False).embeddings[0]
                      for rgb, faces in track(probes, description=f"{label}: real masked crops, as routed")])
        fused = fuse(engine.adapt(e) @ gx.T, masked_reference_scores(e, rx), engine.masked_params.weight_masked_refs)
        rows.insert(0, (f"{label} masked path (routed probes)", fused[routed], engine.masked_calibration))
    elif engine.has_masked_path:
        print(f"{label}: the gallery's masked references are not cached: run benchmarks/lfw_masked.py --backbones "
              f"{engine.embedder.name} first; its masked path is skipped")
    return rows


def main() -> int:
    root = require_datasets()
    default = Engine(BACKBONES[0])
    # Gallery: every LFW image whose masked renders are cached (the View-2 references of lfw_masked.py).
    gallery = sorted(EmbeddingCache(f"periface-{BACKBONES[0]}", f"masked-refs-k{default.masked_params.variants}",
                                    pipeline_fingerprint(default)).store)
    if len(gallery) < 1000:
        print(f"only {len(gallery)} gallery images have masked references cached; run "
              f"benchmarks/lfw_masked.py --backbones {BACKBONES[0]} first")
        return 1
    crops = sorted((root / "mask-crops/with_mask").glob("*"))
    probes = []  # (image, its face found and classified once), shared by every backbone
    for path in track(crops, description="routing and detection of the real masked crops"):
        rgb = load_image(path)
        probes.append((rgb, default.analyze(rgb, crop=True, embed=False)))
    routed = np.array([faces.mask[0] != "none" for _, faces in probes])
    detected = np.array([faces.detector[0] != "crop" for _, faces in probes])
    rows = []
    for backbone in BACKBONES:
        engine = default if backbone == BACKBONES[0] else Engine(backbone)
        rows += backbone_rows(engine, gallery, probes, routed, root)
    doc: dict = {"probes": len(crops), "gallery": len(gallery), "comparisons": int(rows[-1][1].size),
                 "routed_to_masked_path": float(np.mean(routed)), "found_by_a_detector": float(np.mean(detected)),
                 "observed_far": {}}
    table = Table("path", "nominal FAR", "threshold", "observed FAR", "observed / nominal",
                  title=f"real masked crops vs {len(gallery):,} LFW photos: {rows[-1][1].size:,} impostor comparisons")
    for label, scores, cal in rows:
        for far in (1e-2, 1e-3, 1e-4):
            t = cal.threshold(far)
            obs = float(np.mean(scores >= t))
            doc["observed_far"][f"{label} @ {far:g}"] = {"threshold": t, "observed": obs}
            table.add_row(label, f"{far:g}", f"{t:.3f}", f"{obs:.2e}", f"{obs / far:.2f}")
    # The reference at its documented tolerance (distance 0.6 -> cosine 0.82 for unit vectors).
    ref = FaceRecognitionReference()
    ref_cache = EmbeddingCache("face_recognition", "none", ref.fingerprint)
    ref_g = embed_paths(gallery, root / "lfw/images", reference_pipeline(ref), ref_cache, 128)
    rg = np.stack([ref_g[p] for p in gallery if np.isfinite(ref_g[p]).all()])
    re, ref_found = [], 0
    for rgb, _ in track(probes, description="face_recognition on real masked crops"):
        boxes = ref.boxes(rgb)
        if len(boxes):
            ref_found += 1
            re.append(ref.embed_boxes(rgb, boxes[:1])[0])
    doc["face_recognition"] = {"found": ref_found / len(crops)}
    if re:
        obs = float(np.mean(np.stack(re) @ rg.T >= 1 - 0.6**2 / 2))
        doc["face_recognition"]["observed_far_at_tolerance_0.6"] = obs
        table.add_row("face_recognition (tolerance 0.6)", "-", "0.820", f"{obs:.2e}", "-")
    write_json(RESULTS / "real_mask_far.json", doc)
    Console().print(table)
    print(f"routed to the masked path: {doc['routed_to_masked_path']:.1%}; found by a detector: "
          f"{doc['found_by_a_detector']:.1%}; face_recognition found a face in {doc['face_recognition']['found']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
