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
alone and fused with the shipped full-face head. The feature-map rows need a head cut at conv_13 (``v5``); the
shipped ``v8`` starts at conv_11, so with it only ``--pixels`` runs.

``--pixels`` blanks the face in the image instead (ninth session): every aligned 112x112 crop, reference and masked
probe alike, has its template rows from ``ROW`` down painted grey before the shipped embedder (mirror-averaged, as
shipped) sees it, so that both sides show eyes, brows and forehead and nothing of the mask's colour or texture. Row
and fusion weight are chosen on the development set (View-1's 3,200 pairs, second image masked: ``eval-render --set
dev``) by TAR at FAR 1e-2, then View-2 is scored once with that choice:

    python benchmarks/upper_face.py --pixels        # ~25 min on 2 cores; results/upper_face_pixels.json
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
from finetune_masked import CACHE, DATA, HeadOnFeatures, ShippedOnCrops, _by_key, _dev_pairs, _eval_set, _head_cut  # noqa: E402,E501

from periface.embed.robust import HEAD_FILE  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.lfw import pair_labels, read_pairs  # noqa: E402
from periface.evaluation.metrics import eer, kfold_accuracy, tar_at_far  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", nargs="*", default=[], help="TAG:ROWS of heads trained with --upper-rows ROWS")
    ap.add_argument("--pixels", action="store_true", help="blank the lower face in the aligned crops instead")
    args = ap.parse_args()
    if args.pixels:
        return blanked_pixels()
    if _head_cut(DATA / HEAD_FILE) != "conv_13_relu":
        sys.exit("the shipped head starts below conv_13: its feature-map rows are not the cached ones; use --pixels")
    v2 = _eval_set("view2")
    if v2 is None:
        sys.exit("run scripts/finetune_masked.py eval-render --set view2 first")
    head = HeadOnFeatures(DATA / HEAD_FILE)
    pairs = read_pairs(require_datasets() / "lfw" / "pairs.txt")
    same, folds = pair_labels(pairs)

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


BLANK_ROWS = (64, 68, 72, 76)  # ArcFace template: eyes at y=51.6, nose tip 71.7, mouth corners 92.3
WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6)


def blanked_pixels() -> int:
    sets = {"dev": _eval_set("dev"), "view2": _eval_set("view2")}
    if any(v is None for v in sets.values()):
        sys.exit("run scripts/finetune_masked.py eval-render --set dev and --set view2 first")
    ds = require_datasets() / "lfw"
    pair_lists = {"dev": _dev_pairs(), "view2": read_pairs(ds / "pairs.txt")}
    folds = {"dev": np.arange(len(pair_lists["dev"])) % 10, "view2": np.array([p.fold for p in pair_lists["view2"]])}
    embed = ShippedOnCrops(flip=True)

    def scores(which: str, row: int | None) -> np.ndarray:
        data = sets[which]
        if row is not None:
            data = {**data, "crops": data["crops"].copy()}
            data["crops"][:, row:] = 128
        plain, probe = _by_key(data, embed(data))
        return np.nan_to_num(np.array([float(plain[p.a] @ probe[p.b]) for p in pair_lists[which]]), nan=-1.0)

    def summary(which: str, s: np.ndarray) -> dict:
        same = np.array([p.same for p in pair_lists[which]])
        acc, std = kfold_accuracy(s, same, folds[which])
        return {"accuracy": acc, "accuracy_std": std, "tar_at_far_1e-2": tar_at_far(s, same, 1e-2)[0],
                "tar_at_far_1e-3": tar_at_far(s, same, 1e-3)[0], "eer": eer(s, same)}

    doc: dict = {"protocol": "masked probe (second image, seed 0), shipped embedder mirror-averaged on cached aligned "
                             "crops; lower rows painted grey on both sides; row and weight chosen on dev by TAR@1e-2",
                 "dev": {}, "view2": {}}

    def show(which: str, name: str, s: np.ndarray) -> dict:
        doc[which][name] = r = summary(which, s)
        print(f"{which:5s} {name:34s} acc {r['accuracy']:.4f}  TAR@1e-2 {r['tar_at_far_1e-2']:.4f}  "
              f"TAR@1e-3 {r['tar_at_far_1e-3']:.4f}  EER {r['eer']:.4f}", flush=True)
        return r

    full = scores("dev", None)
    show("dev", "full face (shipped, plain)", full)
    candidates = {}
    for row in BLANK_ROWS:
        blank = scores("dev", row)
        show("dev", f"rows >= {row} blanked", blank)
        for w in WEIGHTS:
            r = show("dev", f"  rows >= {row} fused, weight {w}", (1 - w) * full + w * blank)
            candidates[(row, w)] = (r["tar_at_far_1e-2"], r["accuracy"])
    row, w = max(candidates, key=candidates.get)
    doc["chosen_on_dev"] = {"row": row, "weight": w}
    full, blank = scores("view2", None), scores("view2", row)
    show("view2", "full face (shipped, plain)", full)
    show("view2", f"rows >= {row} blanked", blank)
    show("view2", f"  rows >= {row} fused, weight {w} (chosen on dev)", (1 - w) * full + w * blank)
    write_result("upper_face_pixels", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
