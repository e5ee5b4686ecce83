"""Does the masked path's calibration hold on REAL masks? An impostor-only check on real masked photos.

The real masked crops in mask-crops/with_mask/ (web photos of anonymous people) are compared, as the product
would (crop mode: detect, classify the mask, route to the masked path), with LFW photos (the View-2 reference
images, unmasked, with their masked renders). None of them is in the gallery, so every comparison is an
impostor comparison: the share above the threshold shipped for FAR x should be about x. A calibration that only
holds on rendered masks would show up here as an observed FAR far above nominal. The same is done for the
face_recognition approach at its usual 0.6 distance threshold, and for periface's plain path, for comparison.

It also reports how many real masked crops a detector finds (vs the whole-crop fallback) and how many the mask
classifier routes to the masked path.

    python benchmarks/real_mask_far.py   # needs the gallery caches of benchmarks/lfw_masked.py --backbones sface,sface-robust
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
from periface.image import load_image  # noqa: E402
from periface.masked import fuse, masked_reference_scores  # noqa: E402


def main() -> int:
    root = require_datasets()
    engine = Engine("sface")
    robust = Engine("sface-robust")
    name = "periface-sface"
    k, d = engine.masked_params.variants, engine.embedder.dim
    # Gallery: every LFW image whose masked renders are already cached (the View-2 references of lfw_masked.py).
    refs_cache = EmbeddingCache(name, f"masked-refs-k{k}", pipeline_fingerprint(engine))
    plain_cache = EmbeddingCache(name, "none", pipeline_fingerprint(engine))
    gallery = sorted(p for p in refs_cache.store if plain_cache.get(p) is not None and np.isfinite(plain_cache.get(p)).all())
    if len(gallery) < 1000:
        print(f"only {len(gallery)} gallery images have masked references cached; run benchmarks/lfw_masked.py first")
        return 1
    gx = np.stack([plain_cache.get(p) for p in gallery])
    rx = np.stack([refs_cache.get(p).reshape(k, d) for p in gallery])
    robust_g = embed_paths(gallery, root / "lfw/images", periface_pipeline(robust), EmbeddingCache("periface-sface-robust", "none", pipeline_fingerprint(robust)), d)
    rgx = np.stack([robust_g[p] for p in gallery])
    robust_refs = EmbeddingCache("periface-sface-robust", f"masked-refs-k{robust.masked_params.variants}",
                                 pipeline_fingerprint(robust))
    have_robust_refs = robust.has_masked_path and all(robust_refs.get(p) is not None for p in gallery)
    if robust.has_masked_path and not have_robust_refs:
        print("sface-robust's masked references are not cached for this gallery: run "
              "benchmarks/lfw_masked.py --backbones sface-robust first; its masked path is skipped")
    crops = sorted((root / "mask-crops/with_mask").glob("*"))
    probes, robust_probes, routed, detected = [], [], [], []
    for path in track(crops, description="real masked crops"):
        rgb = load_image(path)
        faces = engine.analyze(rgb, crop=True)
        probes.append(faces.embeddings[0])
        robust_probes.append(robust.describe(rgb, faces.select(0), mask=False).embeddings[0])
        routed.append(faces.mask[0] != "none")
        detected.append(faces.detector[0] != "crop")
    e = np.stack(probes)
    routed_a = np.array(routed)
    plain = e @ gx.T
    masked_refs = masked_reference_scores(e, rx)
    fused = fuse(engine.adapt(e) @ gx.T, masked_refs, engine.masked_params.weight_masked_refs)
    robust_e = np.stack(robust_probes)
    robust_scores = robust_e @ rgx.T
    rows = [("SFace masked path (routed probes)", fused[routed_a], engine.masked_calibration)]
    if have_robust_refs:
        rk = robust.masked_params.variants
        rrx = np.stack([robust_refs.get(p).reshape(rk, d) for p in gallery])
        robust_masked = masked_reference_scores(robust_e, rrx)
        robust_fused = fuse(robust.adapt(robust_e) @ rgx.T, robust_masked, robust.masked_params.weight_masked_refs)
        rows.append(("sface-robust masked path (routed probes, default)", robust_fused[routed_a], robust.masked_calibration))
    doc: dict = {"probes": len(crops), "gallery": len(gallery), "comparisons": int(plain.size),
                 "routed_to_masked_path": float(routed_a.mean()), "found_by_a_detector": float(np.mean(detected)),
                 "observed_far": {}}
    table = Table(title=f"real masked crops vs {len(gallery):,} LFW photos: {plain.size:,} impostor comparisons")
    for col in ("path", "nominal FAR", "threshold", "observed FAR", "observed / nominal"):
        table.add_column(col)
    for label, scores, cal in rows + [("SFace plain", plain, engine.calibration),
                                      ("sface-robust plain", robust_scores, robust.calibration)]:
        for far in (1e-2, 1e-3, 1e-4):
            t = cal.threshold(far)
            obs = float(np.mean(scores >= t))
            doc["observed_far"][f"{label} @ {far:g}"] = {"threshold": t, "observed": obs}
            table.add_row(label, f"{far:g}", f"{t:.3f}", f"{obs:.2e}", f"{obs / far:.2f}")
    # The reference at its documented tolerance (distance 0.6 -> cosine 0.82 for unit vectors).
    ref = FaceRecognitionReference()
    ref_g = embed_paths(gallery, root / "lfw/images", reference_pipeline(ref), EmbeddingCache("face_recognition", "none", ref.fingerprint), 128)
    rg = np.stack([ref_g[p] for p in gallery if np.isfinite(ref_g[p]).all()])
    re, ref_found = [], 0
    for path in track(crops, description="face_recognition on real masked crops"):
        rgb = load_image(path)
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
