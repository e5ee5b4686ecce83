"""Are the nose and the mouth visible? `nose_mouth_visibility` on held-out faces whose truth is known.

    OMP_NUM_THREADS=1 python benchmarks/nose_mouth_visibility.py [--limit N]
    OMP_NUM_THREADS=1 python benchmarks/nose_mouth_visibility.py --fit     # -> src/periface/data/visibility.json

Faces: the held-out test split (``split_of(name) == "test"``, never trained on by the mask-state CNN nor the
visibility model) of
`mask-crops` and of the mask-scenes' boxed faces, plus one render of the project's renderer per held-out
without_mask crop. Truth (nose visible, mouth visible) by source:

- without_mask crops, scene faces labelled without_mask, renders with the mask under the chin: (yes, yes)
- MaskedFace-Net ``Mask_Mouth_Chin`` (mask below the nose), renders with the nose exposed: (yes, no)
- MaskedFace-Net ``Mask_Chin`` (mask on the chin only): (yes, yes)
- MaskedFace-Net correct and ``Mask_Nose_Mouth`` (chin uncovered), renders worn fully, scene faces labelled
  with_mask: (no, no)
- scene faces labelled mask_weared_incorrect: nose yes, mouth unknown (not scored)
- real with_mask crops: (no, no) as labelled; the label does not say how the mask is worn, so a few show the nose.

Rows, each scored at 0.5 (accuracy) and by AUC:
- periface: the shipped cue, `nose_mouth_visibility` (logistic model per part on the mask-state CNN's
  probabilities and the Face Mesh colour test), as `periface detect` reports it;
- hand-set rule: the first sessions' fixed combination of the same two cues (nose: P(none) + P(incorrect) x (0.5 +
  0.5 x skin-likeness), mouth: P(none) + P(incorrect) x skin-likeness);
- CNN alone (the fitted model with no colour evidence, as for faces under 24 px) and colour alone: what each half
  contributes;
- reference: face_recognition's landmarks (its 5-point model, on its HOG box when HOG finds the face, else on
  periface's box, so that detection is not what is compared) with the same colour test: nose and lips against the
  cheek under each eye. face_recognition itself has no visibility output; this is what one would build from it.
Writes ``results/nose_mouth_visibility.json``; ratios are periface / reference accuracy.

``--fit`` fits the logistic models on the train split instead (same sources, reference not run), compares them by
5-fold cross-validation there with the hand-set rule, and writes ``src/periface/data/visibility.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

from periface.detect import FaceFinder  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.detect_eval import FittingImages  # noqa: E402
from periface.evaluation.reference import FaceRecognitionReference  # noqa: E402
from periface.evaluation.voc import read_scenes, split_of  # noqa: E402
from periface.faces import Faces  # noqa: E402
from periface.image import load_image  # noqa: E402
from periface.landmarks.facemesh import FaceMeshLandmarker  # noqa: E402
from periface.mask.classify import (  # noqa: E402
    VISIBILITY_FILE, OnnxMaskClassifier, patch_chroma, skin_likeness, skin_similarity, visibility_features,
    visibility_from_cues,
)
from periface.mask.render import add_mask  # noqa: E402
from periface.models import model_path  # noqa: E402

MIN_SCENE_FACE_PX = 24  # below this Face Mesh is not run (skin_likeness's default): scene faces this small get own rows


def crop_truth(folder: str, name: str) -> tuple[float, float]:
    if folder == "without_mask":
        return 1.0, 1.0
    if folder == "synthetic_incorrect":
        if name.endswith("_Mask_Mouth_Chin.jpg"):
            return 1.0, 0.0
        if name.endswith("_Mask_Chin.jpg"):
            return 1.0, 1.0
    return 0.0, 0.0


RENDER_TRUTH = {"full": (0.0, 0.0), "nose_exposed": (1.0, 0.0), "chin": (1.0, 1.0)}
SCENE_TRUTH = {"none": (1.0, 1.0), "correct": (0.0, 0.0), "incorrect": (1.0, np.nan)}


def samples(root: Path, limit: int | None, split: str = "test"):
    """(source, rgb, Faces with one face, truth, image path) for every held-out face."""
    finder = FaceFinder.default()
    for folder in ("without_mask", "with_mask", "synthetic_correct", "synthetic_incorrect"):
        paths = [p for p in sorted((root / "mask-crops" / folder).glob("*.jpg")) if split_of(p.name) == split]
        for i, path in enumerate(paths[:limit]):
            rgb = load_image(path)
            faces = finder.find_in_crop(rgb)
            kind = "/" + path.stem.split("_", 1)[1] if folder == "synthetic_incorrect" else ""
            yield f"crops/{folder}{kind}", rgb, faces, crop_truth(folder, path.name), path
            if folder == "without_mask":
                coverage = ("full", "nose_exposed", "chin")[i % 3]
                render = add_mask(rgb, seed=i, coverage=coverage)
                if render is not None:
                    yield f"renders/{coverage}", render.image, faces, RENDER_TRUTH[coverage], path
    scenes = [s for s in read_scenes(root / "mask-scenes") if split_of(s.image.name) == split]
    for scene in scenes[:limit]:
        rgb = load_image(scene.image)
        for box, state in zip(scene.boxes, scene.states):
            if state in SCENE_TRUTH:
                faces = Faces(boxes=box[None].astype(np.float32), scores=np.ones(1, np.float32),
                              landmarks=np.zeros((1, 5, 2), np.float32), image_size=rgb.shape[:2])
                small = min(box[2] - box[0], box[3] - box[1]) < MIN_SCENE_FACE_PX
                yield f"scenes/{state}{'/small' if small else ''}", rgb, faces, SCENE_TRUTH[state], scene.image


class LandmarkColourReference:
    """The colour test on face_recognition's landmarks: ``face_landmarks(model="small")``, dlib's HOG box (upsample
    1) and 5-point predictor (the 68-point one is under a non-commercial licence and never used here). Five points
    give the eye corners and the base of the nose; the lips are placed below it by the usual proportions."""

    def __init__(self) -> None:
        import dlib

        self.hog = FaceRecognitionReference()
        self.predictor = dlib.shape_predictor(str(model_path("dlib_sp5")))

    def visibility(self, rgb: np.ndarray, box: np.ndarray) -> tuple[float, float]:
        import dlib

        found = self.hog.boxes(rgb)
        if len(found):
            box = found[np.argmax((found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1]))]
        shape = self.predictor(np.ascontiguousarray(rgb), dlib.rectangle(*(int(round(v)) for v in box)))
        marks = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        eyes = np.array([marks[0:2].mean(axis=0), marks[2:4].mean(axis=0)])
        d = float(np.linalg.norm(eyes[1] - eyes[0])) or 1.0
        nose_base = marks[4]
        down = np.array([0.0, 1.0], np.float32)
        cheeks = eyes + 0.35 * d * down
        nose = nose_base + np.array([[0, -0.15], [-0.1, -0.05], [0.1, -0.05]], np.float32) * d
        lips = nose_base + np.array([[x, y] for x in (-0.2, 0.0, 0.2) for y in (0.3, 0.45)], np.float32) * d
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        radius = max(1, int(0.04 * (box[2] - box[0])))
        skin = patch_chroma(lab, cheeks, radius)
        return tuple(skin_similarity(patch_chroma(lab, p, radius), skin) for p in (nose, lips))


def hand_rule(p: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """The fixed combination shipped before the fitted model (first to seventh sessions)."""
    return np.clip(np.column_stack([p[:, 0] + p[:, 2] * (0.5 + 0.5 * skin[:, 0]), p[:, 0] + p[:, 2] * skin[:, 1]]), 0, 1)


def cues(root: Path, limit: int | None, split: str, reference: "LandmarkColourReference | None") -> dict[str, np.ndarray]:
    classifier, mesh, fitting = OnnxMaskClassifier.load(), FaceMeshLandmarker(), FittingImages.load()
    copied: dict[Path, bool] = {}  # per scene photo, not per face
    rows: dict[str, list] = {"source": [], "truth": [], "p": [], "skin": [], "reference": [], "copied": []}
    for source, rgb, faces, truth, path in samples(root, limit, split):
        rows["source"].append(source)
        # Two held-out scene photos are copies of training photos (docs/crowds.md): reported apart.
        if source.startswith("scenes/") and path not in copied:
            copied[path] = fitting.holds_file(path)
        rows["copied"].append(copied.get(path, False))
        rows["truth"].append(truth)
        rows["p"].append(classifier.probabilities(rgb, faces)[0])
        rows["skin"].append(skin_likeness(rgb, faces, mesh)[0])
        if reference is not None:
            rows["reference"].append(reference.visibility(rgb, faces.boxes[0]))
    kinds = {"source": object, "copied": bool}
    return {k: np.array(v, kinds.get(k, np.float64)) for k, v in rows.items()}


def fit(data: dict[str, np.ndarray]) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    x = visibility_features(data["p"], data["skin"])
    hand = hand_rule(data["p"], data["skin"])
    skins = ["skin_nose", "skin_lips"]
    doc: dict = {"features": ["p_none", "p_incorrect", *skins, *(f"p_incorrect*{k}" for k in skins)],
                 "fitted_on": "train split of benchmarks/nose_mouth_visibility.py's sources", "faces": len(x)}
    for j, part in enumerate(("nose", "mouth")):
        keep = ~np.isnan(data["truth"][:, j])
        xs, ys = x[keep], data["truth"][keep, j] > 0.5
        fitted, rule = [], []
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(xs, ys):
            model = LogisticRegression(C=10.0, max_iter=1000).fit(xs[tr], ys[tr])
            fitted.append(np.mean(model.predict(xs[te]) == ys[te]))
            rule.append(np.mean((hand[keep][te, j] >= 0.5) == ys[te]))
        model = LogisticRegression(C=10.0, max_iter=1000).fit(xs, ys)
        doc[part] = {"coef": model.coef_[0].round(5).tolist(), "intercept": round(float(model.intercept_[0]), 5),
                     "n": int(keep.sum()), "cv_accuracy": round(float(np.mean(fitted)), 4),
                     "cv_accuracy_hand_rule": round(float(np.mean(rule)), 4)}
    return doc


def score(truth: np.ndarray, prob: np.ndarray) -> dict:
    keep = ~np.isnan(truth)
    t, p = truth[keep], prob[keep]
    out = {"n": int(keep.sum()), "accuracy": float(np.mean((p >= 0.5) == (t > 0.5))) if keep.any() else None}
    out["auc"] = float(roc_auc_score(t, p)) if len(set(t.tolist())) == 2 else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="at most this many files per folder (a quick look)")
    ap.add_argument("--fit", action="store_true", help="fit the shipped logistic models on the train split")
    args = ap.parse_args()
    root = require_datasets()
    console = Console(width=150)
    t0 = time.time()
    if args.fit:
        doc = fit(cues(root, args.limit, "train", None))
        VISIBILITY_FILE.write_text(json.dumps(doc, indent=1) + "\n")
        for part in ("nose", "mouth"):
            console.print(f"{part}: 5-fold accuracy on the train split {100 * doc[part]['cv_accuracy']:.1f}% fitted, "
                          f"{100 * doc[part]['cv_accuracy_hand_rule']:.1f}% hand-set rule ({doc[part]['n']} faces)")
        console.print(f"{doc['faces']} faces in {time.time() - t0:.0f} s; wrote {VISIBILITY_FILE}")
        return 0

    data = cues(root, args.limit, "test", LandmarkColourReference())
    seconds = time.time() - t0
    source, truth = data["source"], data["truth"]
    prob = {"periface": visibility_from_cues(data["p"], data["skin"]).astype(np.float64),
            "hand-set rule": hand_rule(data["p"], data["skin"]),
            "CNN alone": visibility_from_cues(data["p"], np.full_like(data["skin"], 0.5)).astype(np.float64),
            "colour alone": data["skin"], "reference": data["reference"]}
    methods = tuple(prob)
    groups = ({"all": np.ones(len(source), bool), "all but the copied scene photos": ~data["copied"]}
              | {s: source == s for s in sorted(set(source))})
    doc: dict = {"faces": len(source), "seconds": round(seconds, 1), "results": {}}
    for part, j in (("nose", 0), ("mouth", 1)):
        doc["results"][part] = {g: {m: score(truth[sel, j], prob[m][sel, j]) for m in methods} for g, sel in groups.items()}
        overall = doc["results"][part]["all"]
        overall["accuracy_ratio_vs_reference"] = overall["periface"]["accuracy"] / overall["reference"]["accuracy"]
    path = write_result("nose_mouth_visibility", doc)

    for part in ("nose", "mouth"):
        table = Table("faces", "n", *methods, "periface AUC", "reference AUC",
                      title=f"{part} visible? held-out faces, accuracy at 0.5")
        for g, r in doc["results"][part].items():
            def cell(m: str) -> str:
                return "-" if r[m]["accuracy"] is None else f"{100 * r[m]['accuracy']:.1f}%"
            aucs = [f"{r[m]['auc']:.3f}" if r[m]["auc"] is not None else "-" for m in ("periface", "reference")]
            table.add_row(g, str(r["periface"]["n"]), *(cell(m) for m in methods), *aucs)
        console.print(table)
        console.print(f"{part}: periface / reference accuracy = {doc['results'][part]['all']['accuracy_ratio_vs_reference']:.3f}")
    console.print(f"{len(source)} faces in {seconds:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
