"""Test-time augmentation of the masked probe beyond the mirror image: a measured lead, not in the product.

The shipped sface-robust embedder averages each face with its mirror image. This asks whether more views of the
MASKED probe help: the aligned crop zoomed (0.95x / 1.05x) or shifted up/down by 4 px, each with its mirror, all
averaged. The unmasked reference stays as shipped (crop + mirror). Runs on the aligned crops cached by
``scripts/finetune_masked.py eval-render --set view2`` (View-2, second image masked by the renderer with seed 0,
detected and aligned again: what ``benchmarks/lfw_verify.py --mask probe`` sees), so the row "mirror only" must
reproduce the shipped embedder's masked-probe numbers. About 20 minutes on 2 cores.

    for s in 0 1 2 3; do python scripts/finetune_masked.py eval-render --set view2 --shard $s --of 4; done
    python benchmarks/masked_tta.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _common import RESULTS, write_result  # noqa: E402
from finetune_masked import _eval_set  # noqa: E402

from periface.embed.base import l2_normalise  # noqa: E402
from periface.embed.robust import RobustSFaceEmbedder  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.lfw import pair_labels, read_pairs  # noqa: E402
from periface.evaluation.metrics import eer, kfold_accuracy, tar_at_far  # noqa: E402

VIEWS = {"crop": {}, "zoom 0.95": {"scale": 0.95}, "zoom 1.05": {"scale": 1.05}, "up 4 px": {"dy": -4}, "down 4 px": {"dy": 4}}
COMBINATIONS = [["crop"], ["crop", "zoom 0.95"], ["crop", "zoom 1.05"], ["crop", "zoom 0.95", "zoom 1.05"],
                ["crop", "up 4 px", "down 4 px"], list(VIEWS)]


def moved(crops: np.ndarray, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    m = cv2.getRotationMatrix2D((55.5, 55.5), 0, scale)
    m[:, 2] += (dx, dy)
    return np.stack([cv2.warpAffine(c, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                     for c in crops])


def main() -> int:
    v2 = _eval_set("view2")
    if v2 is None:
        sys.exit("run scripts/finetune_masked.py eval-render --set view2 first (see this file's docstring)")
    single = RobustSFaceEmbedder(threads=2, flip=False)

    def embed(crops: np.ndarray) -> np.ndarray:  # sum of the crop's and its mirror's unit embeddings
        out = [single.embed_aligned(crops[i:i + 64]) + single.embed_aligned(np.ascontiguousarray(crops[i:i + 64, :, ::-1]))
               for i in range(0, len(crops), 64)]
        return np.concatenate(out)

    keys, crops = v2["keys"], v2["crops"]
    plain_idx = np.flatnonzero(~v2["masked"] & v2["found"])
    masked_idx = np.flatnonzero(v2["masked"] & v2["found"])
    plain = dict(zip(keys[plain_idx], l2_normalise(embed(crops[plain_idx]))))
    views = {name: embed(moved(crops[masked_idx], **kw) if kw else crops[masked_idx]) for name, kw in VIEWS.items()}
    pairs = read_pairs(require_datasets() / "lfw" / "pairs.txt")
    same, folds = pair_labels(pairs)
    reference = RESULTS / "lfw_verify_mask-probe.json"
    fr = json.loads(reference.read_text())["pipelines"].get("face_recognition", {}).get("accuracy") if reference.exists() else None
    doc: dict = {"protocol": "LFW View-2, second image masked (seed 0), 10-fold", "rows": {}}
    for combo in COMBINATIONS:
        probe = dict(zip(keys[masked_idx], l2_normalise(sum(views[n] for n in combo))))
        s = np.array([float(plain[p.a] @ probe[p.b]) if p.a in plain and p.b in probe else -1.0 for p in pairs])
        acc, std = kfold_accuracy(s, same, folds)
        row = {"accuracy": acc, "accuracy_std": std, "tar_at_far_1e-2": tar_at_far(s, same, 1e-2)[0],
               "tar_at_far_1e-3": tar_at_far(s, same, 1e-3)[0], "eer": eer(s, same), "views": 2 * len(combo)}
        if fr:
            row["accuracy_ratio_vs_face_recognition"] = acc / fr
        name = "mirror only (shipped)" if combo == ["crop"] else " + ".join(combo) + ", each with its mirror"
        doc["rows"][name] = row
        print(f"{name:60s} accuracy {acc:.4f} ± {std:.4f}  TAR@1e-2 {row['tar_at_far_1e-2']:.4f}  "
              f"TAR@1e-3 {row['tar_at_far_1e-3']:.4f}  EER {row['eer']:.4f}", flush=True)
    write_result("masked_tta", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
