"""Train the thermal-only face detector (dlib HOG+SVM) on chips-lepton and measure it on a held-out part.

    OMP_NUM_THREADS=1 python scripts/train_thermal_detector.py [--data ../shared/datasets/thermal/chips-lepton]

Split (fixed, person-disjoint): participants 7 and 8 and a seeded 20 % of the group frames are held out for test;
everything else trains. Same-person frames are near-duplicates, so a random image split would flatter recall.
Writes ``src/periface/data/thermal/thermal_face_hog.svm`` and ``thermal_face_hog.json`` (split, options, scores)
and prints the SHA-256 to paste into ``periface/thermal/detect.py``. One thread; about 5 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from periface.thermal.detect import UPSAMPLE, match_counts, prepare  # noqa: E402

SEED = 20260611
HELD_OUT_PEOPLE = {"7", "8"}
GROUP_TEST_FRACTION = 0.2
WINDOW = (30, 50)  # width, height in upsampled pixels: the median box aspect (w/h 0.58) at the smallest usable size
MIN_WIDTH = 10  # original pixels; smaller boxes are marked "ignore": too few HOG cells, and too small to measure
ASPECT = (0.42, 0.74)  # boxes outside this w/h range (profiles, cut-off heads) are ignored in training
OUT = ROOT / "src" / "periface" / "data" / "thermal"


def read_boxes(label: Path, w: int, h: int) -> np.ndarray:
    rows = []
    for line in label.read_text().split("\n"):
        parts = line.split()
        if len(parts) == 5:
            _, cx, cy, bw, bh = map(float, parts)
            rows.append([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
    return np.array(rows, np.float64).reshape(-1, 4)


def split(images: list[Path]) -> tuple[list[Path], list[Path]]:
    rng = random.Random(SEED)
    group = sorted(p for p in images if p.stem.startswith("group"))
    test_group = set(rng.sample(group, round(GROUP_TEST_FRACTION * len(group))))
    test = [p for p in images if p.stem.split("_")[0] in HELD_OUT_PEOPLE or p in test_group]
    train = [p for p in images if p not in set(test)]
    return train, test


def usable(box: np.ndarray) -> bool:
    w, h = box[2] - box[0], box[3] - box[1]
    return w >= MIN_WIDTH and h > 0 and ASPECT[0] <= w / h <= ASPECT[1]


def write_xml(items: list[tuple[Path, np.ndarray]], work: Path, rejected: set[int] = frozenset()) -> Path:
    lines = ["<?xml version='1.0'?>", "<dataset><images>"]
    for i, (path, boxes) in enumerate(items):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        big, scale = prepare(rgb)
        out = work / f"{i:05d}.png"
        Image.fromarray(big).save(out)
        lines.append(f"<image file={quoteattr(str(out))}>")
        for b in boxes:
            x1, y1, x2, y2 = (b * scale).round().astype(int)
            ignore = "" if usable(b) and i not in rejected else " ignore='1'"
            lines.append(f"<box top='{y1}' left='{x1}' width='{x2 - x1}' height='{y2 - y1}'{ignore}/>")
        lines.append("</image>")
    lines.append("</images></dataset>")
    xml = work / "train.xml"
    xml.write_text("\n".join(lines))
    return xml


def evaluate(model: Path, items: list[tuple[Path, np.ndarray]], threshold: float = 0.0) -> dict[str, float]:
    from periface.thermal.detect import ThermalFaceDetector

    det = ThermalFaceDetector(model, sha256=_sha(model), threshold=threshold)
    tp = fp = fn = tp_u = fn_u = 0
    for path, boxes in items:
        pred, _ = det.detect(np.asarray(Image.open(path).convert("RGB")))
        a, b, c = match_counts(pred, boxes)
        tp, fp, fn = tp + a, fp + b, fn + c
        keep = np.array([usable(x) for x in boxes], bool)
        a2, _, c2 = match_counts(pred, boxes[keep]) if keep.any() else (0, 0, 0)
        tp_u, fn_u = tp_u + a2, fn_u + c2
    return {
        "faces": tp + fn, "tp": tp, "fp": fp, "fn": fn,
        "recall": tp / max(tp + fn, 1), "precision": tp / max(tp + fp, 1),
        "recall_measurable": tp_u / max(tp_u + fn_u, 1), "measurable_faces": tp_u + fn_u,
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    import dlib

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets" / "thermal" / "chips-lepton")
    ap.add_argument("--max-runtime", type=int, default=480)
    ap.add_argument("--C", type=float, default=3.0)
    args = ap.parse_args()
    images = sorted((args.data / "images").glob("*.jpeg"))
    train, test = split(images)

    def items(paths: list[Path]) -> list[tuple[Path, np.ndarray]]:
        out = []
        for p in paths:
            w, h = Image.open(p).size
            out.append((p, read_boxes(args.data / "annotations_yolo_format" / f"{p.stem}.txt", w, h)))
        return out

    train_items, test_items = items(train), items(test)
    opts = dlib.simple_object_detector_training_options()
    opts.add_left_right_image_flips = True
    opts.C = args.C
    opts.num_threads = 1
    opts.detection_window_size = WINDOW[0] * WINDOW[1]
    opts.upsample_limit = 0
    opts.max_runtime_seconds = args.max_runtime
    opts.be_verbose = False
    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / "thermal_face_hog.svm"
    t0 = time.time()
    rejected: set[int] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(15):
            xml = write_xml(train_items, Path(tmp), rejected)
            try:
                dlib.train_simple_object_detector(str(xml), str(model), opts)
                break
            except RuntimeError as err:
                # dlib names the images whose boxes no detection window can match (odd aspect after its
                # pyramid rounding); those boxes become "ignore" rather than being dropped silently.
                bad = {int(m) for m in re.findall(r"(\d{5})\.png", str(err))}
                bad |= {int(m) % len(train_items) for m in re.findall(r"image index:?\s+(\d+)", str(err))}
                if not bad:
                    raise
                rejected |= bad
                print(f"ignoring boxes in {len(bad)} images dlib cannot match", file=sys.stderr)
    train_s = time.time() - t0
    held = evaluate(model, test_items)
    report = {
        "seed": SEED, "held_out_people": sorted(HELD_OUT_PEOPLE), "group_test_fraction": GROUP_TEST_FRACTION,
        "train_images": [p.name for p in train], "test_images": [p.name for p in test],
        "window": WINDOW, "upsample": UPSAMPLE, "min_width": MIN_WIDTH, "aspect": ASPECT, "C": args.C,
        "train_seconds": round(train_s, 1), "ignored_images": sorted(train[i].name for i in rejected), "held_out": held, "sha256": _sha(model),
    }
    (OUT / "thermal_face_hog.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if not k.endswith("images")}, indent=1))


if __name__ == "__main__":
    main()
