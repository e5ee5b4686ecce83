"""Adaptive score normalisation (AS-norm) of masked-probe scores: a measured lead, not yet in the product.

Reads the embeddings that ``python benchmarks/lfw_verify.py --mask probe`` cached for sface-robust. Each score
s(a, b) becomes 0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b), where mu/sd are the mean and spread of the top-k
similarities of a (and of b) to a cohort of unmasked faces of people who appear in no View-2 pair. Reports View-2
10-fold accuracy and TAR for the raw and the normalised scores; the face_recognition approach's cached masked-probe
accuracy is the reference ratio.

    python benchmarks/lfw_verify.py --mask probe && python benchmarks/as_norm.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write_result  # noqa: E402

from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.lfw import pair_labels, read_pairs  # noqa: E402
from periface.evaluation.metrics import kfold_accuracy, tar_at_far  # noqa: E402
from periface import Engine  # noqa: E402
from periface.evaluation.pipelines import EmbeddingCache, pipeline_fingerprint  # noqa: E402


def vectors(variant: str, fingerprint: str) -> dict[str, np.ndarray]:
    store = EmbeddingCache("periface-sface-robust", variant, fingerprint).store
    return {k: v for k, v in store.items() if np.isfinite(v).all()}


def main() -> int:
    pairs = read_pairs(require_datasets() / "lfw" / "pairs.txt")
    same, folds = pair_labels(pairs)
    view2_people = {x.split("/")[0] for p in pairs for x in (p.a, p.b)}
    fingerprint = pipeline_fingerprint(Engine("sface-robust"))
    plain, masked = vectors("none", fingerprint), vectors("masked-s0", fingerprint)
    if not masked:
        sys.exit("no cached masked-probe embeddings: run python benchmarks/lfw_verify.py --mask probe first")
    a = np.stack([plain[p.a] for p in pairs])
    b = np.stack([masked.get(p.b, np.zeros(a.shape[1], np.float32)) for p in pairs])  # no face: score 0
    raw = (a * b).sum(1)
    cohort = np.stack([v for k, v in sorted(plain.items()) if k.split("/")[0] not in view2_people])
    doc: dict = {"cohort_faces": len(cohort), "cohort": "unmasked LFW photos of people in no View-2 pair", "scores": {}}

    def summary(s: np.ndarray) -> dict:
        acc, std = kfold_accuracy(s, same, folds)
        return {"accuracy": acc, "accuracy_std": std, "tar_at_far_1e-3": tar_at_far(s, same, 1e-3)[0],
                "tar_at_far_1e-2": tar_at_far(s, same, 1e-2)[0]}

    doc["scores"]["raw"] = summary(raw)
    sa, sb = a @ cohort.T, b @ cohort.T
    for k in (50, 100, 300):
        ta, tb = np.sort(sa, 1)[:, -k:], np.sort(sb, 1)[:, -k:]
        with np.errstate(invalid="ignore", divide="ignore"):
            z = 0.5 * ((raw - ta.mean(1)) / ta.std(1) + (raw - tb.mean(1)) / tb.std(1))
        doc["scores"][f"as-norm top-{k}"] = summary(np.nan_to_num(z, nan=-9.0))
    reference = RESULTS / "lfw_verify_mask-probe.json"
    fr = json.loads(reference.read_text())["pipelines"].get("face_recognition", {}).get("accuracy") if reference.exists() else None
    for name, row in doc["scores"].items():
        if fr:
            row["accuracy_ratio_vs_face_recognition"] = row["accuracy"] / fr
        print(f"{name:18s} accuracy {row['accuracy']:.4f} ± {row['accuracy_std']:.4f}  TAR@1e-3 {row['tar_at_far_1e-3']:.4f}"
              f"  TAR@1e-2 {row['tar_at_far_1e-2']:.4f}")
    write_result("as_norm", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
