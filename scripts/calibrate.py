"""Measure the impostor score distribution on LFW View-1 (pairsDevTrain.txt) and ship thresholds.

Every image named in pairsDevTrain.txt is embedded; every pair of images of *different* people is an impostor
pair (millions of them, so FARs down to 1e-5 and below are measured, not extrapolated). The result goes to
``src/periface/data/calibration/<embedder>.json``. For ``fusion``, the weight of SFace vs dlib is also chosen
here, on View-1 only: the highest mean of TAR at FAR 1e-2 over its 2,200 pairs as they are and over the same pairs
with the second image wearing a rendered mask, embedded as the product embeds a masked probe. (Chosen on the
unmasked pairs alone, the weight went to dlib, which is weak on masked faces.)

    python scripts/calibrate.py --embedder sface-robust   # the default (mirror-averaged, see embed.robust)
    python scripts/calibrate.py --embedder sface
    python scripts/calibrate.py --embedder dlib
    python scripts/calibrate.py --embedder fusion      # needs the two runs above (reads their cached embeddings)
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from rich.progress import track

from periface import Engine
from periface.embed import l2_normalise
from periface.embed.fusion import fusion_gains, reweighted
from periface.evaluation.datasets import require_datasets
from periface.evaluation.lfw import pair_images, read_pairs
from periface.evaluation.masked_eval import routed_masked_probes
from periface.evaluation.metrics import tar_at_far
from periface.evaluation.pipelines import EmbeddingCache, embed_paths, periface_pipeline, pipeline_fingerprint
from periface.masked import PARAMS_FILE
from periface.match import CALIBRATION_DIR, Calibration


def embed_view1(embedder: str) -> tuple[list[str], np.ndarray]:
    root = require_datasets() / "lfw"
    images = pair_images(read_pairs(root / "pairsDevTrain.txt"))
    engine = Engine(embedder)
    # the evaluation pipelines' cache: the same vectors (same detection, embedder and fingerprint), computed once
    cache = EmbeddingCache(f"periface-{embedder}", "none", pipeline_fingerprint(engine))
    vectors = embed_paths(track(images, description=f"embedding View-1 with {embedder}"), root / "images",
                          periface_pipeline(engine), cache, engine.embedder.dim)
    return images, np.stack([vectors[p] for p in images])


def masked_probes_view1(pairs, root) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Per pair, the fusion engine's embedding of the second image wearing a mask (described and aligned as the
    product does it), with the gains it was computed with and the backbones' widths (for ``reweighted``)."""
    engine = Engine("fusion")
    if not (engine.embedder.gains > 0).all():
        raise SystemExit("the shipped fusion weights give a backbone no weight: its part cannot be recovered")
    seconds = sorted({p.b for p in pairs})
    vectors = routed_masked_probes(track(seconds, description="View-1 masked probes, fusion engine"),
                                   root / "images", engine, "periface-fusion")
    fused = np.stack([vectors[p.b][:-1] for p in pairs])
    return fused, engine.embedder.gains, [part.dim for part in engine.embedder.parts]


def calibrate_masked_fusion(images: list[str], x: np.ndarray, pairs, probes: np.ndarray) -> None:
    """The fusion's masked calibration: each View-1 masked probe against every unmasked View-1 image of another
    person. The fusion has no adapter or masked references (``variants`` 0), so a masked probe's score is the plain
    fused cosine, judged by these thresholds instead of the unmasked ones (masked probes score higher against
    strangers)."""
    people = np.array([p.split("/")[0] for p in images])
    ok = np.isfinite(x).all(axis=1)
    seen, impostor = set(), []
    for pair, probe in zip(pairs, probes):
        if pair.b in seen or not np.isfinite(probe).all():
            continue
        seen.add(pair.b)
        impostor.append((x[ok] @ probe)[people[ok] != pair.b.split("/")[0]])
    source = "LFW View-1 pairsDevTrain.txt: each masked second image against every image of another person"
    cal = Calibration.from_scores("fusion-masked", np.concatenate(impostor), source)
    doc = cal.to_json() | {"masked_probes": len(seen), "images": int(ok.sum())}
    (CALIBRATION_DIR / "fusion-masked.json").write_text(json.dumps(doc, indent=1))
    params = json.loads(PARAMS_FILE.read_text())
    params["fusion"] = {"params": {"variants": 0, "weight_masked_refs": 0.0, "adapter": None},
                        "chosen_on": "no adapter or masked references: a masked probe's fused cosine, judged by "
                                     "calibration/fusion-masked.json (scripts/calibrate.py --embedder fusion)"}
    PARAMS_FILE.write_text(json.dumps(params, indent=1) + "\n")
    print(json.dumps({k: doc[k] for k in ("embedder", "n_impostor", "masked_probes", "shipped")}, indent=1))


def impostor_scores(images: list[str], x: np.ndarray) -> np.ndarray:
    people = np.array([p.split("/")[0] for p in images])
    ok = np.isfinite(x).all(axis=1)
    x, people = x[ok], people[ok]
    sims = x @ x.T
    iu = np.triu_indices(len(x), 1)
    different = people[iu[0]] != people[iu[1]]
    return sims[iu][different]


def fused_vectors(gains, xs: np.ndarray, xd: np.ndarray) -> np.ndarray:
    """The fusion's vectors: each backbone's part scaled by its gain, then unit length."""
    return l2_normalise(np.concatenate([gains[0] * xs, gains[1] * xd], axis=1))


def pair_scores(pairs, index: dict[str, int], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.array([float(x[index[p.a]] @ x[index[p.b]]) for p in pairs])
    return s, np.array([p.same for p in pairs])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", choices=["sface-robust", "sface", "dlib", "fusion"], required=True)
    args = ap.parse_args()
    source = "LFW View-1 pairsDevTrain.txt: all different-person pairs among its images"
    if args.embedder == "fusion":
        images, xs = embed_view1("sface")
        _, xd = embed_view1("dlib")
        root = require_datasets() / "lfw"
        pairs = read_pairs(root / "pairsDevTrain.txt")
        index = {p: i for i, p in enumerate(images)}
        std = [float(np.std(impostor_scores(images, x))) for x in (xs, xd)]
        shipped_probes, shipped_gains, dims = masked_probes_view1(pairs, root)
        best, scanned = (-1.0, 0.5), {}
        for w in np.linspace(0.0, 1.0, 21):
            gains = fusion_gains([w, 1 - w], std)
            fused = np.nan_to_num(fused_vectors(gains, xs, xd), nan=0.0)
            s, same = pair_scores(pairs, index, fused)
            tar_plain, _ = tar_at_far(s, same, 1e-2)
            probes = np.nan_to_num(reweighted(shipped_probes, shipped_gains, gains, dims))
            masked = np.einsum("ij,ij->i", fused[[index[p.a] for p in pairs]], probes)
            tar_masked, _ = tar_at_far(masked, same, 1e-2)
            score = (tar_plain + tar_masked) / 2
            scanned[f"{w:.2f}"] = {"unmasked": round(float(tar_plain), 4), "masked_probe": round(float(tar_masked), 4)}
            print(f"w_sface={w:.2f}  View-1 TAR@FAR1e-2: unmasked {tar_plain:.4f}  masked probe {tar_masked:.4f}")
            if score > best[0] + 1e-9:
                best = (score, float(w))
        weights = [round(best[1], 2), round(1 - best[1], 2)]
        (CALIBRATION_DIR.parent / "fusion.json").write_text(json.dumps(
            {"weights": weights, "impostor_std": std,
             "chosen_on": "LFW View-1 pairsDevTrain: mean of TAR at FAR 1e-2 unmasked and with the probe masked",
             "view1_tar_at_far_1e-2_by_w_sface": scanned}, indent=1))
        gains = fusion_gains(weights, std)
        x = fused_vectors(gains, xs, xd)
        calibrate_masked_fusion(images, x, pairs, reweighted(shipped_probes, shipped_gains, gains, dims))
    else:
        images, x = embed_view1(args.embedder)
    missing = int((~np.isfinite(x).all(axis=1)).sum())
    impostor = impostor_scores(images, x)
    cal = Calibration.from_scores(args.embedder, impostor, source)
    CALIBRATION_DIR.mkdir(parents=True, exist_ok=True)
    doc = cal.to_json() | {"images": len(images), "images_without_face": missing}
    (CALIBRATION_DIR / f"{args.embedder}.json").write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: doc[k] for k in ("embedder", "n_impostor", "images", "images_without_face", "shipped")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
