"""Thermal accuracy: R-JPEG decoding, canthus -> core model, thermal face detector; each against a reference.

    OMP_NUM_THREADS=1 python benchmarks/thermal_accuracy.py [--datasets ../shared/datasets]

Writes ``results/thermal_accuracy.json`` and prints a summary. References run in the same process:
- decoding: the ground-truth temperature map exported with the R-JPEG (IRimage test image);
- core model: the naive baseline, raw maximum canthus temperature plus one fixed offset (fitted on the same
  training people), on the same held-out people; also the FLIR-fitted model on the ICI camera's people;
- detector: dlib's default frontal-face HOG detector on the same thermal images (upsampled twice).
Ratios are periface / reference (for errors, lower is better; for AUC, recall and precision, higher is better).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

from periface.thermal import CanthusCoreModel, ThermalFaceDetector, read_thermal  # noqa: E402
from periface.thermal.core_model import load_physionet  # noqa: E402
from periface.thermal.detect import match_counts, to_gray  # noqa: E402

FIXTURE_BOXES = ROOT / "tests" / "fixtures" / "thermal" / "people_boxes.json"


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, score))


def decode(datasets: Path) -> dict:
    folder = datasets / "thermal" / "flir-rjpeg" / "irimage_test"
    frame = read_thermal(folder / "test_image.jpg")
    truth = np.loadtxt(folder / "csv" / "test_image.csv", delimiter=",", encoding="utf-8-sig")
    err = np.abs(frame.temperature - truth)
    return {"file": str(folder / "test_image.jpg"), "pixels": int(err.size), "max_abs_error_c": float(err.max()),
            "mean_abs_error_c": float(err.mean()), "goal_max_abs_error_c": 0.1, "meets_goal": bool(err.max() <= 0.1)}


def first_round(table, mask: np.ndarray) -> np.ndarray:
    c = table.canthus[mask]
    return np.where(np.isfinite(c[:, 0]), c[:, 0], np.nanmean(c, axis=1))


def core(datasets: Path) -> dict:
    folder = datasets / "thermal" / "physionet-face-oral"
    model = CanthusCoreModel.load()
    table = load_physionet(folder / "FLIR_groups1and2.csv")
    held = np.isin(table.subject, model.info["test_subject_ids"])
    offset = model.info["baseline_offset"]
    out = {}
    for name, tab, mask in (("flir_held_out", table, held),
                            ("ici_camera_all", load_physionet(folder / "ICI_groups1and2.csv"), None)):
        mask = np.ones(len(tab.oral), bool) if mask is None else mask
        c, amb, oral = first_round(tab, mask), tab.ambient[mask], tab.oral[mask]
        ok = np.isfinite(c)
        c, amb, oral = c[ok], amb[ok], oral[ok]
        fever = oral >= 37.5
        est, base = model.predict(c, amb), c + offset
        row = {"people": int(len(oral)), "fever_people": int(fever.sum()),
               "mae_c": float(np.abs(est - oral).mean()), "baseline_mae_c": float(np.abs(base - oral).mean()),
               "auc": auc(est, fever), "baseline_auc": auc(base, fever),
               "sensitivity_at_37_5": float((est[fever] >= 37.5).mean()),
               "specificity_at_37_5": float((est[~fever] < 37.5).mean()),
               "baseline_sensitivity_at_37_5": float((base[fever] >= 37.5).mean()),
               "baseline_specificity_at_37_5": float((base[~fever] < 37.5).mean())}
        row["mae_ratio"] = row["mae_c"] / row["baseline_mae_c"]
        row["auc_ratio"] = row["auc"] / row["baseline_auc"]
        out[name] = row
    out["model"] = {"coef": model.coef, "residual_sd": model.residual_sd, "baseline_offset_c": offset}
    return out


def _counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    return match_counts(pred, truth, 0.5) if len(truth) or len(pred) else (0, 0, 0)


def _summ(tp: int, fp: int, fn: int) -> dict:
    return {"tp": tp, "fp": fp, "fn": fn, "recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1)}


def detector(datasets: Path) -> dict:
    import dlib
    from train_thermal_detector import read_boxes, split

    ours = ThermalFaceDetector()
    frontal = dlib.get_frontal_face_detector()

    def run_frontal(gray: np.ndarray) -> np.ndarray:
        rects = frontal(gray, 2)
        return np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], float).reshape(-1, 4)

    chips = datasets / "thermal" / "chips-lepton"
    _, test = split(sorted((chips / "images").glob("*.jpeg")))
    sets: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {"chips_held_out": []}
    # Each item keeps what the detector is given: RGB for colour-mapped frames, °C for radiometric ones.
    for p in test:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        sets["chips_held_out"].append((p.name, rgb, read_boxes(chips / "annotations_yolo_format" / f"{p.stem}.txt",
                                                                rgb.shape[1], rgb.shape[0])))
    labels = json.loads(FIXTURE_BOXES.read_text())
    for rel, boxes in labels.items():
        if rel == "about":
            continue
        path = datasets / "thermal" / rel
        if rel.endswith(".jpg"):
            image, key = read_thermal(path).temperature, "sample_images_people"
        else:
            image, key = np.asarray(Image.open(path).convert("RGB")), "tfw_samples"
        sets.setdefault(key, []).append((path.name, image, np.array(boxes, float)))
    out = {}
    for key, items in sets.items():
        tot_o, tot_f, per = np.zeros(3, int), np.zeros(3, int), []
        t0 = time.time()
        for name, image, truth in items:
            pred, _ = ours.detect(image)
            c = np.array(_counts(pred, truth))
            tot_o += c
            if key != "chips_held_out":
                per.append({"image": name, "faces": int(len(truth)), "tp": int(c[0]), "fp": int(c[1])})
        secs = time.time() - t0
        for _, image, truth in items:
            tot_f += np.array(_counts(run_frontal(to_gray(image)), truth))
        row = {"images": len(items), "faces": int(tot_o[0] + tot_o[2]), "periface": _summ(*map(int, tot_o)),
               "dlib_frontal_hog": _summ(*map(int, tot_f)), "periface_seconds": round(secs, 1)}
        rf, pf = row["dlib_frontal_hog"]["recall"], row["dlib_frontal_hog"]["precision"]
        row["recall_ratio"] = row["periface"]["recall"] / rf if rf else None
        row["precision_ratio"] = row["periface"]["precision"] / pf if pf else None
        if per:
            row["per_image"] = per
        out[key] = row
    out["note"] = ("chips_held_out: participants 7, 8 and a seeded 20 % of group frames (never trained on); "
                   "tfw_samples and sample_images_people: boxes labelled by hand (tests/fixtures/thermal/"
                   "people_boxes.json), IoU >= 0.5")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "thermal_accuracy.json")
    args = ap.parse_args()
    if not (args.datasets / "thermal").is_dir():
        sys.exit(f"error: {args.datasets / 'thermal'}: datasets not found")
    report = {"decode": decode(args.datasets), "core_model": core(args.datasets), "detector": detector(args.datasets)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    d, c = report["decode"], report["core_model"]["flir_held_out"]
    print(f"R-JPEG decode: max |error| {d['max_abs_error_c']:.4f} °C, mean {d['mean_abs_error_c']:.4f} °C "
          f"over {d['pixels']} pixels (goal <= 0.1)")
    print(f"canthus->core, held-out PhysioNet ({c['people']} people, {c['fever_people']} >= 37.5): "
          f"MAE {c['mae_c']:.3f} °C vs baseline {c['baseline_mae_c']:.3f} (ratio {c['mae_ratio']:.2f}); "
          f"AUC {c['auc']:.3f} vs baseline {c['baseline_auc']:.3f} (ratio {c['auc_ratio']:.3f})")
    ici = report["core_model"]["ici_camera_all"]
    print(f"  same model on the ICI camera's people: MAE {ici['mae_c']:.3f} °C, AUC {ici['auc']:.3f}")
    for key, row in report["detector"].items():
        if key == "note":
            continue
        o, f = row["periface"], row["dlib_frontal_hog"]
        print(f"detector {key}: {row['faces']} faces; periface recall {o['recall']:.3f} precision "
              f"{o['precision']:.3f}; dlib frontal recall {f['recall']:.3f} precision {f['precision']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
