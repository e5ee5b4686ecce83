"""Fit the eye-anchored alignment of masked faces (``periface.align.EyeAnchoredPoints``) and choose its weight.

    python scripts/fit_eye_alignment.py            # ~6 min on 2 cores; writes data/eye_alignment.json

1. The model, on unmasked faces only: for every LFW photo of ``data/robust/train_list.txt`` (people in no LFW pair
   list, the fine-tuning set), the face finder's five points and Face Mesh's eye points, both in the eye frame;
   least squares (ridge, alpha 1e-3) from the eyes' 64 numbers to the five points' 10. No mask is involved, so
   nothing here is fitted to the project's renderer.
2. How to mix the eye-aligned embedding with the detector-aligned one, on LFW View-1 ``pairsDevTest.txt`` (1,000
   pairs, no View-2 image): second image masked by the renderer (seed 0, full coverage, as the benchmarks), the
   shipped embedder, weights 0, 0.25, 0.5, 0.75, 1 on the eye-aligned one; the lowest EER wins (ties: the smaller
   weight) and is recorded in the JSON. It chose 0.5, an equal mean, which is what ``Engine`` uses; BlazeFace's
   keypoints were then added as a third alignment of equal weight (``benchmarks/masked_alignments.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import Ridge

from periface import Engine
from periface.align import EYE_ALIGNMENT_FILE, EyeAnchoredPoints, eye_features, eye_frame, to_eye_frame
from periface.evaluation.datasets import require_datasets, training_lfw_photos
from periface.evaluation.lfw import pair_labels, read_pairs
from periface.evaluation.metrics import eer, tar_at_far
from periface.evaluation.pipelines import EmbeddingCache, central, embed_paths, periface_pipeline, pipeline_fingerprint
from periface.evaluation.verification import make_masker
from periface.image import load_image
from periface.landmarks.facemesh import shared_landmarker
from periface.models import PACKAGE_DATA, record_sha256

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def fit_points_model(engine: Engine, photos: list[Path]) -> tuple[np.ndarray, np.ndarray, int]:
    mesher = shared_landmarker()
    x, y = [], []
    for path in track(photos, description="unmasked faces: eyes -> five points"):
        rgb = load_image(path)
        faces = engine.finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is None or faces.detector[i] != "yunet":  # fit to the detector that aligns nearly every face
            continue
        mesh = mesher.landmarks(rgb, faces.boxes[i])
        if mesh is None:
            continue
        frame = eye_frame(mesh)
        x.append(eye_features(mesh, frame))
        y.append(to_eye_frame(faces.landmarks[i], frame).ravel())
    model = Ridge(alpha=1e-3).fit(np.array(x), np.array(y))
    return model.coef_, model.intercept_, len(x)


def choose_weight(engine: Engine, points: EyeAnchoredPoints, lfw: Path) -> tuple[float, dict]:
    pairs = read_pairs(lfw / "pairsDevTest.txt")
    same, _ = pair_labels(pairs)
    mesher, masker = shared_landmarker(), make_masker(0)
    refs = embed_paths(sorted({p.a for p in pairs}), lfw / "images", periface_pipeline(engine),
                       EmbeddingCache(f"periface-{engine.embedder.name}", "none", pipeline_fingerprint(engine)),
                       engine.embedder.dim)  # NaN: no face
    detector_aligned, eye_aligned = {}, {}
    for b in track(sorted({p.b for p in pairs}), description="View-1 masked probes"):
        rgb = masker(load_image(lfw / "images" / b), b)
        faces = engine.finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is None:
            continue
        box = faces.boxes[i:i + 1]
        detector_aligned[b] = engine.embedder.embed(rgb, box, faces.landmarks[i:i + 1])[0]
        mesh = mesher.landmarks(rgb, box[0])
        eye_aligned[b] = (engine.embedder.embed(rgb, box, points(mesh)[None])[0] if mesh is not None
                          else detector_aligned[b])
    results = {}
    for w in WEIGHTS:
        s = []
        for p in pairs:
            ref, probe = refs[p.a], detector_aligned.get(p.b)
            if not np.isfinite(ref).all() or probe is None:
                s.append(-1.0)
                continue
            v = (1 - w) * probe + w * eye_aligned[p.b]
            s.append(float(ref @ v / np.linalg.norm(v)))
        s = np.array(s)
        results[str(w)] = {"eer": eer(s, same), "tar_at_far_1e-2": tar_at_far(s, same, 1e-2)[0]}
        print(f"weight {w:.2f}: EER {results[str(w)]['eer']:.4f}  TAR@1e-2 {results[str(w)]['tar_at_far_1e-2']:.4f}")
    best = min(WEIGHTS, key=lambda w: (round(results[str(w)]["eer"], 6), w))
    return best, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    datasets = require_datasets()
    photos = training_lfw_photos()
    engine = Engine()
    coef, intercept, n = fit_points_model(engine, photos)
    print(f"fitted on {n} unmasked faces of {len(photos)} photos")
    provisional = EyeAnchoredPoints(coef, intercept, "")
    weight, view1 = choose_weight(engine, provisional, datasets / "lfw")
    out = PACKAGE_DATA / EYE_ALIGNMENT_FILE
    out.write_text(json.dumps({
        "what": "Face Mesh eye points (eye frame, 64) -> the face finder's five points (eye frame, 10); "
                "weight of the eye-aligned embedding of a masked face. scripts/fit_eye_alignment.py",
        "eye_points": "periface.align.EYE_MESH_POINTS", "fitted_on": f"{n} unmasked LFW faces of train_list.txt",
        "weight": weight, "view1_dev_test": view1,
        "coef": coef.round(6).tolist(), "intercept": intercept.round(6).tolist(),
    }, indent=1))
    print(f"weight {weight} (lowest View-1 EER); wrote {out}, SHA-256 {record_sha256(out)[:12]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
