"""Train the mask-state classifier (none / correct / incorrect) and write src/periface/data/mask_classifier.npz.

Data (all real except MaskedFace-Net's synthetic masks on real FFHQ faces), split by a fixed hash of each file name
(``periface.evaluation.voc.split_of``: 25% test):
  mask-crops/without_mask -> none        mask-crops/with_mask -> correct
  mask-crops/synthetic_correct -> correct   mask-crops/synthetic_incorrect -> incorrect
  mask-scenes boxed faces (with_mask / without_mask / mask_weared_incorrect), scenes split by file name
Faces are aligned exactly as at run time (``FaceFinder.find_in_crop``), then ``mask_features``.

    python scripts/train_mask_classifier.py            # seed 0; writes the model and results/mask_classifier.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix

from periface.align import align_faces
from periface.detect import FaceFinder
from periface.evaluation.datasets import require_datasets
from periface.evaluation.voc import read_scenes, split_of
from periface.faces import MASK_STATES
from periface.image import load_image
from periface.mask.classify import CLASSIFIER_FILE, LinearMaskClassifier, mask_features

CROP_SETS = {"without_mask": "none", "with_mask": "correct", "synthetic_correct": "correct",
             "synthetic_incorrect": "incorrect"}
FEATURES_CACHE = Path(".cache/mask_features.npz")


def crop_with_margin(rgb: np.ndarray, box: np.ndarray, margin: float = 0.15) -> np.ndarray:
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    h, w = rgb.shape[:2]
    xa, ya, xb, yb = int(max(0, x0 - mx)), int(max(0, y0 - my)), int(min(w, x1 + mx)), int(min(h, y1 + my))
    return rgb[ya:yb, xa:xb]


def collect(root: Path, finder: FaceFinder) -> dict[str, np.ndarray]:
    rows: list[tuple[str, str, str, np.ndarray]] = []  # (source, split, state, crop)
    for folder, state in CROP_SETS.items():
        for path in sorted((root / "mask-crops" / folder).glob("*")):
            rows.append((f"crops/{folder}", split_of(path.name), state, load_image(path)))
    for scene in read_scenes(root / "mask-scenes"):
        rgb = load_image(scene.image)
        for box, state in zip(scene.boxes, scene.states):
            if state != "unknown" and min(box[2] - box[0], box[3] - box[1]) >= 8:
                rows.append(("scenes", split_of(scene.image.name), state, crop_with_margin(rgb, box)))
    feats = []
    for _, _, _, crop in track(rows, description="aligning and featurising"):
        faces = finder.find_in_crop(crop)
        feats.append(mask_features(align_faces(crop, faces.landmarks[:1], 112))[0])
    return {
        "source": np.array([r[0] for r in rows]), "split": np.array([r[1] for r in rows]),
        "state": np.array([r[2] for r in rows]), "x": np.stack(feats),
    }


def main() -> int:
    root = require_datasets()
    if FEATURES_CACHE.exists():
        data = dict(np.load(FEATURES_CACHE))
    else:
        data = collect(root, FaceFinder.default())
        FEATURES_CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(FEATURES_CACHE, **data)
    y = np.array([MASK_STATES.index(s) for s in data["state"]])
    train = data["split"] == "train"
    x = data["x"]
    mean, scale = x[train].mean(0), x[train].std(0) + 1e-6
    model = LogisticRegression(C=0.05, max_iter=3000, class_weight="balanced", random_state=0)
    model.fit((x[train] - mean) / scale, y[train])
    clf = LinearMaskClassifier(mean.astype(np.float32), scale.astype(np.float32),
                               model.coef_.astype(np.float32), model.intercept_.astype(np.float32))
    clf.save(CLASSIFIER_FILE)
    digest = hashlib.sha256(CLASSIFIER_FILE.read_bytes()).hexdigest()
    (CLASSIFIER_FILE.parent / "SHA256SUMS").write_text(f"{digest}  {CLASSIFIER_FILE.name}\n")
    pred = clf.probabilities(x).argmax(1)
    report: dict = {"model_sha256": digest}
    for source in sorted(set(data["source"])):
        test = (~train) & (data["source"] == source)
        report[source] = {"test_n": int(test.sum()), "accuracy": float(np.mean(pred[test] == y[test]))}
    crops_real = (~train) & np.isin(data["source"], ["crops/with_mask", "crops/without_mask"])
    # Real crops are judged two-way (masked or not): their "with_mask" label does not say how it is worn.
    report["real_crops_mask_vs_none"] = float(np.mean((pred[crops_real] > 0) == (y[crops_real] > 0)))
    scenes = (~train) & (data["source"] == "scenes")
    report["scenes_three_way"] = float(np.mean(pred[scenes] == y[scenes]))
    report["scenes_confusion(rows=truth none,correct,incorrect)"] = confusion_matrix(y[scenes], pred[scenes], labels=[0, 1, 2]).tolist()
    Path("results").mkdir(exist_ok=True)
    Path("results/mask_classifier.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
