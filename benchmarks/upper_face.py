"""What the mask leaves visible: the robust head run on the upper rows of the trunk's feature map only (a lead).

The sface-robust head is run (single pass, no mirror) on cached conv_13 outputs (1024 x 7 x 7) of View-2 faces with
the lower rows zeroed, on both the unmasked reference and the masked probe, so that both embeddings describe the
eyes and forehead only; its score alone and fused with the full-face score. Reads the caches of
``scripts/finetune_masked.py eval-render --set view2``; the "full face" row must reproduce the single-pass
masked-probe numbers of docs/robust_backbone.md. Weights are swept on View-2 itself: a lead, not a method.

    python benchmarks/upper_face.py
    python scripts/finetune_masked.py train --tag up5 --epochs 6 --lr 5e-5 --plain-weight 4 --upper-rows 5 \
        && python scripts/finetune_masked.py export --tag up5 && python benchmarks/upper_face.py --heads up5:5

``--heads TAG:ROWS`` also scores heads distilled on upper-row features (``finetune_masked.py train --upper-rows``),
alone and fused with the shipped full-face head.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _common import RESULTS, write_result  # noqa: E402
from finetune_masked import CACHE, DATA, HeadOnFeatures, _by_key, _eval_set  # noqa: E402

from periface.embed.robust import HEAD_FILE  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.lfw import read_pairs  # noqa: E402
from periface.evaluation.metrics import kfold_accuracy, tar_at_far  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", nargs="*", default=[], help="TAG:ROWS of heads trained with --upper-rows ROWS")
    args = ap.parse_args()
    v2 = _eval_set("view2")
    if v2 is None:
        sys.exit("run scripts/finetune_masked.py eval-render --set view2 first")
    head = HeadOnFeatures(DATA / HEAD_FILE)
    pairs = read_pairs(require_datasets() / "lfw" / "pairs.txt")
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])

    def scores(x: np.ndarray) -> np.ndarray:
        plain, probe = _by_key(v2, x)
        return np.nan_to_num(np.array([float(plain[p.a] @ probe[p.b]) for p in pairs]), nan=-1.0)

    reference = RESULTS / "lfw_verify_mask-probe.json"
    fr = json.loads(reference.read_text())["pipelines"].get("face_recognition", {}).get("accuracy") if reference.exists() else None
    doc: dict = {"protocol": "LFW View-2, second image masked (seed 0), 10-fold; head single pass", "rows": {}}

    def row(name: str, s: np.ndarray) -> None:
        acc, std = kfold_accuracy(s, same, folds)
        doc["rows"][name] = r = {"accuracy": acc, "accuracy_std": std, "tar_at_far_1e-3": tar_at_far(s, same, 1e-3)[0]}
        if fr:
            r["accuracy_ratio_vs_face_recognition"] = acc / fr
        print(f"{name:36s} accuracy {acc:.4f} ± {std:.4f}  TAR@1e-3 {r['tar_at_far_1e-3']:.4f}", flush=True)

    full = scores(head(v2))
    row("full face", full)
    for rows in (4, 5):
        feats = v2["feats"].copy()
        feats[:, :, rows:, :] = 0
        upper = scores(head({**v2, "feats": feats}))
        row(f"upper {rows} of 7 rows", upper)
        for w in (0.2, 0.35, 0.5):
            row(f"  fused with full face, weight {w}", (1 - w) * full + w * upper)
    for spec in args.heads:
        tag, rows = spec.split(":")
        feats = v2["feats"].copy()
        feats[:, :, int(rows):, :] = 0
        upper = scores(HeadOnFeatures(CACHE / f"head_{tag}.onnx")({**v2, "feats": feats}))
        row(f"head {tag}, trained on upper {rows} rows", upper)
        for w in (0.2, 0.35, 0.5):
            row(f"  fused with full face, weight {w}", (1 - w) * full + w * upper)
    write_result("upper_face", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
